"""Who answers an evaluation's queries: a typed protocol with two implementations that return the
same result types, so scoring cannot tell them apart. :class:`InProcessRunner` runs the pipeline
directly; vlm3_ros.ros.ros_runner.RosRunner asks a running node's services. :func:`truth_backends`
is the ground-truth TEST DOUBLE answering from a loaded recording (the ceiling's ideal model)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vlm3_ros.eval.dataset import Dataset
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.trajectory import Trajectory
from vlm3_ros.inference.backend_registry import close_backends
from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend
from vlm3_ros.tasks.corr_task import CorrResult
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult
from vlm3_ros.tasks.pipeline import Pipeline
from vlm3_ros.tasks.pose_task import PoseResult


class Runner(Protocol):
    name: str

    def depth(self, frame: Frame, pixels: np.ndarray, depth_type: str) -> DepthResult: ...

    def pose(self, frame_a: Frame, frame_b: Frame) -> PoseResult: ...

    def corr(self, frame_a: Frame, frame_b: Frame, pixels_a: np.ndarray) -> CorrResult: ...

    def object(self, frame: Frame, boxes: np.ndarray, question: str) -> ObjectResult: ...

    def close(self) -> None: ...


class InProcessRunner:
    """The pipeline in this process (the default). Closes its backends on ``close``."""

    def __init__(self, pipeline: Pipeline, name: str = "in-process") -> None:
        self.pipeline = pipeline
        self.name = name

    def depth(self, frame: Frame, pixels: np.ndarray, depth_type: str) -> DepthResult:
        return self.pipeline.depth(frame, pixels, depth_type)  # type: ignore[arg-type]

    def pose(self, frame_a: Frame, frame_b: Frame) -> PoseResult:
        return self.pipeline.pose(frame_a, frame_b, True)

    def corr(self, frame_a: Frame, frame_b: Frame, pixels_a: np.ndarray) -> CorrResult:
        return self.pipeline.corr(frame_a, frame_b, pixels_a)

    def object(self, frame: Frame, boxes: np.ndarray, question: str) -> ObjectResult:
        return self.pipeline.object(frame, boxes, question)

    def close(self) -> None:
        close_backends(self.pipeline.backends)


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
