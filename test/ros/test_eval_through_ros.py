"""`vlm3-ros eval --through-ros` against the session's ground-truth node, and parity with the
in-process evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools.eval_command import main


@pytest.mark.ros
def test_through_ros_scores_the_running_node(gt_world, client, tmp_path: Path) -> None:
    """The same evaluation through the node's services (the session's ground-truth node)."""
    out = tmp_path / "ros"
    assert main([str(BAG_PATHS["mcap"]), "--through-ros", "--out", str(out), "--no-progress",
                 "--points-per-frame", "8", "--tasks", "depth,pose"]) == 0
    s = json.loads((out / "report.json").read_text())["sequences"][0]
    assert s["depth"]["n"] == 40 and s["depth"]["delta1_depthlm"] == 1.0
    assert s["pose"]["auc@30"] == pytest.approx(100.0)
    assert s["latency"]["depth"]["n"] == 5


def _flat(d: object, prefix: str = "") -> dict[str, object]:
    """Every metric of a report section as path -> value (latencies left out: they differ)."""
    if isinstance(d, dict):
        out: dict[str, object] = {}
        for k, v in d.items():
            if k != "latency":
                out.update(_flat(v, f"{prefix}/{k}"))
        return out
    if isinstance(d, list) and d and isinstance(d[0], (list, float, int)):
        return {f"{prefix}[{i}]": v for i, v in _flat_list(d)}
    return {prefix: d}


def _flat_list(values: list) -> list[tuple[int, object]]:
    flat = [x for row in values for x in (row if isinstance(row, list) else [row])]
    return list(enumerate(flat))


@pytest.mark.ros
def test_through_ros_and_in_process_give_the_same_metrics(gt_world, client, tmp_path: Path) -> None:
    """One bag, one seed, the ground-truth TEST DOUBLE in both: the node's services and the
    in-process pipeline must produce the same metric set with the same values (depth crosses DDS
    as float32, hence the tolerance)."""
    args = [str(BAG_PATHS["mcap"]), "--no-progress", "--points-per-frame", "8", "--corr-points", "4",
            "--tasks", "depth,pose,corr"]
    assert main([*args, "--backend", "ground_truth", "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--through-ros", "--out", str(tmp_path / "ros")]) == 0
    local = json.loads((tmp_path / "local" / "report.json").read_text())
    ros = json.loads((tmp_path / "ros" / "report.json").read_text())
    a, b = _flat(local["sequences"][0]), _flat(ros["sequences"][0])
    assert set(a) == set(b), set(a) ^ set(b)
    for key in ("/depth/delta1_depthlm", "/pose/auc@30", "/corr/norm1000/epe", "/trajectory/ate_rmse_m"):
        assert key in a
    for k, v in a.items():
        if isinstance(v, float):
            assert b[k] == pytest.approx(v, rel=1e-5, abs=1e-6, nan_ok=True), k
        else:
            assert b[k] == v, k
    assert _flat(local["pooled"]).keys() == _flat(ros["pooled"]).keys()
