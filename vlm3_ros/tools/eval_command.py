"""``vlm3-ros eval``: score VLM3 on recorded data with the paper's metrics.

Reads a rosbag2 (MCAP, sqlite3) or ROS 1 bag: camera image + CameraInfo, ground-truth depth
(16UC1 mm or 32FC1 m, REP 118) and ground-truth poses (/tf chain world -> camera, or a PoseStamped
/ Odometry topic), or published label files (--labels). Samples depth pixels, frame pairs and
correspondences, runs them through the pipeline built from the node's own parameters (the same
params file and NAME:=VALUE overrides as the bring-up), in-process or, with --through-ros, through
a running node's services, and writes report.json, report.md and PNG plots.

  vlm3-ros eval BAG --params-file my_robot.yaml                 # what the robot runs, scored
  vlm3-ros eval BAG depth_model:=/models/VLM3-depth rectify:=false interpolation:=area
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vlm3_ros.eval.dataset import EvalOptions
from vlm3_ros.eval.evaluation import run_evaluation
from vlm3_ros.eval.report import write_report
from vlm3_ros.geometry.backproject import DEPTH_TYPES
from vlm3_ros.geometry.camera import CameraModelError
from vlm3_ros.geometry.tf_tree import TfError
from vlm3_ros.geometry.unify import UnifyError
from vlm3_ros.params.config import ConfigError
from vlm3_ros.params.files import load_values
from vlm3_ros.params.mapping import settings_from
from vlm3_ros.params.node_settings import NodeSettings
from vlm3_ros.params.table import choices
from vlm3_ros.readers.bag import BagError
from vlm3_ros.readers.bag_contents import TopicRequest
from vlm3_ros.readers.image_codec import ImageDecodeError
from vlm3_ros.readers.labels import LabelError
from vlm3_ros.readers.trajectory_file import TrajectoryFileError
from vlm3_ros.tasks.task_registry import TASK_NAMES, TASKS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlm3-ros eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="BAG | NAME:=VALUE",
                   help="bag folders (MCAP/sqlite3) or ROS 1 .bag files, and parameter overrides NAME:=VALUE "
                        "(parameter or launch-argument names, as for vlm3-ros bringup)")
    p.add_argument("--params-file", type=Path, default=None,
                   help="the node's ROS 2 parameter file (the settings the robot runs)")
    p.add_argument("--labels", nargs="+", type=Path, default=[],
                   help="published label files instead of bags: DepthLM *.jsonl, VLM3 *_labels.json, "
                        "SpatialRGPT-Bench question files (.json/.jsonl; object task)")
    p.add_argument("--out", type=Path, default=Path("eval_out"), help="output directory (default eval_out)")
    p.add_argument("--backend", choices=choices("backend"), default=None, help="shorthand for backend:=NAME")
    p.add_argument("--model", action="append", default=[], metavar="TASK=PATH",
                   help="shorthand for model.TASK_path:=PATH, e.g. depth=/models/VLM3-depth (repeat); "
                        "'all=PATH' for one model")
    p.add_argument("--device", default=None, help="shorthand for model.device:=...")
    p.add_argument("--dtype", choices=choices("model.dtype"), default=None, help="shorthand for model.dtype:=...")
    p.add_argument("--remote-url", default=None, help="shorthand for remote.url:=...")
    p.add_argument("--model-depth-type", choices=choices("model.depth_type"), default=None,
                   help="shorthand for model.depth_type:=... (what the depth checkpoint's number means)")
    p.add_argument("--max-new-tokens", type=int, default=0,
                   help="shorthand: every task's max_new_tokens.TASK:=N")
    p.add_argument("--tasks", default=None,
                   help=f"comma-separated: {','.join(TASK_NAMES)} (default depth,pose,corr; object added when a "
                        "label file holds SpatialRGPT-Bench questions; on a bag, object asks region questions "
                        "on sampled boxes, measured on the depth)")
    p.add_argument("--points-per-frame", type=int, default=32)
    p.add_argument("--corr-points", type=int, default=8, help="correspondence queries per frame pair")
    p.add_argument("--object-questions", type=int, default=4,
                   help="with --tasks ...,object on a bag: region questions per frame")
    p.add_argument("--margin", type=int, default=16, help="border margin for sampled pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depth-type", choices=DEPTH_TYPES, default="z_depth",
                   help="what the queries ask and ground truth is compared as")
    p.add_argument("--strides", default="1,2,4", help="frame-pair strides for pose and correspondence")
    p.add_argument("--min-baseline", type=float, default=0.02, help="minimum pair baseline in metres")
    p.add_argument("--max-frames", type=int, default=0, help="use at most this many frames per bag (0 = all)")
    p.add_argument("--image-topic", default=None,
                   help="Image or CompressedImage topic (default: the bag's only camera; see vlm3-ros inspect)")
    p.add_argument("--camera-info-topic", default=None, help="default: the camera_info beside the image topic")
    p.add_argument("--depth-topic", default=None,
                   help="registered depth, Image 16UC1/32FC1 or compressedDepth (default: the camera's depth "
                        "partner; '' = none)")
    p.add_argument("--compressed", action="store_true", help="with raw and compressed copies, use the compressed")
    p.add_argument("--pose-topic", default="",
                   help="PoseStamped/Odometry/TransformStamped ground truth (default: the TF tree)")
    p.add_argument("--trajectory", type=Path, default=None, help="ground-truth camera poses from a file instead")
    p.add_argument("--trajectory-format", choices=("", "tum", "kitti"), default="",
                   help="tum: 'time tx ty tz qx qy qz qw'; kitti: 3x4 per image ('' = by the columns)")
    p.add_argument("--world-frame", default="", help="ground-truth world frame (default: the root of the camera's "
                                                     "TF tree)")
    p.add_argument("--camera-frame", default="", help="camera optical frame (default: the image's frame_id)")
    p.add_argument("--through-ros", action="store_true",
                   help="send the queries to a running perception node (publishes the frames on its topics)")
    p.add_argument("--node", default="/vlm3_perception", help="with --through-ros: the node to query")
    p.add_argument("--node-image-topic", default="/camera/rgb/image_color", help="with --through-ros")
    p.add_argument("--node-camera-info-topic", default="/camera/rgb/camera_info", help="with --through-ros")
    p.add_argument("--no-progress", action="store_true")
    return p


def node_settings(a: argparse.Namespace, overrides: list[str], tasks: tuple[str, ...]) -> NodeSettings:
    """The node's settings: params file, then NAME:=VALUE overrides, then the shorthand flags;
    what only the node's own outputs need (VO, the sparse cloud) follows the tasks. The requests
    asked must fit the node's point limit."""
    values: dict[str, Any] = load_values(a.params_file, overrides)
    shorthand = {"backend": a.backend, "model.device": a.device, "model.dtype": a.dtype,
                 "remote.url": a.remote_url, "model.depth_type": a.model_depth_type}
    values.update({k: v for k, v in shorthand.items() if v is not None})
    for m in a.model:
        task, _, path = m.partition("=")
        if task != "all" and task not in TASKS:
            raise ConfigError(f"--model {m!r}: the task must be one of {list(TASKS)} or 'all'")
        for t in (tasks if task == "all" else (task,)):
            values[TASKS[t].model_param] = path
    if a.max_new_tokens:
        values.update({s.tokens_param: a.max_new_tokens for s in TASKS.values()})
    values["enabled_tasks"] = list(tasks)
    values["vo.enabled"] = "pose" in tasks
    values["sparse_depth.rate_hz"] = 0.0
    if values.get("backend") == "ground_truth":
        values.setdefault("ground_truth.bag", "-")  # set per evaluated bag (eval.evaluation.backend_configs)
    settings = settings_from(values, require_backend=not a.through_ros)
    limit = settings.pipeline.max_points
    checks = (("--points-per-frame", a.points_per_frame, "depth"), ("--corr-points", a.corr_points, "corr"))
    for flag, n, task in checks:
        if task in tasks and n > limit:
            raise ConfigError(f"{flag} {n} exceeds max_points_per_request={limit}, the most the node accepts; "
                              f"lower it or raise the limit (max_points_per_request:={n})")
    return settings


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[eval] %(message)s")
    bags = [Path(x) for x in a.inputs if ":=" not in x]
    overrides = [x for x in a.inputs if ":=" in x]
    if not bags and not a.labels:
        print("vlm3-ros eval: give bags or --labels files", file=sys.stderr)
        return 2
    from vlm3_ros.readers.labels import is_spatialrgpt_bench

    default = "depth,pose,corr" + (",object" if any(lf.suffix in (".json", ".jsonl") and (
        is_spatialrgpt_bench(lf) or "spatialrgpt" in lf.name) for lf in a.labels) else "")
    tasks = tuple(t for t in (a.tasks or default).split(",") if t)
    try:
        settings = node_settings(a, overrides, tasks)
    except ConfigError as e:
        print(f"vlm3-ros eval: {e}", file=sys.stderr)
        return 2
    if a.labels and settings.backend == "ground_truth":
        print("vlm3-ros eval: the ground-truth backend needs a bag; label files need a model backend", file=sys.stderr)
        return 2
    request = TopicRequest(image=a.image_topic, camera_info=a.camera_info_topic, depth=a.depth_topic,
                           pose=a.pose_topic, world_frame=a.world_frame, camera_frame=a.camera_frame,
                           compressed=True if a.compressed else None)
    opts = EvalOptions(tasks=tasks, points_per_frame=a.points_per_frame, margin_px=a.margin, seed=a.seed,
                       depth_type=a.depth_type, strides=tuple(int(s) for s in a.strides.split(",")),
                       min_baseline_m=a.min_baseline, corr_points=a.corr_points, max_frames=a.max_frames,
                       object_questions=a.object_questions)
    try:
        if a.through_ros:
            from vlm3_ros.ros.ros_runner import evaluate_through_ros

            report = evaluate_through_ros(settings, bags, a.labels, request, opts, a.node, a.node_image_topic,
                                          a.node_camera_info_topic, not a.no_progress, a.trajectory,
                                          a.trajectory_format)
            backend = f"through-ros:{a.node}"
        else:
            report = run_evaluation(settings, bags, a.labels, request, opts, show_progress=not a.no_progress,
                                    trajectory_file=a.trajectory, trajectory_format=a.trajectory_format)
            backend = settings.backend
    except (BagError, LabelError, ConfigError, TrajectoryFileError, ImageDecodeError, CameraModelError, UnifyError,
            TfError, OSError) as e:
        # what the user gave cannot be read as asked: one line that says what, no traceback
        print(f"vlm3-ros eval: {e}", file=sys.stderr)
        return 2
    cli = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    report["config"] = json.loads(json.dumps({**cli, "backend": backend, "bags": [str(b) for b in bags],
                                              "overrides": overrides}, default=str))
    write_report(report, a.out)
    print((a.out / "report.md").read_text())
    print(f"written: {a.out / 'report.json'}, {a.out / 'report.md'}, plots in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
