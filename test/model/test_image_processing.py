"""Image processing on the model's device (vlm3_ros/inference/image_processing.py) against the
checkpoint's own processor, on the bundled TUM frames unified as each task unifies them: the same
grid, the same token layout, the same pixel values (PIL resize on the CPU: bit-identical; torch's
resize as on CUDA: within three grey levels, 0.2 on average), and the tiny model's greedy answers unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.contract.question import Question
from vlm3_ros.geometry.camera import CameraModel
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import plan, render
from vlm3_ros.inference.image_processing import DeviceImageProcessor, ProcessorParams, smart_resize
from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
from vlm3_ros.inference.transformers_engine.model_loading import load_processor
from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend
from vlm3_ros.readers.tum import TumSequence
from vlm3_ros.runtime import timing
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings
from vlm3_ros.tasks.task_registry import TASKS

pytestmark = pytest.mark.model
P = PromptSet()


def unified_frames() -> dict[str, list[np.ndarray]]:
    """Two bundled frames per task, unified with the task's own settings (depth 1237x927, pose
    927x695, corr 1024x768 from 640x480)."""
    seq = TumSequence()
    cam = CameraModel.from_camera_info(seq.camera_info)
    out = {}
    for task in ("depth", "pose", "corr"):
        view = plan(cam, TASKS[task].unify)
        out[task] = [render(f.rgb(), view) for f in seq.frames[:2]]
    return out


@pytest.fixture(scope="module")
def processor(tiny_checkpoint: Path):
    return load_processor(str(tiny_checkpoint))


@pytest.fixture(scope="module")
def frames() -> dict[str, list[np.ndarray]]:
    return unified_frames()


def test_grid_rounding_is_the_processors() -> None:
    rng = np.random.default_rng(0)
    sizes = [(927, 1237), (695, 927), (768, 1024), (480, 640), (31, 6000), (4000, 3000)]
    sizes += [tuple(s) for s in rng.integers(40, 5000, (200, 2))]
    for h, w in sizes:
        for budget in ((65536, 16777216), (3136, 1003520)):
            assert smart_resize(int(h), int(w), 32, *budget) == hf_smart_resize(int(h), int(w), 32, *budget)


def test_cpu_path_equals_the_checkpoint_processor(processor, frames) -> None:
    dev = DeviceImageProcessor(ProcessorParams.of(processor.image_processor), "cpu")
    for task, images in frames.items():
        ref = processor.image_processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")
        pv, grid = dev(images)
        assert grid.tolist() == ref["image_grid_thw"].tolist(), task
        assert pv.shape == ref["pixel_values"].shape and pv.dtype == ref["pixel_values"].dtype
        assert float((pv - ref["pixel_values"]).abs().max()) < 1e-6, task


def test_torch_resize_as_on_cuda_is_within_three_grey_levels(processor, frames) -> None:
    params = ProcessorParams.of(processor.image_processor)
    on_torch = DeviceImageProcessor(params, "cpu", resize_with="torch")
    on_pil = DeviceImageProcessor(params, "cpu", resize_with="pil")
    for task, images in frames.items():
        a = on_torch.resize(images[0]).to(torch.int16)
        b = on_pil.resize(images[0]).to(torch.int16)
        assert a.shape == b.shape, task
        diff = (a - b).abs()
        # PIL rounds to 8 bits between its horizontal and vertical passes; torch stays in float
        worst, mean = int(diff.max()), float(diff.float().mean())
        assert worst <= 3 and mean < 0.2, (task, worst, mean)
        pv, grid = on_torch([images[0]])
        ref = processor.image_processor(images=[Image.fromarray(images[0])], return_tensors="pt")
        assert grid.tolist() == ref["image_grid_thw"].tolist()
        assert float((pv - ref["pixel_values"]).abs().max()) <= 3 * 2 / 255 + 1e-6   # 3 levels, std 0.5


@pytest.fixture(scope="module")
def backends(tiny_checkpoint: Path):
    dev = TransformersBackend(TransformersConfig(str(tiny_checkpoint), image_processing="device", batch_size=8))
    pil = TransformersBackend(TransformersConfig(str(tiny_checkpoint), image_processing="pil", batch_size=8))
    assert dev.image_processor is not None and pil.image_processor is None
    yield dev, pil
    dev.close()
    pil.close()


def test_model_inputs_equal_the_processors(backends, frames) -> None:
    dev, pil = backends
    for task, images in frames.items():
        shown = tuple(images[:1] if task == "depth" else images)
        text = dev.chat_text(Question(task, shown, P.render_depth(500, 500)))
        a, b = dev.inputs(text, shown), pil.inputs(text, shown)
        for name in ("input_ids", "attention_mask", "image_grid_thw"):
            assert a[name].tolist() == b[name].tolist(), (task, name)
        assert a["mm_token_type_ids"].tolist() == b["mm_token_type_ids"].tolist(), task
        assert float((a["pixel_values"] - b["pixel_values"]).abs().max()) < 1e-6


def test_greedy_answers_equal_on_bundled_frames(backends, frames) -> None:
    dev, pil = backends
    rng = np.random.default_rng(3)
    qs = []
    for task, images in frames.items():
        for k in range(4):
            x, y = rng.integers(0, 1000, 2)
            shown = (images[0],) if task == "depth" else (images[0], images[1])
            qs.append(Question((task, k // 2), shown, P.render_depth(int(x), int(y)), max_new_tokens=8))
    a, b = dev.answer(qs), pil.answer(qs)
    assert [x.text for x in a] == [y.text for y in b]
    assert len({x.text for x in a}) > 1, "answers do not vary: the comparison would not see a difference"


def test_engine_books_image_prefill_and_decode(backends, frames) -> None:
    dev, _ = backends
    img = frames["depth"][0]
    qs = [Question("stage-test", (img,), P.render_depth(100 * k, 200), max_new_tokens=4) for k in range(3)]
    with timing.collecting(timing.StageClock()) as clock:
        dev.answer(qs)
    assert set(clock.seconds) == {"image", "prefill", "decode"}
    assert all(v > 0 for v in clock.seconds.values())


def test_resampling_once_gives_the_processor_the_grid_and_the_same_tokens(backends) -> None:
    """resample_once: the pipeline renders each task's view straight at the backend's grid, so the
    processor resizes nothing and the model gets the same grid, token ids and layout as from the
    unified image (pixel values: one interpolation instead of two; test/unit/tasks/test_resample_once.py)."""
    dev, pil = backends
    seq = TumSequence()
    frame = Frame(seq.frames[0].rgb(), CameraModel.from_camera_info(seq.camera_info), 1, "cam")
    once = Pipeline({t: dev for t in ("depth", "pose", "corr")}, PipelineSettings(resample_once=True))
    twice = Pipeline({t: dev for t in ("depth", "pose", "corr")})
    for task in ("depth", "pose", "corr"):
        (view, img_once), (_, img_unified) = once.unified(task, frame), twice.unified(task, frame)
        size = pil.processor.image_processor.size
        gh, gw = hf_smart_resize(view.height, view.width, 32, size["shortest_edge"], size["longest_edge"])
        assert dev.model_image_size(view.width, view.height) == pil.model_image_size(view.width, view.height)
        assert img_once.shape == (gh, gw, 3), task
        assert tuple(dev.image_processor.resize(img_once).shape) == img_once.shape   # nothing left to resize
        text = dev.chat_text(Question(task, (img_once,), P.render_depth(500, 500)))
        a, b = dev.inputs(text, (img_once,)), dev.inputs(text, (img_unified,))
        for name in ("input_ids", "image_grid_thw", "mm_token_type_ids"):
            assert a[name].tolist() == b[name].tolist(), (task, name)
        level = 2 / 255   # one grey level after rescale and normalise (std 0.5)
        mean = float((a["pixel_values"] - b["pixel_values"]).abs().mean()) / level
        assert mean < 0.5, (task, mean)   # under half a grey level on average (corr: 0, its grid is exact)


def test_without_torchvision_the_image_only_processor_loads_without_a_doomed_attempt(
        tiny_checkpoint: Path, processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Qwen3-VL's AutoProcessor includes a video processor, which needs torchvision; where
    torchvision is missing, load_processor builds the image-only processor straight away instead
    of first loading the tokenizer for an AutoProcessor that fails. Same tokens and pixels."""
    import importlib.util

    import transformers

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torchvision" else real_find_spec(name, *a))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("AutoProcessor.from_pretrained was tried without torchvision")

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", refuse)
    proc = load_processor(str(tiny_checkpoint))
    text = "<|im_start|>user\nhow far is the point at coordinates (100, 200)?<|im_end|>\n"
    assert proc.tokenizer(text).input_ids == processor.tokenizer(text).input_ids
    image = [Image.fromarray(np.full((64, 96, 3), 120, np.uint8))]
    got = proc.image_processor(images=image, return_tensors="pt")
    want = processor.image_processor(images=image, return_tensors="pt")
    assert torch.equal(got["pixel_values"], want["pixel_values"])
    assert torch.equal(got["image_grid_thw"], want["image_grid_thw"])
