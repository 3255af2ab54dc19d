"""``vlm3-ros bringup``: what ``ros2 launch vlm3_ros perception.launch.py`` does, without launch.

Takes the launch file's arguments as NAME:=VALUE, reads the same YAML parameter file and runs the
same node (in this process, multi-threaded executor).
"""

from __future__ import annotations

import sys
from pathlib import Path

from vlm3_ros.params.launch_args import LAUNCH_ARGS, NODE_NAME, parameter_overrides

DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "config" / "perception.yaml"


def default_params_file() -> Path:
    if DEFAULT_PARAMS.is_file():
        return DEFAULT_PARAMS
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("vlm3_ros")) / "config" / "perception.yaml"


def ros_args(argv: list[str]) -> list[str]:
    values = {a.name: a.default for a in LAUNCH_ARGS}
    known = set(values)
    for item in argv:
        if ":=" not in item:
            raise SystemExit(f"vlm3-ros bringup: expected NAME:=VALUE, got {item!r} (see --help)")
        k, v = item.split(":=", 1)
        if k not in known:
            raise SystemExit(f"vlm3-ros bringup: unknown argument {k!r}; known: {', '.join(sorted(known))}")
        values[k] = v
    params = values["params_file"] or str(default_params_file())
    out = ["--ros-args", "-r", f"__node:={NODE_NAME}", "--params-file", params]
    if values["namespace"]:
        out += ["-r", f"__ns:={values['namespace']}"]
    # After --params-file: a launch argument given on the command line wins over the file; the
    # ones not given add nothing, so the file's values stand.
    for name, value in parameter_overrides(values).items():
        if isinstance(value, list):
            text = "[" + ",".join(str(v) for v in value) + "]"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        out += ["-p", f"{name}:={text}"]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print("usage: vlm3-ros bringup [NAME:=VALUE ...]\n\nArguments (as in perception.launch.py); an argument "
              "not given keeps the params file's value:")
        for a in LAUNCH_ARGS:
            print(f"  {a.name:<20} {a.description}" + (f" (sets {a.parameter})" if a.parameter else ""))
        return 0
    from vlm3_ros.ros.perception_node import main as node_main

    return node_main(["vlm3-ros-bringup", *ros_args(argv)])


if __name__ == "__main__":
    sys.exit(main())
