"""The package's layers and the import graph between its folders, read from the source (ast).

Layers, bottom to top; a module may import its own layer and the ones below, never above:

    geometry -> contract -> runtime -> readers -> tasks -> inference -> serving -> params -> eval
    -> training -> ros -> tools

``testing`` (test helpers) may import anything and nothing shipped may import it. Only ``ros`` and
``tools`` may import rclpy or ROS message packages.

``python -m vlm3_ros.testing.layers`` prints the folder-level import graph and exits non-zero on a
violation or a loop. ``python -m vlm3_ros.testing.layers --write docs/architecture.md`` rewrites the
page's generated parts from the code: the graph block between the ``layers:graph`` markers and the
two import columns of the layer table between the ``layers:table`` markers (the table's other
columns are the page's own). ``--check PAGE`` exits non-zero when the page and the code disagree;
``test/unit/test_layers.py`` runs the same comparison.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import vlm3_ros

PKG = Path(vlm3_ros.__file__).resolve().parent
LAYERS = ("geometry", "contract", "runtime", "readers", "tasks", "inference", "serving", "params", "eval", "training",
          "ros", "tools")
TEST_ONLY = "testing"
ROS_LAYERS = {"ros", "tools"}
ROS_MODULES = {"rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "nav_msgs", "tf2_msgs", "builtin_interfaces",
               "lifecycle_msgs", "diagnostic_msgs", "std_srvs", "rcl_interfaces", "visualization_msgs",
               "action_msgs", "unique_identifier_msgs", "launch", "launch_ros", "ament_index_python"}
GENERATED = {"msg", "srv", "action"}  # vlm3_ros.msg / .srv / .action: the generated interfaces (ROS)
INTERFACES = "msg/srv/action"  # how the graph names them


def folder_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else "(top)"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every absolute import in the file, lazy ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
            if node.module == "vlm3_ros":  # from vlm3_ros import X
                out += [(f"vlm3_ros.{a.name}", node.lineno) for a in node.names]
    return out


def package_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if folder_of(p) not in ("data", *GENERATED))


def violations() -> list[str]:
    """Every import that runs up the layers, reaches testing/ from shipped code, or pulls ROS into
    the core, as 'file:line: what'."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    out = []
    for path in package_files():
        src = folder_of(path)
        rel = path.relative_to(PKG.parent)
        for module, line in imports_of(path):
            top = module.split(".")[0]
            parts = module.split(".")
            if top in ROS_MODULES or (top == "vlm3_ros" and len(parts) > 1 and parts[1] in GENERATED):
                if src not in ROS_LAYERS and src != TEST_ONLY:
                    out.append(f"{rel}:{line}: {src}/ imports ROS ({module}); only ros/ and tools/ may")
                continue
            if top != "vlm3_ros" or len(parts) < 2:
                continue
            dst = parts[1]
            if dst == TEST_ONLY and src != TEST_ONLY:
                out.append(f"{rel}:{line}: shipped {src}/ imports {module} (testing/ is for tests only)")
            elif src in rank and dst in rank and rank[dst] > rank[src]:
                out.append(f"{rel}:{line}: {src}/ imports {module} from the higher layer {dst}/")
            elif src in rank and dst not in rank and dst != TEST_ONLY and (PKG / dst).is_dir():
                out.append(f"{rel}:{line}: {src}/ imports {module}: folder {dst}/ is not in LAYERS")
    return out


