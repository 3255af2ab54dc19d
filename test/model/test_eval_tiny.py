"""`vlm3-ros eval` with the real transformers classes on the tiny UNTRAINED checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools.eval import main


@pytest.mark.model
def test_tiny_checkpoint_run_completes_and_reports_parse_failures(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "tiny"
    assert main([str(BAG_PATHS["mcap"]), "--backend", "transformers", "--model", f"all={tiny_checkpoint}",
                 "--device", "cpu", "--tasks", "depth,pose", "--max-frames", "3", "--points-per-frame", "3",
                 "--strides", "1", "--max-new-tokens", "8", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "report.json").read_text())["sequences"][0]
    assert s["depth"]["n"] == 9 and s["depth"]["parse_failures"] == 9 and s["depth"]["delta1_depthlm"] == 0.0
    assert s["pose"]["parse_failures"] == s["pose"]["pairs"] and s["pose"]["auc@30"] == 0.0
    assert s["trajectory"]["updates_failed"] == 2
