"""``vlm3-ros export-sft``: turn recorded bags into VLM3 fine-tuning samples.

For depth (pixels with valid ground-truth depth, in the depth type the checkpoint answers in:
model.depth_type), pose (frame pairs with ground-truth poses, the contract's four questions and
answer strings), correspondence (from depth + relative pose, occlusion-checked) and object
(quantitative region questions on sampled boxes, measured on the depth: distances between two
regions, a region's width and height; boxes, not detected objects): the same
sampling and ground truth as ``vlm3-ros eval``, asked through the node's own pipeline (the same
parameters: params file and NAME:=VALUE overrides), so images and prompts are what the node sends.

Writes DIR/train.jsonl and DIR/val.jsonl (messages + images, one question per line; split by time),
DIR/images/ (each unified image once) and DIR/summary.json.

  vlm3-ros export-sft my_robot_bag --out sft_data --params-file my_robot.yaml
  vlm3-ros export-sft BAG --out sft --tasks depth,pose --points-per-frame 128 --val-fraction 0.2
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vlm3_ros.eval.dataset import EvalOptions
from vlm3_ros.geometry.camera import CameraModelError
from vlm3_ros.geometry.tf_tree import TfError
from vlm3_ros.geometry.unify import UnifyError
from vlm3_ros.params.config import ConfigError
from vlm3_ros.params.files import load_values
from vlm3_ros.params.mapping import settings_from
from vlm3_ros.readers.bag import BagError
from vlm3_ros.readers.bag_contents import TopicRequest
from vlm3_ros.readers.image_codec import ImageDecodeError
from vlm3_ros.training.export import ExportOptions, export_bags


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlm3-ros export-sft", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="BAG | NAME:=VALUE",
                   help="bag folders (MCAP/sqlite3) or ROS 1 .bag files, and parameter overrides NAME:=VALUE")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--params-file", type=Path, default=None, help="the node's ROS 2 parameter file")
    p.add_argument("--tasks", default="depth,pose,corr,object", help="comma-separated: depth,pose,corr,object")
    p.add_argument("--points-per-frame", type=int, default=64, help="depth samples per frame")
    p.add_argument("--corr-points", type=int, default=16, help="correspondence samples per frame pair")
    p.add_argument("--object-questions", type=int, default=16,
                   help="region questions per frame (sampled boxes measured on the depth; object task)")
    p.add_argument("--margin", type=int, default=16, help="border margin for sampled pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strides", default="1,2,4", help="frame-pair strides for pose and correspondence")
    p.add_argument("--min-baseline", type=float, default=0.02, help="minimum pair baseline in metres")
    p.add_argument("--max-frames", type=int, default=0, help="use at most this many frames per bag (0 = all)")
    p.add_argument("--val-fraction", type=float, default=0.3,
                   help="the last part of each bag's time span held out for validation (default 0.3)")
    p.add_argument("--image-topic", default=None, help="default: the bag's only camera (see vlm3-ros inspect)")
    p.add_argument("--camera-info-topic", default=None)
    p.add_argument("--depth-topic", default=None, help="registered depth (default: the camera's depth partner)")
    p.add_argument("--pose-topic", default="", help="PoseStamped/Odometry ground truth (default: the TF tree)")
    p.add_argument("--world-frame", default="")
    p.add_argument("--camera-frame", default="")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[export-sft] %(message)s")
    bags = [Path(x) for x in a.inputs if ":=" not in x]
    overrides = [x for x in a.inputs if ":=" in x]
    tasks = tuple(t for t in a.tasks.split(",") if t)
    try:
        settings = settings_from(load_values(a.params_file, overrides), require_backend=False)
        sampling = EvalOptions(tasks=tasks, points_per_frame=a.points_per_frame, margin_px=a.margin, seed=a.seed,
                               strides=tuple(int(s) for s in a.strides.split(",")), min_baseline_m=a.min_baseline,
                               corr_points=a.corr_points, max_frames=a.max_frames,
                               object_questions=a.object_questions)
        opts = ExportOptions(sampling=sampling, val_fraction=a.val_fraction)
        opts.validate()
        request = TopicRequest(image=a.image_topic, camera_info=a.camera_info_topic, depth=a.depth_topic,
                               pose=a.pose_topic, world_frame=a.world_frame, camera_frame=a.camera_frame)
        summary = export_bags(bags, a.out, settings.pipeline, opts, request, show_progress=not a.no_progress)
    except (ConfigError, ValueError, BagError, ImageDecodeError, CameraModelError, UnifyError, TfError, OSError) as e:
        print(f"vlm3-ros export-sft: {e}", file=sys.stderr)
        return 2
    print(summary.table())
    for reason, n in sorted(summary.dropped.items()):
        print(f"dropped {n}: {reason}")
    for note in summary.notes:
        print(f"note: {note}")
    print(f"written: {a.out / 'train.jsonl'}, {a.out / 'val.jsonl'}, {summary.images} images, "
          f"{a.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
