"""A transform tree like tf2's buffer, without ROS: static edges (/tf_static) and timestamped edges
(/tf) between named frames, chains composed through any tree, dynamic edges interpolated in time.

Used for the camera extrinsic (base -> camera optical frame through a URDF-like tree) and for
ground truth from recordings. Each child has one parent, as in tf2. Edges are validated on entry
(finite, unit-normalisable quaternion, plausible translation): a bad message is rejected with a
reason instead of poisoning every later lookup.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from vlm3_ros.geometry.pose import invert, make_T

# Beyond this a translation is a broken message, not a robot (1000 km).
MAX_TRANSLATION_M = 1e6


class TfError(LookupError):
    """A transform is unknown, unreachable, out of its time range, or the edge is invalid."""


def edge_matrix(t: tuple[float, float, float] | np.ndarray, q_xyzw: tuple[float, float, float, float] | np.ndarray
                ) -> np.ndarray:
    """A validated 4x4 from translation + quaternion (normalised); TfError says what is wrong."""
    t = np.asarray(t, dtype=np.float64).reshape(3)
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(4)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise TfError(f"non-finite transform (t={t.tolist()}, q={q.tolist()})")
    n = float(np.linalg.norm(q))
    if n < 1e-6:
        raise TfError(f"zero-norm quaternion {q.tolist()}")
    if np.abs(t).max() > MAX_TRANSLATION_M:
        raise TfError(f"translation {t.tolist()} m is beyond {MAX_TRANSLATION_M:g} m")
    return make_T(Rotation.from_quat(q / n).as_matrix(), t)


@dataclass
class _Dynamic:
    stamps: list[int] = field(default_factory=list)      # sorted ns
    poses: list[np.ndarray] = field(default_factory=list)


class TfTree:
    """``lookup(target, source, stamp_ns)`` -> T_target_source (maps points from source to target).

    Dynamic edges keep ``cache_s`` seconds of history; a lookup between two samples interpolates
    (linear translation, slerp rotation), one within ``tolerance_s`` of the ends takes the nearest.
    """

    def __init__(self, cache_s: float = 10.0, tolerance_s: float = 0.1) -> None:
        self.cache_ns = int(cache_s * 1e9)
        self.tolerance_ns = int(tolerance_s * 1e9)
        self._parent: dict[str, str] = {}
        self._static: dict[str, np.ndarray] = {}
        self._dynamic: dict[str, _Dynamic] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ edges
    def _set_parent(self, parent: str, child: str) -> None:
        if not parent or not child or parent == child:
            raise TfError(f"invalid edge {parent!r} -> {child!r}")
        old = self._parent.get(child)
        if old is not None and old != parent:
            # tf2 lets the newest parent win (a re-parented frame); so do we, dropping the old edge.
            self._static.pop(child, None)
            self._dynamic.pop(child, None)
        p = parent
        while p in self._parent:  # no loops: the parent must not descend from the child
            p = self._parent[p]
            if p == child:
                raise TfError(f"edge {parent!r} -> {child!r} would close a loop")
        self._parent[child] = parent

    def set_static(self, parent: str, child: str, T: np.ndarray) -> None:
        with self._lock:
            self._set_parent(parent, child)
            self._dynamic.pop(child, None)
            self._static[child] = np.array(T, dtype=np.float64)

    def set_dynamic(self, parent: str, child: str, T: np.ndarray, stamp_ns: int) -> None:
        with self._lock:
            self._set_parent(parent, child)
            self._static.pop(child, None)
            d = self._dynamic.setdefault(child, _Dynamic())
            i = bisect.bisect_left(d.stamps, stamp_ns)
            if i < len(d.stamps) and d.stamps[i] == stamp_ns:
                d.poses[i] = np.array(T, dtype=np.float64)
            else:
                d.stamps.insert(i, stamp_ns)
                d.poses.insert(i, np.array(T, dtype=np.float64))
            cut = bisect.bisect_left(d.stamps, d.stamps[-1] - self.cache_ns)
            if cut:
                del d.stamps[:cut], d.poses[:cut]

    def clear_dynamic(self) -> None:
        """Forget /tf history (after a jump back in time), keep /tf_static."""
        with self._lock:
            for child in list(self._dynamic):
                self._parent.pop(child, None)
            self._dynamic.clear()

    # ------------------------------------------------------------------ queries
    def frames(self) -> set[str]:
        with self._lock:
            return set(self._parent) | set(self._parent.values())

    def _ancestors(self, frame: str) -> list[str]:
        out = [frame]
        while out[-1] in self._parent:
            out.append(self._parent[out[-1]])
        return out

    def chain(self, target: str, source: str) -> list[str]:
        """The frames from ``target`` to ``source`` through their common ancestor (TfError if none)."""
        with self._lock:
            return self._chain(target, source)

    def _chain(self, target: str, source: str) -> list[str]:
        if target == source:
            return [target]
        known = set(self._parent) | set(self._parent.values())
        for f in (target, source):
            if f not in known:
                raise TfError(f"frame {f!r} is not in the tree (known: {sorted(known) or 'none'})")
        up_t, up_s = self._ancestors(target), self._ancestors(source)
        common = next((f for f in up_t if f in up_s), None)
        if common is None:
            raise TfError(f"{target!r} and {source!r} are in separate trees (roots {up_t[-1]!r} and {up_s[-1]!r})")
        return up_t[:up_t.index(common) + 1] + list(reversed(up_s[:up_s.index(common)]))

    def _edge(self, child: str, stamp_ns: int | None) -> np.ndarray:
        """T_parent_child at ``stamp_ns`` (None: the latest)."""
        if child in self._static:
            return self._static[child]
        d = self._dynamic[child]
        if stamp_ns is None:
            return d.poses[-1]
        s = d.stamps
        i = bisect.bisect_left(s, stamp_ns)
        if i < len(s) and s[i] == stamp_ns:
            return d.poses[i]
        if i == 0 or i == len(s):
            near = 0 if i == 0 else len(s) - 1
            if abs(s[near] - stamp_ns) <= self.tolerance_ns:
                return d.poses[near]
            raise TfError(f"{self._parent[child]!r} -> {child!r} is known from {s[0] * 1e-9:.3f} to "
                          f"{s[-1] * 1e-9:.3f}, not at {stamp_ns * 1e-9:.3f}")
        a, b = d.poses[i - 1], d.poses[i]
        w = (stamp_ns - s[i - 1]) / (s[i] - s[i - 1])
        R = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]])))([w]).as_matrix()[0]
        return make_T(R, (1 - w) * a[:3, 3] + w * b[:3, 3])

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> np.ndarray:
        """T_target_source at ``stamp_ns`` (None: the latest of every dynamic edge)."""
        with self._lock:
            path = self._chain(target, source)
            T = np.eye(4)
            for a, b in itertools.pairwise(path):
                # walking down (a is b's parent) uses the edge, walking up its inverse
                T = T @ (self._edge(b, stamp_ns) if self._parent.get(b) == a else invert(self._edge(a, stamp_ns)))
            return T

    def root(self, frame: str) -> str:
        """The top of ``frame``'s tree (``frame`` itself when it has no parent)."""
        with self._lock:
            return self._ancestors(frame)[-1]

    def chain_stamps(self, target: str, source: str) -> list[int]:
        """The stamps of the /tf samples on the chain (empty when the chain is static)."""
        with self._lock:
            path = self._chain(target, source)
            return sorted({t for f in path if f in self._dynamic for t in self._dynamic[f].stamps})

    def describe(self, target: str, source: str) -> str:
        """'base_link -> camera_link -> camera_optical (static)' or the reason there is no chain."""
        try:
            path = self.chain(target, source)
        except TfError as e:
            return str(e)
        with self._lock:
            dynamic = any(f in self._dynamic for f in path)
        return " -> ".join(path) + (" (includes /tf edges)" if dynamic else " (static)")