def folder_graph() -> dict[str, set[str]]:
    """folder -> the folders it imports (vlm3_ros only, generated interfaces as 'msg/srv/action')."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in package_files():
        src = folder_of(path)
        for module, _ in imports_of(path):
            parts = module.split(".")
            if parts[0] == "vlm3_ros" and len(parts) > 1:
                dst = INTERFACES if parts[1] in GENERATED else parts[1]
                if dst != src and (dst == INTERFACES or (PKG / dst).is_dir()):
                    graph[src].add(dst)
        graph.setdefault(src, set())
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Folder-level import loops (depth-first search; each loop once)."""
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                loop = stack[stack.index(nxt):]
                key = tuple(sorted(loop))
                if key not in seen:
                    seen.add(key)
                    found.append([*loop, nxt])
            elif len(stack) < len(graph) + 1:
                visit(nxt, [*stack, nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def third_party() -> dict[str, set[str]]:
    """folder -> the top-level names of what it imports from outside the package and the standard
    library (ROS packages included under their own names)."""
    out: dict[str, set[str]] = defaultdict(set)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in package_files():
        src = folder_of(path)
        for module, _ in imports_of(path):
            top = module.split(".")[0]
            if top != "vlm3_ros" and top not in stdlib:
                out[src].add(top)
    return dict(out)


def _order(names: set[str] | list[str]) -> list[str]:
    """Layers bottom to top, testing, then the rest (the interfaces, the top level) by name."""
    rank = {name: i for i, name in enumerate([*LAYERS, TEST_ONLY])}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def graph_lines(graph: dict[str, set[str]] | None = None) -> list[str]:
    """The folder-level graph as printed: one line per folder, layers bottom to top, then the counts
    of violations and folder loops."""
    graph = folder_graph() if graph is None else graph
    lines = ["folder-level imports of vlm3_ros (layers bottom to top: " + " -> ".join(LAYERS) + ")"]
    for src in _order(list(graph)):
        lines.append(f"  {src:<10} -> {', '.join(_order(graph[src])) or '(nothing)'}")
    lines.append(f"violations: {len(violations())}; folder loops: {len(cycles(graph))}")
    return lines


def _third_party_cell(names: set[str]) -> str:
    ros = sorted(n for n in names if n in ROS_MODULES)
    rest = sorted(n for n in names if n not in ROS_MODULES)
    if "rclpy" in ros:
        others = [n for n in ros if n != "rclpy"]
        rest = ["rclpy", *([f"ROS packages ({', '.join(others)})"] if others else []), *rest]
    else:
        rest = sorted(names)
    return ", ".join(rest) or "(nothing)"


def table_cells(folder: str, graph: dict[str, set[str]], outside: dict[str, set[str]]) -> tuple[str, str]:
    """The generated cells of a folder's row: the package folders it imports, what else it imports."""
    inside = ", ".join(f"`{d}/`" if d in graph else f"`{d}`" for d in _order(graph.get(folder, set())))
    return inside or "(nothing)", _third_party_cell(outside.get(folder, set()))


# The page's generated parts sit between these marker lines (HTML comments: invisible when rendered).
GRAPH_BEGIN = "<!-- layers:graph begin (generated: python -m vlm3_ros.testing.layers --write PAGE) -->"
GRAPH_END = "<!-- layers:graph end -->"
TABLE_BEGIN = "<!-- layers:table begin (last two columns generated: python -m vlm3_ros.testing.layers --write PAGE) -->"
TABLE_END = "<!-- layers:table end -->"
_ROW_FOLDER = re.compile(r"^\|\s*`([a-z_]+)/`\s*\|")


def _between(text: str, begin: str, end: str) -> tuple[int, int]:
    """Offsets of the text between the two marker lines (exclusive); ValueError when either is
    missing or they are out of order."""
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"markers not found in order: {begin!r} ... {end!r}")
    return i + len(begin) + 1, j


def render_page(text: str) -> str:
    """The page with its generated parts made from the code: the graph block and, in the layer table,
    the last two cells of every row (the other cells are kept). ValueError when a marker is missing
    or the table's rows are not the layers bottom to top followed by ``testing/``."""
    graph, outside = folder_graph(), third_party()
    a, b = _between(text, GRAPH_BEGIN, GRAPH_END)
    text = text[:a] + "```\n" + "\n".join(graph_lines(graph)) + "\n```\n" + text[b:]
    a, b = _between(text, TABLE_BEGIN, TABLE_END)
    rows, folders = [], []
    for line in text[a:b].splitlines():
        m = _ROW_FOLDER.match(line)
        if m:
            folder = m.group(1)
            folders.append(folder)
            cells = line.strip().strip("|").split("|")
            if len(cells) < 4:
                raise ValueError(f"the row for {folder}/ needs at least 4 cells: {line!r}")
            line = "|" + "|".join([*cells[:-2], f" {' | '.join(table_cells(folder, graph, outside))} "]) + "|"
        rows.append(line)
    if folders != [*LAYERS, TEST_ONLY]:
        raise ValueError(f"the table's rows are {folders}; they must be {[*LAYERS, TEST_ONLY]}, bottom to top")
    return text[:a] + "\n".join(rows) + "\n" + text[b:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlm3_ros.testing.layers", description=__doc__.split("\n")[0])
    ap.add_argument("--write", metavar="PAGE", type=Path, help="rewrite the page's generated graph and table columns")
    ap.add_argument("--check", metavar="PAGE", type=Path, help="exit 1 when the page's generated parts are stale")
    args = ap.parse_args(argv)
    graph = folder_graph()
    print("\n".join(graph_lines(graph)))
    bad = violations()
    loops = cycles(graph)
    for v in bad:
        print("  " + v)
    for c in loops:
        print("  loop: " + " -> ".join(c))
    stale = False
    for page, write in ((args.write, True), (args.check, False)):
        if page is None:
            continue
        text = page.read_text()
        new = render_page(text)
        if new == text:
            print(f"{page}: up to date")
        elif write:
            page.write_text(new)
            print(f"{page}: rewritten")
        else:
            stale = True
            print(f"{page}: stale; run python -m vlm3_ros.testing.layers --write {page}")
    return 1 if bad or loops or stale else 0


if __name__ == "__main__":
    sys.exit(main())
