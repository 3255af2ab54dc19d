#!/usr/bin/env python3
"""Where the time between a camera frame and a GetDepth reply goes, stage by stage, with the image
processing on the model's device (ours), the same with one resampling straight to the model's grid
(``once``: parameter resample_once) and through the checkpoint's PIL processor (the naive way) side
by side in one run, for 1, 8, 64 and 256 depth points on the bundled TUM frames.

  python bench/latency.py                                   # CPU, tiny offline checkpoint (untrained)
  python bench/latency.py --arch 4b --device cuda --dtype bfloat16   # true Qwen3-VL-4B shape, random weights

The request runs the node's own code without DDS: the camera callback's decode
(ros.conversions.image_to_rgb), the serving core (queue, unify, image, prefill, decode, parse;
vlm3_ros.runtime.timing) and the service's response conversion (ros.services.get_depth), plus
the sparse cloud's packing (geometry.backproject.pack_points + ros.conversions.pointcloud2) for
the answered points. "outside the model" is everything except prefill and decode. Median over
--frames frames after one warm-up frame. Writes bench/results/latency_<arch>_<device>.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_common.backends import BenchModel, default_checkpoint, on_same_model
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent

STAGE_FIELDS = ("queue_s", "preprocess_s", "image_s", "prefill_s", "decode_s", "parse_s", "convert_s")
COLUMNS = ("decode_cb", "queue", "unify", "image", "prefill", "decode", "parse", "convert", "cloud")


# image path -> (model.image_processing, resample_once)
PATHS = {"device": ("device", False), "once": ("device", True), "pil": ("pil", False)}


def path_params(path: str) -> dict:
    """The node parameters of image path ``path``."""
    processing, once = PATHS[path]
    return {"model.image_processing": processing, "resample_once": once}


def backends(model: BenchModel, paths: list[str]) -> dict:
    """One backend per image path (configured from its node parameters), sharing one model."""
    first = model.backend("engine", path_params(paths[0]))
    return {path: first if i == 0 else on_same_model(first, model.backend_config("engine", path_params(path)))
            for i, path in enumerate(paths)}


def serving_core(model: BenchModel, backend, path: str):
    """The node's serving core on ``backend``, configured from the node's parameters."""
    from vlm3_ros.serving.core import PerceptionCore

    settings = model.settings("engine", path_params(path))
    core = PerceptionCore()
    if not core.configure(settings.serving, settings.pipeline, lambda: {"depth": backend}):
        raise RuntimeError("core did not configure")
    if not core.activate():
        raise RuntimeError("core did not activate")
    return core


def ros_available() -> bool:
    """Whether ROS 2's message packages and this package's generated interfaces import here (a
    GPU machine with torch alone has neither: the request then goes straight to the serving core)."""
    try:
        import vlm3_ros.msg
        import vlm3_ros.ros.services  # noqa: F401
    except ImportError:
        return False
    return True


def ros_request(core, frame, px: np.ndarray, stamp: int) -> dict:
    """One GetDepth the way the node answers it: the camera callback's decode, the service
    handler with its response conversion, the sparse cloud's packing."""
    from vlm3_ros.geometry.backproject import pack_points
    from vlm3_ros.msg import FrameSelector, Pixel
    from vlm3_ros.ros import conversions as cv
    from vlm3_ros.ros.services import get_depth
    from vlm3_ros.srv import GetDepth

    rgb, info = frame
    msg = cv.rgb_to_image(rgb, stamp, info.frame_id)
    t = time.perf_counter()
    rgb = cv.image_to_rgb(msg, 4096 * 4096)   # what the camera callback does per frame
    decode_cb = time.perf_counter() - t
    core.camera.on_camera_info(stamp, info)
    core.camera.on_image(stamp, msg.header.frame_id, lambda rgb=rgb: rgb)
    req = GetDepth.Request(frame=FrameSelector(mode=FrameSelector.BY_STAMP, stamp=cv.to_time(stamp)),
                           pixels=[Pixel(x=float(x), y=float(y)) for x, y in px])
    sync()
    t = time.perf_counter()
    resp = get_depth(core.services, req, GetDepth.Response())
    total = time.perf_counter() - t
    pts = np.array([[p.x, p.y, p.z] for p in resp.points], dtype=np.float32).reshape(-1, 3)
    t = time.perf_counter()
    cv.pointcloud2(pack_points(pts), stamp, msg.header.frame_id)
    cloud = time.perf_counter() - t
    tm = resp.timing
    return {"decode_cb": decode_cb, **{c: getattr(tm, s) for c, s in zip(COLUMNS[1:8], STAGE_FIELDS, strict=True)},
            "cloud": cloud, "service_total": total, "status": int(resp.status.code),
            "image_tokens": int(tm.prompt_tokens)}


def core_request(core, frame, px: np.ndarray, stamp: int) -> dict:
    """The same request without ROS 2: straight to the serving core (no camera decode, response
    conversion or cloud packing, which stay NaN: 'n/a' in the table)."""
    from vlm3_ros.serving.core import FrameMode, FrameRef

    rgb, info = frame
    core.camera.on_camera_info(stamp, info)
    core.camera.on_image(stamp, info.frame_id, lambda rgb=rgb: rgb)
    sync()
    t = time.perf_counter()
    reply = core.services.get_depth(FrameRef(FrameMode.BY_STAMP, stamp), px, 0)   # 0: GetDepth.Z_DEPTH
    total = time.perf_counter() - t
    nan = float("nan")
    tm = reply.result.timings if reply.result is not None else None
    stages = {c: (getattr(tm, s) if tm is not None else nan) for c, s in zip(COLUMNS[1:8], STAGE_FIELDS, strict=True)}
    stages["convert"] = nan
    return {"decode_cb": nan, **stages, "cloud": nan, "service_total": total, "status": int(reply.code),
            "image_tokens": int(tm.prompt_tokens) if tm is not None else 0}


