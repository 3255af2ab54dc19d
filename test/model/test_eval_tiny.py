"""`vlm3-ros eval` with the real transformers classes on the tiny UNTRAINED checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools.eval_command import main


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


@pytest.mark.model
def test_object_label_file_runs_through_the_real_model_and_reports(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A VLM3 spatialrgpt label file adds the object task by itself; the untrained model's answer
    is scored (wrong) and counted as unparsed in the report."""
    labels = Path(__file__).resolve().parents[1] / "data" / "spatialrgpt" / "spatialrgpt_labels.json"
    out = tmp_path / "obj"
    assert main(["--labels", str(labels), "--backend", "transformers", "--model", f"all={tiny_checkpoint}",
                 "--device", "cpu", "--max-new-tokens", "8", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    o = report["sequences"][0]["object"]
    assert o["n"] == 1 and o["qualitative"] == 1 and o["Qual_big/small_acc"] in (0.0, 100.0)
    assert "Object questions" in (out / "report.md").read_text()
