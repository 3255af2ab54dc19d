"""Published label-file formats (DepthLM JSONL, VLM3 sample label files), written here from the real
TUM frames in exactly those formats, read back and scored through the evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vlm3_ros.eval.dataset import from_labels, sample_pixels
from vlm3_ros.eval.runners import InProcessRunner
from vlm3_ros.eval.scoring import evaluate
from vlm3_ros.geometry import pose as P
from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend
from vlm3_ros.readers.labels import CorrLabels, LabelError, read_depthlm_jsonl, read_vlm3_labels
from vlm3_ros.readers.tum import TumSequence
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings
from vlm3_ros.tasks.task_registry import TASKS
from vlm3_ros.testing.scripted_backend import ScriptedBackend


def evaluate_labels(items: list, runner: InProcessRunner, name: str, depth_type: str = "z_depth") -> dict:
    """Label files through the same scoring as bags."""
    return evaluate(from_labels(items, name, 256), runner, depth_type, TASKS["corr"].unify)


class DictTruth:
    """TEST DOUBLE ground-truth source keyed by frame key."""

    def __init__(self, depth: dict[int, np.ndarray], poses: dict[int, np.ndarray]) -> None:
        self.depth, self.poses = depth, poses

    def depth_z(self, stamp_ns: int) -> np.ndarray | None:
        return self.depth.get(stamp_ns)

    def pose(self, stamp_ns: int) -> np.ndarray | None:
        return self.poses.get(stamp_ns)


def test_depthlm_jsonl_round_trip_and_scoring(tmp_path: Path) -> None:
    seq = TumSequence()
    k = seq.camera_info.k
    (tmp_path / "rgb").mkdir()
    depth_by_key, lines = {}, []
    rng = np.random.default_rng(0)
    for i, f in enumerate(seq.frames[:3]):
        name = f"rgb/{f.rgb_path.name}"
        (tmp_path / name).write_bytes(f.rgb_path.read_bytes())
        d = f.depth_m()
        px = sample_pixels(d, 12, 16, rng)
        z = d[px[:, 1].astype(int), px[:, 0].astype(int)]
        depth_by_key[i] = d
        lines.append(json.dumps({"image": name, "intrinsics": [k[0], k[4], k[2], k[5], 640, 480],
                                 "pixel_coords": px.astype(int).tolist(), "depth": z.tolist()}))
    jl = tmp_path / "tum_val.jsonl"
    jl.write_text("\n".join(lines) + "\n")
    items = read_depthlm_jsonl(jl)
    assert len(items) == 3 and items[0].pixels.shape == (12, 2)
    gt = GroundTruthBackend(DictTruth(depth_by_key, {}))
    runner = InProcessRunner(Pipeline({"depth": gt}, PipelineSettings(model_depth_type="z_depth")))
    res = evaluate_labels(items, runner, jl.name)
    assert res["depth"]["n"] == 36 and res["depth"]["delta1_depthlm"] == 1.0 and res["depth"]["parse_failures"] == 0


def test_vlm3_pose_label_file(tmp_path: Path) -> None:
    seq = TumSequence()
    pair = seq.pairs()[4]  # 0 -> 10, the longest baseline
    T_1_2 = P.invert(pair.T_j_i)
    fx, cx, cy = seq.camera_info.k[0], seq.camera_info.k[2], seq.camera_info.k[5]
    s = 750.0 / fx
    size = (int(640 * s), int(480 * s))
    for n, idx in (("pose_img1.png", pair.i), ("pose_img2.png", pair.j)):
        img = cv2.resize(cv2.imread(str(seq.frames[idx].rgb_path)), size, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(tmp_path / n), img)
    yaw, pitch, roll = P.matrix_to_ypr(T_1_2[:3, :3])
    dist = float(np.linalg.norm(T_1_2[:3, 3]))
    u = T_1_2[:3, 3] / dist
    intr = {"fx": 750.0, "fy": 750.0 * seq.camera_info.k[4] / fx, "cx": cx * s, "cy": cy * s}
    label = {"image_1": "pose_img1.png", "image_2": "pose_img2.png", "intrinsics_1_resized": intr,
             "intrinsics_2_resized": intr, "ground_truth_pose": {
                 "rotation_angle_deg": P.rotation_angle_deg(T_1_2[:3, :3]), "yaw_deg": yaw, "pitch_deg": pitch,
                 "roll_deg": roll, "translation_unit_vector": f"({u[0]:+.2f}, {u[1]:+.2f}, {u[2]:+.2f})",
                 "translation_distance_m": dist}}
    f = tmp_path / "pose_labels.json"
    f.write_text(json.dumps(label))
    item = read_vlm3_labels(f)
    assert item.metric and np.linalg.norm(item.T_a_b[:3, 3] - T_1_2[:3, 3]) < 0.01
    gt = GroundTruthBackend(DictTruth({}, {1: np.eye(4), 2: item.T_a_b}))
    res = evaluate_labels([item], InProcessRunner(Pipeline({"pose": gt})), f.name)
    assert res["pose"]["pairs"] == 1 and res["pose"]["auc@30"] == pytest.approx(100.0)
    assert res["pose"]["distance_abs_err_m_mean"] < 0.006


def test_vlm3_corr_label_file_is_scored(tmp_path: Path) -> None:
    seq = TumSequence()
    for n, idx in (("c1.png", 0), ("c2.png", 1)):
        cv2.imwrite(str(tmp_path / n), cv2.resize(cv2.imread(str(seq.frames[idx].rgb_path)), (1024, 768)))
    pa = np.array([[100.0, 200.0], [512.0, 300.0], [900.0, 700.0]])
    pb = pa + np.array([12.5, -30.25])
    corr = [{"index": i, "img1_pixel_in_resized": a.tolist(), "img2_pixel_in_resized": b.tolist()}
            for i, (a, b) in enumerate(zip(pa, pb, strict=True))]
    f = tmp_path / "pixel_corr_labels.json"
    f.write_text(json.dumps({"image_1": "c1.png", "image_2": "c2.png", "correspondences": corr}))
    item = read_vlm3_labels(f)
    assert isinstance(item, CorrLabels) and item.frame_a.image.shape == (768, 1024, 3)
    truth = {tuple(np.rint(a / [1024, 768] * 1000).astype(int)): b / [1024, 768] * 1000 for a, b in zip(pa, pb,
                                                                                                      strict=True)}

    def reply(q, i):  # TEST DOUBLE: answers each asked pixel from the labels
        import re

        x, y = (int(v) for v in re.search(r"pixel \((\d+), (\d+)\)", q.text).groups())
        bx, by = truth[(x, y)]
        return f"({bx:.0f}, {by:.0f})"

    res = evaluate_labels([item], InProcessRunner(Pipeline({"corr": ScriptedBackend(reply)})), f.name)
    # text precision: 1/1000 of 1024 and 768 px
    assert res["corr"]["original_px"]["n"] == 3 and res["corr"]["original_px"]["epe"] < 0.8


def test_malformed_label_files_are_named(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text('{"image": "a.png"}')
    with pytest.raises(LabelError, match="not a VLM3"):
        read_vlm3_labels(f)
    j = tmp_path / "x.jsonl"
    j.write_text('{"image": "a.png", "intrinsics": [1, 2]}\n')
    with pytest.raises(LabelError, match=r"x\.jsonl:1"):
        read_depthlm_jsonl(j)