def sync() -> None:
    """Finish the device's queued work before a clock is read (CUDA runs asynchronously)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def run_path(a: argparse.Namespace, core, points: int, stamp_base: int, ros: bool) -> dict:
    from vlm3_ros.readers.tum import TumSequence

    seq = TumSequence()
    rng = np.random.default_rng(0)
    request = ros_request if ros else core_request
    rows = []
    for k in range(a.frames + 1):  # frame 0 warms up
        f = seq.frames[k % len(seq.frames)]
        stamp = int(f.rgb_stamp * 1e9) + stamp_base + k   # a new frame each time: no render cache hit
        px = np.column_stack([rng.uniform(10, 630, points), rng.uniform(10, 470, points)])
        row = request(core, (f.rgb(), seq.camera_info), px, stamp)
        if k:
            rows.append(row)
    med = {c: float(np.median([r[c] for r in rows])) for c in (*COLUMNS, "service_total")}
    med["outside_model"] = sum(med[c] for c in COLUMNS if c not in ("prefill", "decode") and not np.isnan(med[c]))
    med["frames"] = len(rows)
    med["points"] = points
    med["statuses"] = sorted({r["status"] for r in rows})
    return med


def status_names(row: dict) -> str:
    from vlm3_ros.serving.status import StatusCode

    return ", ".join(StatusCode(c).name for c in row["statuses"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "4b"), default="tiny")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="tiny checkpoint (its tokenizer/processor also serve --arch 4b); default: "
                        "$VLM3_CACHE/tiny_qwen3_vl")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--points", default="1,8,64,256")
    p.add_argument("--paths", default="device,once,pil",
                   help=f"image processing paths to compare, of {sorted(PATHS)}")
    p.add_argument("--frames", type=int, default=3, help="timed frames per configuration (after 1 warm-up)")
    p.add_argument("--answer-tokens", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    if a.frames < 3:
        p.error("--frames must be >= 3 (medians of fewer frames are not reported)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm import tqdm

    from vlm3_ros.inference.assets import make_test_checkpoint

    a.checkpoint = a.checkpoint or default_checkpoint()
    make_test_checkpoint(a.checkpoint)
    paths = a.paths.split(",")
    if not set(paths) <= set(PATHS):
        p.error(f"--paths: each of {sorted(PATHS)}")
    writer = ResultsWriter(a.out, f"latency_{a.arch}_{a.device.replace(':', '')}",
                           command_line(__file__, argv))
    ros = ros_available()
    if not ros:
        print("latency: ROS 2 (or this package's generated interfaces) not importable here: requests go straight "
              "to the serving core; camera decode, response conversion and cloud packing are not measured",
              file=sys.stderr)
    model = BenchModel.from_args(a)
    cores = {path: serving_core(model, backend, path) for path, backend in backends(model, paths).items()}
    jobs = [(pts, path) for pts in (int(x) for x in a.points.split(",")) for path in cores]
    rows = []
    for i, (pts, path) in enumerate(tqdm(jobs, desc="latency", unit="config")):
        r = run_path(a, cores[path], pts, stamp_base=i * 10**10, ros=ros)
        r["path"] = path
        rows.append(r)
        tqdm.write(f"{path:>6} {pts:>4} points: service {r['service_total'] * 1e3:8.1f} ms, outside the model "
                   f"{r['outside_model'] * 1e3:6.1f} ms (image {r['image'] * 1e3:5.1f} ms)")
    for core in cores.values():
        core.cleanup()
    meta = {"arch": a.arch, "device": a.device, "dtype": a.dtype, "answer_tokens": a.answer_tokens,
            "batch_size": a.batch_size, "frames": a.frames, "ros": ros}
    head = ("| points | image path | camera decode | queue | unify | image | prefill | decode | parse | convert "
            "| cloud pack | outside the model | service total | statuses |")
    body = ["Stages: docs/engine.md. `outside the model` = all but prefill and decode. `image path`: device = "
            "vlm3_ros.inference.image_processing (ours); once = the same, the unified view rendered straight at the "
            "model's grid (resample_once: one resampling, so `unify` holds the only resize and `image` none); pil = "
            "the checkpoint's processor (the naive way)."
            + ("" if ros else " No ROS 2 on this machine: requests went straight to the serving core, so camera "
               "decode, convert and cloud pack are n/a (their CPU costs: latency_tiny_cpu.md)."), "",
            head, "|" + "---|" * 14]
    for r in rows:
        cells = ["n/a" if np.isnan(r[c]) else f"{r[c] * 1e3:.2f}" for c in COLUMNS]
        body.append(f"| {r['points']} | {r['path']} | " + " | ".join(cells) +
                    f" | {r['outside_model'] * 1e3:.1f} | {r['service_total'] * 1e3:.1f} | {status_names(r)} |")
    md = writer.write(f"Latency by stage ({a.arch}, {a.device}, {a.answer_tokens} answer tokens, median of "
                      f"{a.frames} frames, ms)", {"meta": meta, "rows": rows}, body)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
