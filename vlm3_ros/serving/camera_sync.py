"""Pairing images with CameraInfo, and a ring buffer of recent frames addressable by stamp.

Pure Python (the node feeds it decoded images); thread-safe, because the camera callback writes
while service callbacks read on other executor threads.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vlm3_ros.geometry.camera import CameraInfoData, CameraModel
from vlm3_ros.geometry.frame import Frame


@dataclass
class SyncStats:
    images: int = 0
    paired_exact: int = 0
    paired_fallback: int = 0      # used the latest CameraInfo of the same frame_id
    no_camera_info: int = 0
    bad_camera_info: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    decode_errors: int = 0
    size_changes: int = 0
    time_jumps: int = 0           # stamps jumped back by more than time_jump_s: the cache restarted
    last_error: str = ""

    def as_dict(self) -> dict[str, int | str]:
        return dict(self.__dict__)


@dataclass
class CameraSync:
    """Pairs each image with the CameraInfo of the same stamp (within ``tolerance_s``), falling back
    to the latest CameraInfo of the same frame_id; keeps the last ``capacity`` frames."""

    tolerance_s: float = 0.02
    capacity: int = 30
    info_capacity: int = 60
    time_jump_s: float = 1.0
    stats: SyncStats = field(default_factory=SyncStats)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._infos: deque[tuple[int, CameraInfoData]] = deque(maxlen=self.info_capacity)
        self._models: dict[CameraInfoData, CameraModel] = {}
        self._frames: deque[Frame] = deque(maxlen=self.capacity)
        self._last_size: tuple[int, int] | None = None
        # Images that arrived before any CameraInfo: the executor may run the image callback
        # before the info callback of the same instant. Paired when their CameraInfo comes.
        self._pending: deque[tuple[int, str, np.ndarray]] = deque(maxlen=4)

    def add_camera_info(self, stamp_ns: int, info: CameraInfoData) -> list[Frame]:
        """Store; returns the waiting images this CameraInfo paired (usually none)."""
        tol = int(self.tolerance_s * 1e9)
        with self._lock:
            self._infos.append((stamp_ns, info))
            ready = [p for p in self._pending if abs(p[0] - stamp_ns) <= tol]
            for p in ready:
                self._pending.remove(p)
        out = []
        for stamp, frame_id, rgb in sorted(ready, key=lambda p: p[0]):
            self.stats.no_camera_info -= 1  # counted when it arrived; it is paired now
            self.stats.images -= 1
            f = self.add_image(stamp, frame_id, rgb)
            if f is not None:
                out.append(f)
        return out

    def _model(self, info: CameraInfoData) -> CameraModel:
        m = self._models.get(info)
        if m is None:
            m = CameraModel.from_camera_info(info)  # raises CameraModelError with the reason
            if len(self._models) > 8:
                self._models.clear()
            self._models[info] = m
        return m

    def pick_info(self, stamp_ns: int, frame_id: str) -> tuple[CameraInfoData | None, bool]:
        """(info, exact) for an image stamp; exact=False for the same-frame_id fallback."""
        tol = int(self.tolerance_s * 1e9)
        with self._lock:
            best, best_dt = None, None
            for s, info in self._infos:
                dt = abs(s - stamp_ns)
                if dt <= tol and (best_dt is None or dt < best_dt):
                    best, best_dt = info, dt
            if best is not None:
                return best, True
            for _, info in reversed(self._infos):
                if info.frame_id == frame_id or not frame_id:
                    return info, False
        return None, False

    def add_image(self, stamp_ns: int, frame_id: str, rgb: np.ndarray) -> Frame | None:
        """Pair and store; returns the frame, or None (counted in stats) when it cannot be used."""
        self.stats.images += 1
        info, exact = self.pick_info(stamp_ns, frame_id)
        if info is None:
            self.stats.no_camera_info += 1
            with self._lock:
                last = self._infos[-1] if self._infos else None
            if last is None:
                self.stats.last_error = "no CameraInfo received for this camera yet"
            else:
                self.stats.last_error = (
                    f"no CameraInfo with this image's stamp {stamp_ns * 1e-9:.3f} (+-{self.tolerance_s}s) or its "
                    f"frame_id {frame_id!r}; the latest CameraInfo has frame_id {last[1].frame_id!r} and stamp "
                    f"{last[0] * 1e-9:.3f}: the driver must stamp or name both alike")
            with self._lock:
                self._pending.append((stamp_ns, frame_id, rgb))
            return None
        try:
            model = self._model(info)
            frame = Frame(rgb, model, stamp_ns, frame_id or info.frame_id)
        except ValueError as e:
            self.stats.bad_camera_info += 1
            self.stats.last_error = str(e)
            return None
        with self._lock:
            if self._frames and stamp_ns < self._frames[-1].stamp_ns - int(self.time_jump_s * 1e9):
                # A bag or camera restarted: time went back for good. Like tf2 on a jump back, drop
                # the old timeline instead of rejecting every later frame as out of order.
                self.stats.time_jumps += 1
                self.stats.last_error = (f"time jumped back {(self._frames[-1].stamp_ns - stamp_ns) * 1e-9:.2f}s "
                                         "(bag or camera restart): frame cache cleared")
                self._frames.clear()
            if self._frames and self._frames[-1].stamp_ns == stamp_ns:
                self.stats.duplicates += 1
                return None
            if self._frames and stamp_ns < self._frames[-1].stamp_ns:
                self.stats.out_of_order += 1
                return None
            size = (rgb.shape[1], rgb.shape[0])
            if self._last_size is not None and size != self._last_size:
                self.stats.size_changes += 1
            self._last_size = size
            self._frames.append(frame)
        if exact:
            self.stats.paired_exact += 1
        else:
            self.stats.paired_fallback += 1
        return frame

    def latest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def by_stamp(self, stamp_ns: int) -> Frame | None:
        tol = int(self.tolerance_s * 1e9)
        with self._lock:
            best = min(self._frames, key=lambda f: abs(f.stamp_ns - stamp_ns), default=None)
        if best is None or abs(best.stamp_ns - stamp_ns) > tol:
            return None
        return best

    def stamps(self) -> list[int]:
        with self._lock:
            return [f.stamp_ns for f in self._frames]

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._infos.clear()
