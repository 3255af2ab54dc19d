"""The package's layers and the import graph between its folders, read from the source (ast).

Layers, bottom to top; a module may import its own layer and the ones below, never above:

    geometry -> contract -> runtime -> readers -> tasks -> inference -> serving -> params -> eval
    -> training -> ros -> tools

``testing`` (test helpers) may import anything and nothing shipped may import it. Only ``ros`` and
``tools`` may import rclpy or ROS message packages. ``python -m vlm3_ros.testing.layers`` prints
the folder-level import graph.
"""

from __future__ import annotations

import ast
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
               "launch", "launch_ros", "ament_index_python"}
GENERATED = {"msg", "srv"}  # vlm3_ros.msg / vlm3_ros.srv: the generated interfaces (ROS)


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
    return sorted(p for p in PKG.rglob("*.py") if folder_of(p) not in ("data", "msg", "srv"))


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
    """folder -> the folders it imports (vlm3_ros only, generated interfaces as 'msg/srv')."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in package_files():
        src = folder_of(path)
        for module, _ in imports_of(path):
            parts = module.split(".")
            if parts[0] == "vlm3_ros" and len(parts) > 1:
                dst = "msg/srv" if parts[1] in GENERATED else parts[1]
                if dst != src and (dst == "msg/srv" or (PKG / dst).is_dir()):
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


def main() -> int:
    graph = folder_graph()
    order = [*LAYERS, TEST_ONLY, "(top)"]
    print("folder-level imports of vlm3_ros (layers bottom to top: " + " -> ".join(LAYERS) + ")")
    for src in sorted(graph, key=lambda s: order.index(s) if s in order else len(order)):
        print(f"  {src:<10} -> {', '.join(sorted(graph[src])) or '(nothing)'}")
    bad = violations()
    loops = cycles(graph)
    print(f"violations: {len(bad)}; folder loops: {len(loops)}")
    for v in bad:
        print("  " + v)
    for c in loops:
        print("  loop: " + " -> ".join(c))
    return 1 if bad or loops else 0


if __name__ == "__main__":
    sys.exit(main())
