"""``vlm3-ros eval`` on bags as RealSense, ZED and OAK drivers record them (raw, compressed,
sqlite3), with no topic or frame flags: the ground-truth TEST DOUBLE scores exactly the
recording's ceiling (ideal answers under the contract's quantisation), every pose pair is right,
and what cannot be read is one line on stderr with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm3_ros.eval.ceiling import WARN_DELTA1, add_ceiling
from vlm3_ros.geometry.pose import matrix_to_quat_xyzw
from vlm3_ros.readers.tum import TumSequence
from vlm3_ros.testing.recordings import STYLES
from vlm3_ros.tools import eval_command as eval_cli

FIXTURES = ["realsense", "realsense_compressed", "realsense_db3", "zed", "zed_compressed", "oak", "oak_compressed"]
FAST = ["--backend", "ground_truth", "--points-per-frame", "16", "--no-progress"]


def _run(args: list[str], out: Path) -> dict:
    assert eval_cli.main([*args, "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("name", FIXTURES)
def test_the_ideal_model_scores_the_ceiling_without_topic_flags(recordings, tmp_path: Path, name: str) -> None:
    report = _run([str(recordings[name]), *FAST], tmp_path)
    (seq,) = report["sequences"]
    style = STYLES[name.split("_")[0]]
    assert seq["topics"]["image"].startswith(style.color) and seq["topics"]["depth"].startswith(style.depth)
    assert (seq["topics"]["image"].endswith("/compressed")) == name.endswith("compressed")
    d, p, c = seq["depth"], seq["pose"], seq["corr"]
    assert d["n"] == 16 * len(TumSequence().frames) and d["parse_failures"] == 0
    # the double answers ground truth at the integer unified pixel the prompt names: exactly the ceiling
    assert d["delta1_depthlm"] == d["ceiling"]["delta1"] and d["abs_rel"] == pytest.approx(d["ceiling"]["abs_rel"])
    assert d["ceiling"]["n"] == d["n"]
    assert p["pairs"] > 10 and (p["auc@5"], p["auc@10"], p["auc@30"]) == (100.0, 100.0, 100.0)
    assert c["original_px"]["epe"] == pytest.approx(c["ceiling"]["epe"])
    md = (tmp_path / "report.md").read_text()
    assert "## Ceiling: the ideal model on the same questions" in md and "TEST DOUBLE" in md


def test_depth_only_needs_no_poses_and_a_trajectory_file_replaces_tf(recordings, tmp_path: Path) -> None:
    bag = recordings["realsense"]
    depth_only = _run([str(bag), *FAST, "--tasks", "depth", "--camera-frame", "not_in_the_tree"], tmp_path / "d")
    assert "pose" not in depth_only["sequences"][0] and depth_only["sequences"][0]["depth"]["n"] > 0
    seq = TumSequence()
    lines = []
    for i, f in enumerate(seq.frames):
        P = seq.pose_at(i)
        lines.append(f"{f.rgb_stamp:.9f} " + " ".join(f"{v:.9f}" for v in (*P[:3, 3], *matrix_to_quat_xyzw(P[:3, :3]))))
    traj = tmp_path / "groundtruth.txt"
    traj.write_text("\n".join(lines) + "\n")
    # the file's camera poses, with the bag's TF ignored: the pose answers are right again
    rep = _run([str(bag), *FAST, "--tasks", "pose", "--trajectory", str(traj), "--camera-frame", "not_in_the_tree"],
               tmp_path / "p")
    assert rep["sequences"][0]["pose"]["auc@5"] == 100.0


@pytest.mark.parametrize("args, needle", [
    (["/no/such/bag"], "does not exist"),
    (["{realsense}", "--tasks", "pose", "--camera-frame", "camera_rgb_optical_frame"],
     "camera frame 'camera_rgb_optical_frame' is not in its TF tree"),
    (["{realsense}", "--image-topic", "/camera/rgb/image_color"], "no camera image with a camera_info beside it"),
    (["{realsense}", "--trajectory", "/no/such/file.txt", "--tasks", "pose"], "file.txt"),
])
def test_what_cannot_be_read_is_one_line(recordings, tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    argv = [a.format(realsense=recordings["realsense"]) for a in args]
    assert eval_cli.main([*argv, *FAST, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("vlm3-ros eval: ")


def test_a_low_ceiling_is_a_warning_in_the_report() -> None:
    res = {"depth": {"delta1_depthlm": 0.95}, "notes": []}
    add_ceiling(res, {"depth": {"delta1": 0.969, "abs_rel": 0.02, "n": 100}})
    assert res["depth"]["ceiling"]["delta1"] == 0.969
    assert len(res["notes"]) == 1 and "0.969" in res["notes"][0] and str(WARN_DELTA1) in res["notes"][0]
    ok = {"depth": {"delta1_depthlm": 1.0}, "notes": []}
    add_ceiling(ok, {"depth": {"delta1": 0.995, "abs_rel": 0.01, "n": 100}})
    assert ok["notes"] == []
