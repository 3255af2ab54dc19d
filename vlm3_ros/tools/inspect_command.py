"""``vlm3-ros inspect``: what a recording holds, and the command lines that would use it.

Lists the camera candidates (Image or CompressedImage with a CameraInfo beside it, each with its
encoding, size, rate and depth partner), the TF edges (static or moving), the ground-truth pose
topics and the time span. ``eval`` and ``play`` pick the camera themselves when the bag has one;
with several, name one with --image-topic as printed here.

  vlm3-ros inspect my_robot.mcap
  vlm3-ros inspect my_robot_bag/ --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from vlm3_ros.readers.bag import BagError
from vlm3_ros.readers.bag_contents import describe, inspect_bag


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlm3-ros inspect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", nargs="+", type=Path, help="bag folders (MCAP / sqlite3), .mcap files or ROS 1 .bag files")
    p.add_argument("--json", action="store_true", help="print the inspection as JSON (for scripts)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = []
    for bag in args.bags:
        try:
            summary = inspect_bag(bag)
        except (BagError, FileNotFoundError, ValueError) as e:
            print(f"vlm3-ros inspect: {bag}: {e}", file=sys.stderr)
            return 2
        if args.json:
            d = dataclasses.asdict(summary)
            d["path"] = str(summary.path)
            d["tf_edges"] = [{"parent": p, "child": c, "kind": k} for (p, c), k in summary.tf_edges.items()]
            out.append(d)
        else:
            print(describe(summary))
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
