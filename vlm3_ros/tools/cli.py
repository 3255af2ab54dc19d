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
    "demo": ("vlm3_ros.tools.demo", "the node on the bundled TUM bag with the TOY demo model (not VLM3)"),
    "inspect": ("vlm3_ros.tools.inspect_command", "list a bag's cameras, depth, TF edges and pose topics"),
    "plan": ("vlm3_ros.tools.plan_command", "the memory the enabled tasks need on a device, and what would fit"),
    "eval": ("vlm3_ros.tools.eval_command", "score on a bag or label file with the paper's metrics"),
    "export-sft": ("vlm3_ros.tools.export_sft", "recorded bags -> VLM3 fine-tuning samples (JSONL + images)"),
    "finetune": ("vlm3_ros.tools.finetune_command", "fine-tune a checkpoint on export-sft samples (LoRA or full)"),
    "make-demo-model": ("vlm3_ros.tools.demo_model", "train the TOY demo model on the bundled bag (not VLM3)"),
    "make-test-checkpoint": ("vlm3_ros.inference.assets", "build the offline tokenizer + tiny untrained checkpoint"),
}


# What a ROS-free Python (the core on 3.10, a laptop without ROS 2) lacks for the ROS commands.
ROS_MODULES = {"rclpy", "rosidl_runtime_py", "builtin_interfaces", "std_msgs", "geometry_msgs", "sensor_msgs",
               "nav_msgs", "tf2_msgs", "diagnostic_msgs", "visualization_msgs", "lifecycle_msgs", "std_srvs"}


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
    if name == "node" and ("-h" in rest or "--help" in rest):
        from vlm3_ros.params.table import parameters_help  # pure: no ROS needed for the help

        print(parameters_help("vlm3-ros node"))
        return 0
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing.split(".")[0] not in ROS_MODULES and not missing.startswith(("vlm3_ros.msg", "vlm3_ros.srv")):
            raise
        # the pure commands (eval, inspect, make-test-checkpoint) run anywhere; these need ROS 2
        print(f"vlm3-ros {name}: needs ROS 2 ({e.name} is missing): source scripts/env.sh after scripts/setup.sh, "
              "or a ROS 2 install and this package's colcon install", file=sys.stderr)
        return 2
    if name == "node":
        return int(module.main(["vlm3-ros-node", *rest]) or 0)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
