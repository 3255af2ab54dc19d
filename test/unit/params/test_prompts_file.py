"""The prompts_file parameter: YAML overrides of the contract's templates, checked at configure."""

from __future__ import annotations

import pytest

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.params.config import ConfigError
from vlm3_ros.params.mapping import load_prompts


def test_prompts_file_overrides_and_errors(tmp_path) -> None:
    f = tmp_path / "prompts.yaml"
    f.write_text('corr_think_suffix: true\ndepth: "Depth of ({nx}, {ny}) in metres? <answer> </answer>"\n')
    ps = load_prompts(str(f))
    assert ps.render_depth(3, 4) == "Depth of (3, 4) in metres? <answer> </answer>" and ps.corr_think_suffix
    assert load_prompts("") == PromptSet()
    f.write_text("depht: x\n")
    with pytest.raises(ConfigError, match="unknown prompt keys"):
        load_prompts(str(f))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_prompts(str(tmp_path / "missing.yaml"))
