"""TEST DOUBLE backend: answers VLM3 prompts from recorded ground truth (depth images, poses).

Named as such everywhere it is used. It exists to test the whole chain (node, services, VO,
evaluation) on real data with answers whose correct values are known; it is never a model.
It reads the prompt text and the unified views like a model reads the image, and writes answers in
the checkpoints' formats. Object questions are not answerable from this ground truth: it says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.question import Answer, Question, QuestionContext
from vlm3_ros.geometry import coords
from vlm3_ros.geometry.backproject import project, rays_z1
from vlm3_ros.geometry.pose import invert
from vlm3_ros.geometry.trajectory import Trajectory
from vlm3_ros.geometry.unify import UnifiedView
from vlm3_ros.inference.ground_truth import answerer
from vlm3_ros.readers.bag import BagError, BagReader, BagTopics, loop_period_ns
from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics

_CORR = re.compile(r"pixel \((\d+), (\d+)\) in the first image")


@dataclass(frozen=True)
class GroundTruthConfig:
    """TEST DOUBLE backend configuration: the bag holding depth and ground-truth poses."""

    bag: str
    depth_topic: str = BagTopics.depth
    world_frame: str = ""           # '' = the root of the camera's TF tree
    camera_frame: str = ""          # '' = the depth image's frame_id
    pose_topic: str = ""            # '' = the bag's /tf and /tf_static


class GroundTruthSource(Protocol):
    def depth_z(self, stamp_ns: int) -> np.ndarray | None: ...

    def pose(self, stamp_ns: int) -> np.ndarray | None: ...


@dataclass
class BagGroundTruth:
    """Depth images and T_world_camera from a bag (REP 118 depth topic, /tf or pose topic)."""

    bag: Path
    topics: BagTopics = field(default_factory=BagTopics)
    stamp_tolerance_s: float = 0.02
    loops: bool = True    # answer for `vlm3-ros play --loops` too: later loops map back onto the bag

    def __post_init__(self) -> None:
        reader = BagReader(Path(self.bag), self.topics)
        reader.require("depth")
        records = list(reader.records(("image", "camera_info", "depth", "tf")))
        self._period = loop_period_ns(records)
        self._depth = {r.value.stamp_ns: r.value.depth_m() for r in records if r.kind == "depth"}
        self._stamps = np.array(sorted(self._depth))
        try:
            self._traj: Trajectory | None = reader.trajectory()
        except BagError as e:  # depth-only recordings: depth answers still come, pose ones say why not
            self._traj, self.no_pose_reason = None, str(e)

    def _unloop(self, stamp_ns: int) -> int:
        """A stamp of loop k of a replay (stamps shifted by k loop periods) -> the recorded stamp."""
        if not self.loops or not len(self._stamps):
            return stamp_ns
        start = int(self._stamps[0]) - int(self.stamp_tolerance_s * 1e9)
        k = (stamp_ns - start) // self._period
        return stamp_ns - max(0, k) * self._period

    def depth_z(self, stamp_ns: int) -> np.ndarray | None:
        stamp_ns = self._unloop(stamp_ns)
        if not len(self._stamps):
            return None
        i = int(np.argmin(np.abs(self._stamps - stamp_ns)))
        if abs(int(self._stamps[i]) - stamp_ns) > self.stamp_tolerance_s * 1e9:
            return None
        return self._depth[int(self._stamps[i])]

    def pose(self, stamp_ns: int) -> np.ndarray | None:
        if self._traj is None:
            return None
        try:
            return self._traj.interpolate(self._unloop(stamp_ns) * 1e-9)
        except ValueError:
            return None


class GroundTruthBackend:
    """TEST DOUBLE. ``depth_decimals`` sets the text precision of depth answers (mm by default)."""

    @staticmethod
    def from_config(cfg: GroundTruthConfig) -> GroundTruthBackend:
        # The camera topics as `vlm3-ros play` picks them: the replay's loop period is computed from
        # the same records on both sides, so loop k's stamps map back onto the recording.
        topics = resolve_topics(cfg.bag, TopicRequest(depth=cfg.depth_topic or None, pose=cfg.pose_topic,
                                                      world_frame=cfg.world_frame, camera_frame=cfg.camera_frame))
        return GroundTruthBackend(BagGroundTruth(Path(cfg.bag), topics))

    def __init__(self, source: GroundTruthSource, depth_decimals: int = 3) -> None:
        self.source = source
        self.depth_decimals = depth_decimals
        self.name = "ground_truth(TEST DOUBLE)"
        self._unified: dict[tuple, np.ndarray] = {}

    def close(self) -> None:
        self._unified.clear()

    def answer(self, questions: Sequence[Question]) -> list[Answer]:
        return [self._one(q) for q in questions]

    def _unified_depth(self, stamp: int, view: UnifiedView, depth_type: str) -> np.ndarray | None:
        d = self.source.depth_z(stamp)
        if d is None:
            return None
        # keyed by the recorded depth image itself: every loop of a replay reuses the work
        key = (id(d), view.width, view.height, view.rectified, depth_type, view.K.tobytes())
        if key not in self._unified:
            du = answerer.unified_depth(d, view).astype(np.float64)
            if depth_type == "range":
                vv, uu = np.mgrid[0:view.height, 0:view.width]
                norm = np.linalg.norm(rays_z1(np.column_stack([uu.ravel(), vv.ravel()]), view.K), axis=1)
                du = du * norm.reshape(du.shape)
            if len(self._unified) > 32:
                self._unified.clear()
            self._unified[key] = du
        return self._unified[key]

    def _one(self, q: Question) -> Answer:
        c = q.context
        if c is None:
            return Answer("I cannot tell which frame this question is about.")
        if c.task == "depth":
            du = self._unified_depth(c.stamps[0], c.views[0], c.model_depth_type)
            if du is None:
                return Answer("No ground-truth depth for this frame.")
            return Answer(answerer.answer_depth(q.text, du, self.depth_decimals))
        if c.task == "pose":
            Ta, Tb = self.source.pose(c.stamps[0]), self.source.pose(c.stamps[1])
            if Ta is None or Tb is None:
                return Answer("No ground-truth pose for these frames.")
            return Answer(answers.format_pose_answer(c.pose_question, invert(Ta) @ Tb))
        if c.task == "corr":
            return Answer(self._corr(q, c))
        if c.task == "object":
            d = self.source.depth_z(c.stamps[0])
            if d is None:
                return Answer("No ground-truth depth for this frame.")
            return Answer(answerer.answer_object(q.text, d, c.views[0]))
        return Answer(answerer.CANNOT)

    def _corr(self, q: Question, c: QuestionContext) -> str:
        stamps, views = c.stamps, c.views
        m = _CORR.search(q.text)
        d = self.source.depth_z(stamps[0])
        Ta, Tb = self.source.pose(stamps[0]), self.source.pose(stamps[1])
        if m is None or d is None or Ta is None or Tb is None:
            return "I cannot tell."
        va, vb = views
        uv_a = va.from_unified(coords.corr_from_norm(np.array([[int(m.group(1)), int(m.group(2))]]),
                                                     va.width, va.height))[0]
        u, v = int(np.clip(np.rint(uv_a[0]), 0, d.shape[1] - 1)), int(np.clip(np.rint(uv_a[1]), 0, d.shape[0] - 1))
        z = float(d[v, u])
        if not z > 0:
            return "The point has no depth."
        K = va.camera.rectified().K
        ray = rays_z1(va.rectified_pixels(uv_a[None]), K)[0]
        p_a = ray * z
        T_b_a = invert(Tb) @ Ta
        p_b = T_b_a[:3, :3] @ p_a + T_b_a[:3, 3]
        uv_b_rect, zb = project(p_b[None], vb.camera.rectified().K)
        if not zb[0] > 0:
            return "The point is behind the second camera."
        uv_b = vb.camera.distort_pixels(uv_b_rect)  # raw pixel of B; to_unified rectifies if the view does
        n = coords.corr_to_norm(vb.to_unified(uv_b), vb.width, vb.height)[0]
        if not (0 <= n[0] <= 1000 and 0 <= n[1] <= 1000):
            return "The point is outside the second image."
        return answers.format_point(*n)
