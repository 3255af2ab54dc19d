"""`vlm3-ros eval` end to end on the bundled TUM bags (MCAP, sqlite3, ROS 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools.eval_command import main


def test_ground_truth_backend_scores_perfectly_on_all_bag_formats(tmp_path: Path) -> None:
    out = tmp_path / "gt"
    bags = [str(BAG_PATHS[k]) for k in ("mcap", "sqlite3", "ros1")]
    assert main([*bags, "--backend", "ground_truth", "--out", str(out), "--no-progress",
                 "--points-per-frame", "16"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["sequences"]) == 3
    for s in rep["sequences"]:
        d, p = s["depth"], s["pose"]
        assert d["n"] == 5 * 16 and d["n_valid"] == d["n"] and d["parse_failures"] == 0  # every sample counted
        assert d["delta1_depthlm"] == 1.0 and d["delta1_vlm3"] == 1.0
        assert p["auc@30"] == pytest.approx(100.0) and p["parse_failures"] == 0 and p["pairs"] >= 5
        assert s["corr"]["original_px"]["epe"] < 1.0 and s["corr"]["parse_failures"] == 0
        assert s["trajectory"]["ate_rmse_m"] < 0.01
        assert s["latency"]["depth"]["n"] == 5
    assert rep["pooled"]["depth"]["n"] == 3 * 80
    assert rep["versions"]["numpy"] and rep["config"]["backend"] == "ground_truth"
    md = (out / "report.md").read_text()
    assert "TEST DOUBLE" in md and "| tum_fr1_xyz_mini.bag |" in md
    for png in ("depth_scatter.png", "trajectory_tum_fr1_xyz_mini_mcap.png"):
        assert (out / png).stat().st_size > 10_000
