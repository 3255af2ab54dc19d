"""The house's size limits (issue 30): no class over 300 lines and no module over 450 lines in the
package outside inference/. A failure names every offender; ``python -m vlm3_ros.testing.sizes``
lists the largest."""

from __future__ import annotations

from pathlib import Path

from vlm3_ros.testing import sizes


def test_no_class_or_module_over_the_limits() -> None:
    files = sizes.checked_files()
    assert len(files) >= 30, "the package's modules were not found"
    bad = sizes.over_limits(files)
    assert not bad, "\n".join(["over the house's size limits:", *bad, "", *sizes.report(files)])


def test_inference_is_the_only_exempt_folder() -> None:
    files = sizes.checked_files()
    assert {"inference"} == sizes.EXEMPT
    assert not [f for f in files if "inference" in f.relative_to(sizes.PKG).parts[:1]]
    assert {f.relative_to(sizes.PKG).parts[0] for f in files} >= {"serving", "ros", "eval", "testing"}


def test_checker_measures_classes_and_flags_oversized_ones(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(sizes.MAX_CLASS_LINES))
    f = tmp_path / "big.py"
    f.write_text(f"import dataclasses\n\n\n@dataclasses.dataclass\nclass Big:\n{body}\n\n    class Inner:\n"
                 "        y = 1\n\n\nclass Small:\n    z = 1\n")
    by_name = {s.name.rsplit(":", 1)[1]: s.lines for s in sizes.class_sizes(f)}
    assert by_name == {"Big": sizes.MAX_CLASS_LINES + 5, "Big.Inner": 2, "Small": 2}
    bad = sizes.over_limits([f])
    assert len(bad) == 1 and bad[0].startswith("class ") and ":Big:" in bad[0]


def test_checker_flags_an_oversized_module(tmp_path: Path) -> None:
    f = tmp_path / "long.py"
    f.write_text("x = 1\n" * (sizes.MAX_MODULE_LINES + 1))
    limit = sizes.MAX_MODULE_LINES
    assert sizes.over_limits([f]) == [f"module {f}: {limit + 1} lines (limit {limit})"]
    f.write_text("x = 1\n" * sizes.MAX_MODULE_LINES)
    assert sizes.over_limits([f]) == []
