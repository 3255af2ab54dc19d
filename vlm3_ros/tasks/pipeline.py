"""The tasks end to end against per-task backends: frames + requests in, metric results out.
Used by the node's serving core, the rosbag evaluation and the benchmarks alike (one copy of the
logic); its settings come from vlm3_ros.params.mapping for all three."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.contract.question import Backend, BackendError
from vlm3_ros.geometry.backproject import DepthType
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import UnifiedView, UnifyConfig, plan, render
from vlm3_ros.tasks import corr_task, depth_task, object_task, pose_task
from vlm3_ros.tasks.task_registry import TASKS

R = TypeVar("R")


@dataclass(frozen=True)
class PipelineSettings:
    """Everything that shapes what the model sees and how answers are read."""

    unify: dict[str, UnifyConfig] = field(default_factory=lambda: {n: s.unify for n, s in TASKS.items()})
    prompts: PromptSet = field(default_factory=PromptSet)
    max_new_tokens: dict[str, int] = field(default_factory=lambda: {n: s.max_new_tokens for n, s in TASKS.items()})
    model_depth_type: DepthType = "range"
    max_points: int = 256
    render_cache: int = 16
    # render straight at the backend's input grid (one resampling instead of unify + the
    # processor's resize; same size and intrinsics): backends that say their grid (model_image_size)
    resample_once: bool = False


class Pipeline:
    """Runs the tasks against per-task backends. Concurrent callers must serialise through their
    own worker (the node runs it on one inference thread); the render cache itself is locked."""

    def __init__(self, backends: dict[str, Backend], settings: PipelineSettings | None = None) -> None:
        self.backends = backends
        self.settings = settings or PipelineSettings()
        self._renders: OrderedDict[tuple, tuple[UnifiedView, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def backend(self, task: str) -> Backend:
        b = self.backends.get(task)
        if b is None:
            raise BackendError(f"task '{task}' is not enabled (no model configured for it)")
        return b

    def unified(self, task: str, frame: Frame) -> tuple[UnifiedView, np.ndarray]:
        """The unified view and image of ``frame`` for ``task`` (small LRU: repeated queries on a
        frame do not resize again)."""
        key = (task, frame.stamp_ns, frame.frame_id, frame.image.shape, id(frame.image))
        with self._lock:
            hit = self._renders.get(key)
            if hit is not None:
                self._renders.move_to_end(key)
                return hit
        cfg = self.settings.unify[task]
        view = plan(frame.camera, cfg)
        img = render(frame.image, view, cfg.interpolation, self._model_size(task, view))
        with self._lock:
            self._renders[key] = (view, img)
            while len(self._renders) > self.settings.render_cache:
                self._renders.popitem(last=False)
        return view, img

    def _model_size(self, task: str, view: UnifiedView) -> tuple[int, int] | None:
        """(width, height) to render ``view`` at when resampling once: the size the task's backend
        resizes the unified image to (None: the unified size, then the backend's own resize)."""
        if not self.settings.resample_once:
            return None
        size_of = getattr(self.backends.get(task), "model_image_size", None)
        return size_of(view.width, view.height) if size_of is not None else None

    def depth(self, frame: Frame, pixels: np.ndarray, depth_type: DepthType = "z_depth") -> depth_task.DepthResult:
        return _parsed(depth_task.run(self, frame, pixels, depth_type))

    def pose(self, frame_a: Frame, frame_b: Frame, with_distance: bool = True) -> pose_task.PoseResult:
        return _parsed(pose_task.run(self, frame_a, frame_b, with_distance))

    def corr(self, frame_a: Frame, frame_b: Frame, pixels_a: np.ndarray) -> corr_task.CorrResult:
        return _parsed(corr_task.run(self, frame_a, frame_b, pixels_a))

    def object(self, frame: Frame, boxes: np.ndarray, question: str) -> object_task.ObjectResult:
        return _parsed(object_task.run(self, frame, boxes, question))


def _parsed(result: R) -> R:
    """Book the task's parse + geometry time (from its last answer to its result) on the result."""
    result.timings.finish()  # type: ignore[attr-defined]
    return result
