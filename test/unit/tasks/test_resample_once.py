"""Resampling once (PipelineSettings.resample_once): the pipeline renders straight at the size the
task's backend says its processor resizes to; the view, its intrinsics and the question text stay
those of the unified image, and backends that say no size get the unified image as before."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vlm3_ros.contract.question import Question
from vlm3_ros.geometry.camera import CameraModel
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import render
from vlm3_ros.inference.image_processing import smart_resize
from vlm3_ros.readers.tum import TumSequence
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings
from vlm3_ros.testing.scripted_backend import ScriptedBackend


class GridBackend(ScriptedBackend):
    """A scripted backend that says its input grid, as a local checkpoint does (Qwen3-VL's rounding
    to 32 px with the default pixel budget)."""

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        h, w = smart_resize(height, width, 32, 65536, 16777216)
        return w, h


def _frame() -> Frame:
    seq = TumSequence()
    return Frame(seq.frames[0].rgb(), CameraModel.from_camera_info(seq.camera_info), 1, "cam")


def _asked(resample_once: bool, kind: type[ScriptedBackend]) -> tuple[list[Question], np.ndarray]:
    asked: list[Question] = []

    def reply(q: Question, i: int) -> str:
        asked.append(q)
        return "<answer> 1.5 </answer>"

    pipe = Pipeline({"depth": kind(reply)}, PipelineSettings(resample_once=resample_once))
    frame = _frame()
    pipe.depth(frame, np.array([[100.0, 200.0], [600.0, 30.0]]), "z_depth")
    view, _ = pipe.unified("depth", frame)
    return asked, render(frame.image, view)


def test_once_renders_at_the_backends_grid_with_the_same_view_and_text() -> None:
    once, unified = _asked(True, GridBackend)
    twice, _ = _asked(False, GridBackend)
    assert unified.shape == (927, 1237, 3)                         # TUM 640x480 at focal 1000
    assert [q.images[0].shape for q in once] == [(928, 1248, 3)] * 2  # straight at the 32-px grid
    assert [q.images[0].shape for q in twice] == [(927, 1237, 3)] * 2
    assert [q.text for q in once] == [q.text for q in twice]       # coordinates are normalised
    view_once, view_twice = once[0].context.views[0], twice[0].context.views[0]
    assert (view_once.width, view_once.height) == (1237, 927) == (view_twice.width, view_twice.height)
    assert np.array_equal(view_once.K, view_twice.K)
    # the one resampling is close to the two (the processor's second resize is PIL's bicubic): the
    # same picture, not a shifted or stretched one (a 1 px shift gives a mean of several levels)
    two = np.asarray(Image.fromarray(unified).resize((1248, 928), Image.BICUBIC), np.int16)
    diff = np.abs(two - once[0].images[0].astype(np.int16))
    assert float(diff.mean()) < 0.5 and np.percentile(diff, 99) <= 3
    shifted = np.abs(two[:, 1:] - once[0].images[0][:, :-1].astype(np.int16))
    assert float(shifted.mean()) > 4 * float(diff.mean())


def test_a_backend_without_a_grid_gets_the_unified_image() -> None:
    asked, unified = _asked(True, ScriptedBackend)
    assert [q.images[0].shape for q in asked] == [unified.shape] * 2
    assert np.array_equal(asked[0].images[0], unified)
