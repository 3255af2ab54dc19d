"""The ceiling of a recording: what an ideal model scores under the contract's quantisation.

The same pipeline (unification, prompt integers, answer text) answered by the ground-truth double
from the recording's own depth and poses: the ground truth read at the unified integer pixel the
prompt names. Whatever error remains is the camera's and the contract's, not the model's (e.g. at
depth edges of a long-focal camera, whose unified image is smaller than the original). Reports show
it beside every depth and correspondence metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlm3_ros.eval.dataset import Dataset
from vlm3_ros.eval.runners import InProcessRunner
from vlm3_ros.eval.scoring import CorrScore, DepthScore
from vlm3_ros.geometry.trajectory import Trajectory
from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings

# Below this the camera and the contract alone cost more than 1 % of delta1: the report warns.
WARN_DELTA1 = 0.99


class SequenceTruth:
    """A loaded recording's depth images (by image stamp) and trajectory as a ground-truth source."""

    def __init__(self, depth: dict[int, np.ndarray], trajectory: Trajectory | None) -> None:
        self.depth, self.trajectory = depth, trajectory

    def depth_z(self, stamp_ns: int) -> np.ndarray | None:
        return self.depth.get(stamp_ns)

    def pose(self, stamp_ns: int) -> np.ndarray | None:
        if self.trajectory is None:
            return None
        try:
            return self.trajectory.interpolate(stamp_ns * 1e-9)
        except ValueError:
            return None


def truth_backends(ds: Dataset, tasks: list[str] | tuple[str, ...]) -> dict[str, GroundTruthBackend]:
    """The ground-truth double answering ``tasks`` from the loaded recording's depth and poses."""
    gt = GroundTruthBackend(SequenceTruth(ds.depth_images, ds.trajectory))
    return {t: gt for t in tasks if t in ("depth", "pose", "corr")}


def ceiling(ds: Dataset, settings: PipelineSettings, depth_type: str) -> dict[str, Any]:
    """Depth and correspondence metrics of the ideal model on ``ds``'s own queries."""
    if not ds.depth_images:
        return {}
    runner = InProcessRunner(Pipeline(truth_backends(ds, ("depth", "corr")), settings), "ceiling")
    out: dict[str, Any] = {}
    depth = DepthScore(depth_type)
    for q in ds.depth:
        depth.add(q, runner.depth(q.frame, q.pixels, depth_type))
    s = depth.summary()
    if s is not None:
        out["depth"] = {"delta1": s["delta1_depthlm"], "abs_rel": s["abs_rel"], "n": s["n"]}
    corr = CorrScore(settings.unify["corr"])
    for q in ds.corr:
        corr.add(q, runner.corr(q.frame_a, q.frame_b, q.pixels_a))
    c = corr.summary()
    if c is not None:
        out["corr"] = {"epe": c["original_px"]["epe"], "pck@3": c["original_px"]["pck@3"]}
    return out
