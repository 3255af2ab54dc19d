"""The house's size limits, read from the source (ast): no class over :data:`MAX_CLASS_LINES` lines
and no module over :data:`MAX_MODULE_LINES` lines in the package, outside the folders in
:data:`EXEMPT`.

``python -m vlm3_ros.testing.sizes`` prints the largest classes and modules and every one over its
limit, and exits non-zero when one is; ``test/unit/test_sizes.py`` asserts the same.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

from vlm3_ros.testing.layers import PKG, folder_of, package_files

MAX_CLASS_LINES = 300
MAX_MODULE_LINES = 450
EXEMPT = frozenset({"inference"})  # the engine's folder, held to its own issue's limits


@dataclass(frozen=True)
class Size:
    """A class or a module and its length in lines (a class from its ``class`` line, or its first
    decorator, to its last line)."""

    name: str   # "path" for a module, "path:Class" for a class (nested classes as Outer.Inner)
    lines: int


def checked_files() -> list[Path]:
    """The package's modules the limits apply to: every one outside the exempt folders."""
    return [p for p in package_files() if folder_of(p) not in EXEMPT]


def _label(path: Path) -> str:
    try:
        return str(path.relative_to(PKG.parent))
    except ValueError:
        return str(path)


def module_size(path: Path) -> Size:
    return Size(_label(path), len(path.read_text().splitlines()))


def class_sizes(path: Path) -> list[Size]:
    """Every class in the file, nested ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[Size] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                end = child.end_lineno if child.end_lineno is not None else child.lineno
                name = f"{prefix}{child.name}"
                out.append(Size(f"{_label(path)}:{name}", end - first + 1))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def largest(files: list[Path]) -> tuple[list[Size], list[Size]]:
    """(classes, modules), each sorted largest first."""
    classes = [s for f in files for s in class_sizes(f)]
    modules = [module_size(f) for f in files]
    key = lambda s: (-s.lines, s.name)  # noqa: E731
    return sorted(classes, key=key), sorted(modules, key=key)


def over_limits(files: list[Path]) -> list[str]:
    """Every class and module over its limit, as 'name: N lines (limit L)'."""
    classes, modules = largest(files)
    return ([f"class {s.name}: {s.lines} lines (limit {MAX_CLASS_LINES})" for s in classes
             if s.lines > MAX_CLASS_LINES]
            + [f"module {s.name}: {s.lines} lines (limit {MAX_MODULE_LINES})" for s in modules
               if s.lines > MAX_MODULE_LINES])


def report(files: list[Path], top: int = 5) -> list[str]:
    """The largest classes and modules and what is over its limit, as printed."""
    classes, modules = largest(files)
    exempt = ", ".join(f"{e}/" for e in sorted(EXEMPT))
    lines = [f"{len(modules)} modules, {len(classes)} classes checked ({exempt} exempt)",
             f"largest classes (limit {MAX_CLASS_LINES} lines):"]
    lines += [f"  {s.lines:5d}  {s.name}" for s in classes[:top]]
    lines.append(f"largest modules (limit {MAX_MODULE_LINES} lines):")
    lines += [f"  {s.lines:5d}  {s.name}" for s in modules[:top]]
    bad = over_limits(files)
    lines.append(f"over the limits: {len(bad)}")
    lines += [f"  {b}" for b in bad]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlm3_ros.testing.sizes", description=__doc__.split("\n")[0])
    ap.add_argument("--top", type=int, default=5, help="how many of the largest to list (default 5)")
    args = ap.parse_args(argv)
    files = checked_files()
    print("\n".join(report(files, args.top)))
    return 1 if over_limits(files) else 0


if __name__ == "__main__":
    sys.exit(main())
