"""Object-task parity: SpatialRGPT-Bench question files and VLM3's spatialrgpt label file read into
object queries, asked through the node's pipeline and scored with the SpatialRGPT functions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vlm3_ros.contract import answers
from vlm3_ros.eval.dataset import from_labels
from vlm3_ros.eval.runners import InProcessRunner
from vlm3_ros.eval.scoring import evaluate
from vlm3_ros.geometry.camera import CameraModel
from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend
from vlm3_ros.params.config import build_config
from vlm3_ros.params.mapping import pipeline_settings
from vlm3_ros.readers.labels import (
    LabelError,
    ObjectLabel,
    is_spatialrgpt_bench,
    read_spatialrgpt_bench,
    read_vlm3_labels,
)
from vlm3_ros.readers.tum import TumSequence
from vlm3_ros.tasks.pipeline import Pipeline
from vlm3_ros.testing.scripted_backend import ScriptedBackend

DATA = Path(__file__).resolve().parents[2] / "data" / "spatialrgpt"
SETTINGS = pipeline_settings(build_config({}, require_backend=False))


def test_vlm3_sample_prompt_is_written_exactly() -> None:
    """Golden: the node's object prompt for VLM3's sample item is the file's own prompt."""
    label = read_vlm3_labels(DATA / "spatialrgpt_labels.json")
    assert isinstance(label, ObjectLabel)
    assert label.question == "Can you confirm if Region [0] is smaller than Region [1]?"
    assert (label.frame.camera.width, label.frame.camera.height) == (1024, 768)
    asked = []
    backend = ScriptedBackend(lambda q, i: asked.append(q) or "Incorrect, it is not smaller.")
    r = Pipeline({"object": backend}, SETTINGS).object(label.frame, label.boxes, label.question)
    expected = json.loads((DATA / "spatialrgpt_labels.json").read_text())["prompt"]
    assert r.prompt == asked[0].text == expected
    assert asked[0].images[0].shape[:2] == (851, 1134)     # unified to f = 1000 again, as published


def _bench(tmp_path: Path, records: list[dict], jsonl: bool = False) -> Path:
    path = tmp_path / ("bench.jsonl" if jsonl else "bench.json")
    path.write_text("\n".join(json.dumps(r) for r in records) if jsonl else json.dumps(records))
    return path


@pytest.fixture(scope="module")
def tum_frame(tmp_path_factory) -> tuple[Path, np.ndarray, CameraModel, dict]:
    seq = TumSequence()
    f = seq.frames[0]
    root = tmp_path_factory.mktemp("bench")
    cv2.imwrite(str(root / "tum0.png"), cv2.cvtColor(f.rgb(), cv2.COLOR_RGB2BGR))
    cam = CameraModel.from_camera_info(seq.camera_info)
    k = {"fx": float(cam.K[0, 0]), "fy": float(cam.K[1, 1]), "cx": float(cam.K[0, 2]), "cy": float(cam.K[1, 2])}
    return root, f.depth_m(), cam, k


def _record(i: int, question: str, answer: str, boxes: list, category: str, qa_type: str, k: dict | None) -> dict:
    masked = question
    for j in range(len(boxes)):
        masked = masked.replace(f"Region [{j}]", "<mask>")
    rec = {"id": f"{qa_type}_{i:010d}", "image_info": {"file_path": "tum0.png", "width": 640, "height": 480,
                                                       "dataset": "TUM", "landmark": "indoor"},
           "qa_info": {"type": qa_type, "category": category, "class": ["a", "b"][:len(boxes)]},
           "conversations": [{"from": "human", "value": "<image>\n " + masked}, {"from": "gpt", "value": answer}],
           "text_q": question, "bbox": boxes}
    if k is not None:
        rec["intrinsics"] = k
    return rec


class _FrameDepth:
    """The TUM frame's recorded depth for every label frame (the double's source protocol)."""

    def __init__(self, depth: np.ndarray) -> None:
        self.depth = depth

    def depth_z(self, stamp_ns: int) -> np.ndarray:
        return self.depth

    def pose(self, stamp_ns: int) -> None:
        return None


