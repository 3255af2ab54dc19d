"""Which frame a request is about (vlm3_ros/msg/FrameSelector): the newest frame of the cache, the
one at a stamp, the request's own image, or the visual-odometry keyframe. A frame that cannot be
found says what the cache holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from vlm3_ros.geometry.camera import CameraModelError
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.readers.image_codec import ImageDecodeError
from vlm3_ros.serving.camera_intake import CameraIntake
from vlm3_ros.serving.status import FrameNotFound
from vlm3_ros.tasks.common import RequestError


class FrameMode(IntEnum):
    """Mirrors vlm3_ros/msg/FrameSelector."""

    LATEST = 0
    BY_STAMP = 1
    EXPLICIT = 2
    KEYFRAME = 3


@dataclass(frozen=True)
class FrameRef:
    """Which frame a request is about. EXPLICIT carries a decoder of the request's own image
    (run inside the reply's error handling, so a bad image becomes INVALID_REQUEST)."""

    mode: int = FrameMode.LATEST
    stamp_ns: int = 0
    explicit: Callable[[], Frame] | None = None


def select_frame(ref: FrameRef, camera: CameraIntake, keyframe: Frame | None) -> Frame:
    """The frame ``ref`` names, from ``camera``'s cache (or the request, or the ``keyframe``);
    FrameNotFound or RequestError when there is none."""
    s = camera.settings
    if ref.mode == FrameMode.LATEST:
        f = camera.sync.latest()
        if f is None:
            raise FrameNotFound(f"no usable frame yet from {s.image_topic} + {s.camera_info_topic} "
                                f"({camera.summary()})")
        return f
    if ref.mode == FrameMode.BY_STAMP:
        f = camera.sync.by_stamp(ref.stamp_ns)
        if f is None:
            stamps = camera.sync.stamps()
            span = (f"cache holds {len(stamps)} frames from {stamps[0] * 1e-9:.3f} to {stamps[-1] * 1e-9:.3f}"
                    if stamps else "cache is empty")
            raise FrameNotFound(f"no frame with stamp {ref.stamp_ns * 1e-9:.6f} (+-{s.stamp_tolerance_s}s); {span}")
        return f
    if ref.mode == FrameMode.EXPLICIT and ref.explicit is not None:
        try:
            return ref.explicit()
        except (ImageDecodeError, CameraModelError) as e:
            raise RequestError(f"explicit frame: {e}") from e
    if ref.mode == FrameMode.KEYFRAME:
        if keyframe is None:
            raise FrameNotFound("no visual-odometry keyframe yet (vo.enabled false, or no frame received)")
        return keyframe
    raise RequestError(f"frame selector mode {ref.mode} is not one of LATEST=0, BY_STAMP=1, EXPLICIT=2, KEYFRAME=3")
