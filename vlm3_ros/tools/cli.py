"""``vlm3-ros``: the package's command line (works where the ros2 CLI is not installed).

Sub-commands import lazily so ``vlm3-ros --help`` is instant and the pure ones need no ROS.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "node": ("vlm3_ros.ros.perception_node", "run the perception node (ROS args after --ros-args)"),
    "bringup": ("vlm3_ros.tools.bringup", "run the nodes of perception.launch.py without ros2 launch"),
    "play": ("vlm3_ros.ros.bag_player", "replay a bag's camera topics and /tf (like ros2 bag play)"),
    "call": ("vlm3_ros.ros.client", "call the perception services with readable output"),
    "demo": ("vlm3_ros.tools.demo", "the node on the bundled TUM bag with the tiny untrained checkpoint"),
    "inspect": ("vlm3_ros.tools.inspect", "list a bag's cameras, depth, TF edges and pose topics"),
    "eval": ("vlm3_ros.tools.eval", "score on a bag or label file with the paper's metrics"),
    "make-test-checkpoint": ("vlm3_ros.inference.assets", "build the offline tokenizer + tiny untrained checkpoint"),
}


def usage() -> str:
    lines = ["usage: vlm3-ros COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<22} {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Each command takes --help."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vlm3-ros: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    target = COMMANDS[name][0]
    module = importlib.import_module(target)
    if name == "node":
        if "-h" in rest or "--help" in rest:
            print("usage: vlm3-ros node [--ros-args -p NAME:=VALUE ... --params-file FILE]\n\n"
                  "Runs the perception node. Parameters: see config/perception.yaml and vlm3_ros/params/table.py.")
            return 0
        return int(module.main(["vlm3-ros-node", *rest]) or 0)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