def test_bench_file_scored_end_to_end_with_the_depth_double(tum_frame, tmp_path) -> None:
    root, depth, cam, k = tum_frame
    boxes = [[40, 200, 200, 400], [380, 120, 600, 300]]
    # ground truth in the benchmark's own units, computed straight from the depth image
    pts = []
    for x1, y1, x2, y2 in boxes:
        vv, uu = np.mgrid[y1:y2, x1:x2]
        z = depth[vv, uu]
        ok = z > 0
        uv = cam.undistort_pixels(np.column_stack([uu[ok], vv[ok]]).astype(float))
        K = cam.rectified().K
        pts.append(np.column_stack([(uv[:, 0] - K[0, 2]) / K[0, 0] * z[ok], (uv[:, 1] - K[1, 2]) / K[1, 1] * z[ok],
                                    z[ok]]))
    width_in = np.subtract(*np.percentile(pts[0][:, 0], [95, 5])) / 0.0254
    dist_cm = np.linalg.norm(np.median(pts[0], 0) - np.median(pts[1], 0)) * 100
    recs = [_record(0, "What is the width of Region [0]?", f"Region [0] is {width_in:.1f} inches wide.", boxes[:1],
                    "width_data", "quantitative", k),
            _record(1, "How far is Region [0] from Region [1]?", f"They are {dist_cm:.0f} centimeters apart.", boxes,
                    "distance_data", "quantitative", k),
            _record(2, "Is Region [0] to the left of Region [1]?", "Yes, Region [0] is to the left of Region [1].",
                    boxes, "left_predicate", "qualitative", k)]
    path = _bench(root, recs)
    assert is_spatialrgpt_bench(path)
    items = read_spatialrgpt_bench(path)
    ds = from_labels(items, path.name, 256)
    assert [q.category for q in ds.object] == ["width_data", "distance_data", "left_predicate"]
    runner = InProcessRunner(Pipeline({"object": GroundTruthBackend(_FrameDepth(depth))}, SETTINGS))
    res = evaluate(ds, runner, "z_depth", SETTINGS.unify["corr"])
    o = res["object"]
    assert o["n"] == 3 and o["quantitative"] == 2 and o["qualitative"] == 1
    assert o["Quan_width_acc"] == 100.0 and o["Quan_direct_distance_acc"] == 100.0
    # the double cannot judge left/right: wrong and unparsed, said so in the counts
    assert o["Qual_left/right_acc"] == 0.0 and o["unparsed"] == 1


def test_bench_parquet_strings_sidecar_intrinsics_and_errors(tum_frame, tmp_path) -> None:
    root, _, _, k = tum_frame
    rec = _record(0, "How tall is Region [0]?", "3.2 feet", [[10, 10, 100, 200]], "height_data", "quantitative",
                  None)
    # the HF parquet export: nested fields as Python-repr strings
    parquet_like = {**rec, **{key: repr(rec[key]) for key in ("image_info", "qa_info", "conversations", "bbox")}}
    path = _bench(root, [parquet_like], jsonl=True)
    with pytest.raises(LabelError, match="intrinsics"):
        read_spatialrgpt_bench(path)
    path.with_name("bench.intrinsics.json").write_text(json.dumps({"tum0.png": k}))
    (item,) = read_spatialrgpt_bench(path)
    assert item.question == "How tall is Region [0]?" and item.answer == "3.2 feet"
    np.testing.assert_array_equal(item.boxes, [[10, 10, 100, 200]])
    assert answers.parse_object(item.answer).value.quantity_m == pytest.approx(3.2 * 0.3048)
    bad = _bench(tmp_path, [{"text_q": "x", "qa_info": {}}])
    with pytest.raises(LabelError, match="record 0"):
        read_spatialrgpt_bench(bad)


def test_choice_questions_are_judged_by_the_region_named(tum_frame) -> None:
    root, _, _, k = tum_frame
    boxes = [[40, 200, 200, 400], [380, 120, 600, 300]]
    rec = _record(0, "Which is more to the left, Region [0] or Region [1]?", "Region [0] is more to the left.",
                  boxes, "left_choice", "qualitative", k)
    path = _bench(root, [rec], jsonl=True)
    ds = from_labels(read_spatialrgpt_bench(path), path.name, 256)

    def reply(q, i):   # the model names the first box of its prompt by its box text
        return q.text.split("Which is more to the left, ")[1].split(" or ")[0] + " is more to the left."

    res = evaluate(ds, InProcessRunner(Pipeline({"object": ScriptedBackend(reply)}, SETTINGS)), "z_depth",
                   SETTINGS.unify["corr"])
    assert res["object"]["Qual_choice_acc"] == 100.0 and res["object"]["unparsed"] == 0
