"""``vlm3-ros eval``: score VLM3 on recorded data with the paper's metrics.

Reads a rosbag2 (MCAP, sqlite3) or ROS 1 bag: camera image + CameraInfo, ground-truth depth
(16UC1 mm or 32FC1 m, REP 118) and ground-truth poses (/tf chain world -> camera, or a PoseStamped
/ Odometry topic). Samples depth pixels (seeded, valid ground truth, border margin), frame pairs
(strides, minimum baseline) and correspondences (from depth + pose, occlusion-checked), runs the
same Pipeline the node uses (in-process; ``--through-ros`` calls a running perception node's
services instead), and writes report.json, report.md and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros import metrics as M
from vlm3_ros import pose as P
from vlm3_ros.backproject import convert_depth
from vlm3_ros.bag import BagReader, BagTopics
from vlm3_ros.camera import CameraModel
from vlm3_ros.ground_truth import Trajectory, correspondences_from_depth
from vlm3_ros.odometry import KeyframeOdometry, KeyframePolicy
from vlm3_ros.pipeline import Frame, Pipeline, PipelineSettings, PointCode

LOG = logging.getLogger("vlm3_ros.eval")


@dataclass
class EvalOptions:
    tasks: tuple[str, ...] = ("depth", "pose", "corr")
    points_per_frame: int = 32
    margin_px: int = 16
    seed: int = 0
    depth_type: str = "z_depth"
    strides: tuple[int, ...] = (1, 2, 4)
    min_baseline_m: float = 0.02
    corr_points: int = 8
    max_frames: int = 0
    depth_tolerance_s: float = 0.02


@dataclass
class SequenceData:
    name: str
    frames: list[Frame]
    depth: dict[int, np.ndarray]           # image stamp -> z-depth (m), registered to the image
    trajectory: Trajectory | None
    notes: list[str] = field(default_factory=list)


def load_sequence(path: Path, topics: BagTopics, opts: EvalOptions) -> SequenceData:
    reader = BagReader(path, topics)
    reader.require("image", "camera_info")
    info = {}
    images = []
    depth_raw = {}
    for rec in reader.records(("image", "camera_info", "depth")):
        if rec.kind == "camera_info":
            info[rec.value.stamp_ns] = rec.value.info
        elif rec.kind == "image":
            images.append(rec.value)
        elif rec.kind == "depth":
            depth_raw[rec.value.stamp_ns] = rec.value
    if not info:
        raise ValueError(f"{path}: no CameraInfo on {topics.camera_info}")
    frames = []
    stamps = np.array(sorted(info))
    for im in images:
        k = int(stamps[np.argmin(np.abs(stamps - im.stamp_ns))])
        frames.append(Frame(im.rgb(), CameraModel.from_camera_info(info[k]), im.stamp_ns, im.frame_id))
    if opts.max_frames:
        frames = frames[:opts.max_frames]
    notes = []
    depth = {}
    if depth_raw:
        dstamps = np.array(sorted(depth_raw))
        for f in frames:
            k = int(dstamps[np.argmin(np.abs(dstamps - f.stamp_ns))])
            if abs(k - f.stamp_ns) <= opts.depth_tolerance_s * 1e9:
                depth[f.stamp_ns] = depth_raw[k].depth_m()
    elif "depth" in opts.tasks or "corr" in opts.tasks:
        notes.append(f"no depth topic {topics.depth!r}: depth and correspondence skipped")
    traj = None
    try:
        traj = reader.trajectory()
    except ValueError as e:
        notes.append(str(e) + ": pose skipped")
    return SequenceData(path.name, frames, depth, traj, notes)


class InProcessRunner:
    """Runs the Pipeline directly (the default)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def depth(self, f: Frame, px: np.ndarray, depth_type: str) -> tuple[Any, float]:
        t = time.monotonic()
        r = self.pipeline.depth(f, px, depth_type)  # type: ignore[arg-type]
        return r, time.monotonic() - t

    def pose(self, a: Frame, b: Frame) -> tuple[Any, float]:
        t = time.monotonic()
        r = self.pipeline.pose(a, b, True)
        return r, time.monotonic() - t

    def corr(self, a: Frame, b: Frame, px: np.ndarray) -> tuple[Any, float]:
        t = time.monotonic()
        r = self.pipeline.correspondence(a, b, px)
        return r, time.monotonic() - t


def sample_pixels(depth: np.ndarray, n: int, margin: int, rng: np.random.Generator) -> np.ndarray:
    """Pixels whose whole 3x3 neighbourhood has ground-truth depth (a query rounded to the nearest
    prompt integer must not land in a hole), away from the border by ``margin``."""
    import cv2

    h, w = depth.shape
    inner = np.zeros_like(depth, dtype=bool)
    inner[margin:h - margin, margin:w - margin] = True
    valid = cv2.erode((depth > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    vv, uu = np.nonzero(inner & valid)
    if not len(uu):
        return np.zeros((0, 2))
    idx = rng.choice(len(uu), size=min(n, len(uu)), replace=False)
    return np.column_stack([uu[idx], vv[idx]]).astype(np.float64)


def frame_pairs(seq: SequenceData, opts: EvalOptions) -> list[tuple[int, int, np.ndarray]]:
    assert seq.trajectory is not None
    out = []
    poses = []
    for f in seq.frames:
        try:
            poses.append(seq.trajectory.interpolate(f.stamp_ns * 1e-9))
        except ValueError:
            poses.append(None)
    for s in opts.strides:
        for i in range(len(seq.frames) - s):
            a, b = poses[i], poses[i + s]
            if a is None or b is None:
                continue
            T = P.invert(a) @ b
            if np.linalg.norm(T[:3, 3]) >= opts.min_baseline_m:
                out.append((i, i + s, T))
    return out


def evaluate_sequence(seq: SequenceData, runner: Any, opts: EvalOptions, progress: Any) -> dict[str, Any]:
    rng = np.random.default_rng(opts.seed)
    res: dict[str, Any] = {"name": seq.name, "frames": len(seq.frames), "notes": list(seq.notes)}
    lat: dict[str, list[float]] = {"depth": [], "pose": [], "corr": []}
    raw: dict[str, Any] = {}
    if "depth" in opts.tasks and seq.depth:
        preds: list[float | None] = []
        gts: list[float] = []
        codes: dict[str, int] = {}
        for f in seq.frames:
            d = seq.depth.get(f.stamp_ns)
            if d is None:
                continue
            px = sample_pixels(d, opts.points_per_frame, opts.margin_px, rng)
            if not len(px):
                continue
            z = d[px[:, 1].astype(int), px[:, 0].astype(int)]
            gt = z if opts.depth_type == "z_depth" else convert_depth(
                z, f.camera.undistort_pixels(px), f.camera.rectified().K, "z_depth", "range")
            r, dt = runner.depth(f, px, opts.depth_type)
            lat["depth"].append(dt)
            for c, v, g in zip(r.codes, r.depth, gt, strict=True):
                name = PointCode(int(c)).name
                codes[name] = codes.get(name, 0) + 1
                preds.append(float(v) if c == PointCode.OK else (0.0 if c == PointCode.INVALID_VALUE else None))
                gts.append(float(g))
            progress.update(1)
        s = M.point_depth_scores(preds, gts)
        res["depth"] = {**asdict(s), "status_counts": codes, "depth_type": opts.depth_type}
        raw["depth"] = {"pred": preds, "gt": gts}
    if ("pose" in opts.tasks or "corr" in opts.tasks) and seq.trajectory is not None:
        pairs = frame_pairs(seq, opts)
        rot, tr, mx, dist_abs, dist_rel, failures = [], [], [], [], [], 0
        corr_gt, corr_pred, corr_gt_n, corr_pred_n, corr_fail = [], [], [], [], 0
        for i, j, T_true in pairs:
            fa, fb = seq.frames[i], seq.frames[j]
            if "pose" in opts.tasks:
                r, dt = runner.pose(fa, fb)
                lat["pose"].append(dt)
                if r.T_a_b is None:
                    failures += 1
                    rot.append(180.0)
                    tr.append(90.0)
                    mx.append(180.0)
                else:
                    e = M.pose_pair_errors(T_true[:3, :3], T_true[:3, 3], r.T_a_b[:3, :3], r.T_a_b[:3, 3])
                    rot.append(e["rot_err_deg"])
                    tr.append(e["trans_err_deg"])
                    mx.append(e["max_err_deg"])
                    if r.distance_m is not None:
                        d_true = float(np.linalg.norm(T_true[:3, 3]))
                        dist_abs.append(abs(r.distance_m - d_true))
                        dist_rel.append(abs(r.distance_m - d_true) / d_true)
            if "corr" in opts.tasks and fa.stamp_ns in seq.depth:
                d1, d2 = seq.depth[fa.stamp_ns], seq.depth.get(fb.stamp_ns)
                px = sample_pixels(d1, opts.corr_points, opts.margin_px, rng)
                if len(px):
                    cam_a, cam_b = fa.camera, fb.camera
                    z = d1[px[:, 1].astype(int), px[:, 0].astype(int)]
                    d2r = cam_b.undistort_image(d2.astype(np.float32), interpolation=0) if d2 is not None else None
                    c = correspondences_from_depth(cam_a.undistort_pixels(px), z, cam_a.rectified().K,
                                                   P.invert(T_true), cam_b.rectified().K,
                                                   (cam_b.width, cam_b.height), d2r)
                    keep = c.valid
                    if keep.any():
                        r, dt = runner.corr(fa, fb, px[keep])
                        lat["corr"].append(dt)
                        gt_b = cam_b.distort_pixels(c.uv2[keep])
                        ok = r.codes == PointCode.OK
                        corr_fail += int((~ok).sum())
                        corr_gt.append(gt_b[ok])
                        corr_pred.append(r.pixels_b[ok])
                        view = runner.pipeline.unified("corr", fb)[0] if hasattr(runner, "pipeline") else None
                        if view is not None and ok.any():
                            from vlm3_ros.coords import corr_to_norm

                            corr_gt_n.append(corr_to_norm(view.to_unified(gt_b[ok]), view.width, view.height))
                            corr_pred_n.append(corr_to_norm(view.to_unified(r.pixels_b[ok]), view.width, view.height))
            progress.update(1)
        if "pose" in opts.tasks and pairs:
            res["pose"] = {"pairs": len(pairs), "parse_failures": failures, **M.pose_scores(mx, rot, tr),
                           "distance_abs_err_m_mean": float(np.mean(dist_abs)) if dist_abs else None,
                           "distance_rel_err_mean": float(np.mean(dist_rel)) if dist_rel else None,
                           "strides": list(opts.strides), "min_baseline_m": opts.min_baseline_m}
            raw["pose"] = {"rot": rot, "trans": tr}
        if "corr" in opts.tasks and (corr_gt or corr_fail):
            g = np.concatenate(corr_gt) if corr_gt else np.zeros((0, 2))
            p = np.concatenate(corr_pred) if corr_pred else np.zeros((0, 2))
            res["corr"] = {"original_px": M.epe_pck(g, p), "parse_failures": corr_fail}
            if corr_gt_n:
                res["corr"]["norm1000"] = M.epe_pck(np.concatenate(corr_gt_n), np.concatenate(corr_pred_n))
        if "pose" in opts.tasks:
            res["trajectory"] = run_vo(seq, runner)
    res["latency"] = {k: M.latency_percentiles(v) for k, v in lat.items() if v}
    res["_raw"] = raw
    return res


def evaluate_labels(items: list[Any], runner: Any, opts: EvalOptions, name: str) -> dict[str, Any]:
    """Score label-file samples (vlm3_ros.labels) with the same metrics as bags."""
    from vlm3_ros.labels import CorrLabels, DepthLabels, PoseLabel

    res: dict[str, Any] = {"name": name, "frames": len(items), "notes": []}
    lat: dict[str, list[float]] = {"depth": [], "pose": [], "corr": []}
    preds: list[float | None] = []
    gts: list[float] = []
    rot, tr, dist_abs = [], [], []
    cg, cp, cfail = [], [], 0
    for it in items:
        if isinstance(it, DepthLabels):
            for start in range(0, len(it.pixels), 256):
                px, gt = it.pixels[start:start + 256], it.depth[start:start + 256]
                r, dt = runner.depth(it.frame, px, opts.depth_type)
                lat["depth"].append(dt)
                for c, v, g in zip(r.codes, r.depth, gt, strict=True):
                    preds.append(float(v) if c == PointCode.OK else (0.0 if c == PointCode.INVALID_VALUE else None))
                    gts.append(float(g))
        elif isinstance(it, PoseLabel):
            r, dt = runner.pose(it.frame_a, it.frame_b)
            lat["pose"].append(dt)
            if r.T_a_b is None:
                rot.append(180.0)
                tr.append(90.0)
            else:
                e = M.pose_pair_errors(it.T_a_b[:3, :3], it.T_a_b[:3, 3], r.T_a_b[:3, :3], r.T_a_b[:3, 3])
                rot.append(e["rot_err_deg"])
                tr.append(e["trans_err_deg"])
                if it.metric and r.distance_m is not None:
                    dist_abs.append(abs(r.distance_m - float(np.linalg.norm(it.T_a_b[:3, 3]))))
        elif isinstance(it, CorrLabels):
            r, dt = runner.corr(it.frame_a, it.frame_b, it.pixels_a)
            lat["corr"].append(dt)
            ok = r.codes == PointCode.OK
            cfail += int((~ok).sum())
            cg.append(it.pixels_b[ok])
            cp.append(r.pixels_b[ok])
    if gts:
        res["depth"] = {**asdict(M.point_depth_scores(preds, gts)), "depth_type": opts.depth_type}
    if rot:
        res["pose"] = {"pairs": len(rot), "parse_failures": sum(r == 180.0 for r in rot),
                       **M.pose_scores([max(a, b) for a, b in zip(rot, tr, strict=True)], rot, tr),
                       "distance_abs_err_m_mean": float(np.mean(dist_abs)) if dist_abs else None}
    if cg:
        res["corr"] = {"original_px": M.epe_pck(np.concatenate(cg), np.concatenate(cp)), "parse_failures": cfail}
    res["latency"] = {k: M.latency_percentiles(v) for k, v in lat.items() if v}
    res["_raw"] = {"depth": {"pred": preds, "gt": gts}, "pose": {"rot": rot, "trans": tr}} if gts or rot else {}
    return res


def run_vo(seq: SequenceData, runner: Any) -> dict[str, Any]:
    """Keyframe VO over consecutive frames (each frame a keyframe), as the node integrates it."""
    assert seq.trajectory is not None
    vo = KeyframeOdometry(np.eye(4), KeyframePolicy(0.0, 0.0, 1))
    gt0 = seq.trajectory.interpolate(seq.frames[0].stamp_ns * 1e-9)
    est, gt = [np.zeros(3)], [np.zeros(3)]
    vo.start(seq.frames[0].stamp_ns)
    for a, b in zip(seq.frames[:-1], seq.frames[1:], strict=True):
        r, _ = runner.pose(a, b)
        T = r.T_a_b if (r.T_a_b is not None and r.distance_m is not None) else None
        st = vo.update(b.stamp_ns, T)
        Tg = P.invert(gt0) @ seq.trajectory.interpolate(b.stamp_ns * 1e-9)
        gt.append(Tg[:3, 3])
        est.append(st.T_odom_base[:3, 3] if st is not None else np.full(3, np.nan))
    e, g = np.array(est), np.array(gt)
    err = np.linalg.norm(e - g, axis=1)
    return {"positions_est": e.tolist(), "positions_gt": g.tolist(), "ate_rmse_m": float(np.sqrt(np.nanmean(err**2))),
            "final_error_m": float(err[-1]), "updates_failed": vo.failures,
            "path_length_m": float(np.sum(np.linalg.norm(np.diff(g, axis=0), axis=1)))}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "transformers", "rosbags", "cv2"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = "missing"
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except Exception:
        out["git"] = "unknown"
    from vlm3_ros import __version__

    out["vlm3_ros"] = __version__
    return out


def pooled(seqs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    preds = [p for s in seqs for p in s["_raw"].get("depth", {}).get("pred", [])]
    gts = [g for s in seqs for g in s["_raw"].get("depth", {}).get("gt", [])]
    if gts:
        out["depth"] = asdict(M.point_depth_scores(preds, gts))
    rot = [r for s in seqs for r in s["_raw"].get("pose", {}).get("rot", [])]
    tr = [t for s in seqs for t in s["_raw"].get("pose", {}).get("trans", [])]
    if rot:
        out["pose"] = M.pose_scores([max(a, b) for a, b in zip(rot, tr, strict=True)], rot, tr)
    return out


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    clean = {**report, "sequences": [{k: v for k, v in s.items() if k != "_raw"} for s in report["sequences"]]}
    (out / "report.json").write_text(json.dumps(clean, indent=2, default=float))
    lines = ["# vlm3_ros evaluation", "", f"backend: `{report['config']['backend']}`"
             + ("  **(TEST DOUBLE: answers from recorded ground truth)**" if report["config"]["backend"] ==
                "ground_truth" else ""), ""]
    lines += ["| sequence | depth delta1 (DepthLM) | delta1 (VLM3, valid only) | parse failures | AbsRel | "
              "pose AUC@5/15/30 | corr EPE px | PCK@3 | VO ATE m |", "|---|---|---|---|---|---|---|---|---|"]
    for s in report["sequences"]:
        d, p, c, t = s.get("depth"), s.get("pose"), s.get("corr"), s.get("trajectory")
        cells = [s["name"],
                 f"{d['delta1_depthlm']:.3f} (n={d['n']})" if d else "-",
                 f"{d['delta1_vlm3']:.3f} (n={d['n_valid']})" if d else "-",
                 f"{d['parse_failures']} + {d['non_positive']} non-positive" if d else "-",
                 f"{d['abs_rel']:.4f}" if d else "-",
                 f"{p['auc@5']:.1f} / {p['auc@15']:.1f} / {p['auc@30']:.1f} ({p['pairs']} pairs)" if p else "-",
                 f"{c['original_px']['epe']:.2f}" if c else "-",
                 f"{c['original_px']['pck@3']:.3f}" if c else "-",
                 f"{t['ate_rmse_m']:.4f}" if t else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Latency (per service-equivalent call)", "", "| sequence | task | n | p50 ms | p90 ms | p99 ms |",
              "|---|---|---|---|---|---|"]
    for s in report["sequences"]:
        for task, lat in s["latency"].items():
            lines.append(f"| {s['name']} | {task} | {lat['n']} | {lat['p50_ms']:.1f} | {lat['p90_ms']:.1f} | "
                         f"{lat['p99_ms']:.1f} |")
    notes = [n for s in report["sequences"] for n in s["notes"]]
    if notes:
        lines += ["", "## Notes", *[f"- {n}" for n in notes]]
    lines += ["", "Metric definitions: docs/evaluation.md. Configuration and versions: report.json."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plots(report, out)


def plots(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds = np.array([p if p is not None else np.nan for s in report["sequences"]
                      for p in s["_raw"].get("depth", {}).get("pred", [])], dtype=np.float64)
    gts = np.array([g for s in report["sequences"] for g in s["_raw"].get("depth", {}).get("gt", [])])
    if len(gts):
        ok = np.isfinite(preds) & (preds > 0)
        fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))
        ax[0].scatter(gts[ok], preds[ok], s=8, alpha=0.6)
        lim = [0, max(gts.max(), np.nanmax(preds[ok]) if ok.any() else 1) * 1.05]
        ax[0].plot(lim, lim, "k--", lw=1, label="pred = gt")
        ax[0].plot(lim, [v * 1.25 for v in lim], "r:", lw=1, label="delta1 band")
        ax[0].plot(lim, [v / 1.25 for v in lim], "r:", lw=1)
        ax[0].set(xlabel="ground-truth depth [m]", ylabel="predicted depth [m]",
                  title=f"depth: {ok.sum()} parsed of {len(gts)}")
        ax[0].legend()
        rel = (preds[ok] - gts[ok]) / gts[ok]
        ax[1].hist(rel, bins=40)
        ax[1].set(xlabel="relative error (pred - gt) / gt", ylabel="points", title="depth error histogram")
        fig.tight_layout()
        fig.savefig(out / "depth_scatter.png", dpi=110)
        plt.close(fig)
    for s in report["sequences"]:
        t = s.get("trajectory")
        if not t:
            continue
        e, g = np.array(t["positions_est"]), np.array(t["positions_gt"])
        fig, ax = plt.subplots(figsize=(5.5, 5))
        # camera optical frame of the first image: x right, z forward -> top view
        ax.plot(g[:, 0], g[:, 2], "k-o", ms=4, label="ground truth")
        ax.plot(e[:, 0], e[:, 2], "r--x", ms=5, label=f"VO (ATE {t['ate_rmse_m'] * 100:.1f} cm)")
        ax.set(xlabel="x (right) [m]", ylabel="z (forward) [m]", title=f"{s['name']}: trajectory, top view")
        ax.axis("equal")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"trajectory_{s['name']}.png", dpi=110)
        plt.close(fig)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlm3-ros eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", nargs="*", type=Path, help="bag folders (MCAP/sqlite3) or ROS 1 .bag files")
    p.add_argument("--labels", nargs="+", type=Path, default=[],
                   help="published label files instead of bags: DepthLM *.jsonl, VLM3 *_labels.json")
    p.add_argument("--out", type=Path, default=Path("eval_out"), help="output directory (default eval_out)")
    p.add_argument("--backend", choices=("transformers", "remote", "ground_truth"), default="transformers")
    p.add_argument("--model", action="append", default=[], metavar="TASK=PATH",
                   help="checkpoint per task, e.g. depth=/models/VLM3-depth (repeat); 'all=PATH' for one model")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--remote-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--tasks", default="depth,pose,corr", help="comma-separated: depth,pose,corr")
    p.add_argument("--points-per-frame", type=int, default=32)
    p.add_argument("--corr-points", type=int, default=8, help="correspondence queries per frame pair")
    p.add_argument("--margin", type=int, default=16, help="border margin for sampled pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depth-type", choices=("z_depth", "range"), default="z_depth",
                   help="what the queries ask and ground truth is compared as")
    p.add_argument("--model-depth-type", choices=("z_depth", "range"), default="range",
                   help="what the depth checkpoint's number means")
    p.add_argument("--strides", default="1,2,4", help="frame-pair strides for pose and correspondence")
    p.add_argument("--min-baseline", type=float, default=0.02, help="minimum pair baseline in metres")
    p.add_argument("--max-frames", type=int, default=0, help="use at most this many frames per bag (0 = all)")
    p.add_argument("--max-new-tokens", type=int, default=0, help="override every task's generation limit")
    p.add_argument("--image-topic", default=BagTopics.image)
    p.add_argument("--camera-info-topic", default=BagTopics.camera_info)
    p.add_argument("--depth-topic", default=BagTopics.depth)
    p.add_argument("--pose-topic", default="", help="PoseStamped/Odometry ground truth instead of /tf")
    p.add_argument("--world-frame", default=BagTopics.world_frame)
    p.add_argument("--camera-frame", default=BagTopics.camera_frame)
    p.add_argument("--through-ros", action="store_true",
                   help="send the queries to a running perception node (publishes the frames on its topics)")
    p.add_argument("--node", default="/vlm3_perception", help="with --through-ros: the node to query")
    p.add_argument("--node-image-topic", default="/camera/rgb/image_color", help="with --through-ros")
    p.add_argument("--node-camera-info-topic", default="/camera/rgb/camera_info", help="with --through-ros")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.through_ros:
        print("vlm3-ros eval: --through-ros runs through the ROS shell; call it as `vlm3-ros eval --through-ros ...`",
              file=sys.stderr)
        return 2
    return run(a)


def run(a: argparse.Namespace, make_runner: Any = None) -> int:
    """Evaluate; ``make_runner(seq)`` (from the ROS shell) replaces the in-process pipeline."""
    logging.basicConfig(level=logging.INFO, format="[eval] %(message)s")
    from tqdm import tqdm

    from vlm3_ros.inference.factory import build_backends, close_backends
    from vlm3_ros.params import build_config

    topics = BagTopics(image=a.image_topic, camera_info=a.camera_info_topic, depth=a.depth_topic, pose=a.pose_topic,
                       world_frame=a.world_frame, camera_frame=a.camera_frame)
    tasks = tuple(t for t in a.tasks.split(",") if t)
    opts = EvalOptions(tasks=tasks, points_per_frame=a.points_per_frame, margin_px=a.margin, seed=a.seed,
                       depth_type=a.depth_type, strides=tuple(int(s) for s in a.strides.split(",")),
                       min_baseline_m=a.min_baseline, corr_points=a.corr_points, max_frames=a.max_frames)
    values: dict[str, Any] = {"backend": a.backend, "enabled_tasks": list(tasks), "vo.enabled": "pose" in tasks,
                              "sparse_depth.rate_hz": 0.0, "model.device": a.device, "model.dtype": a.dtype,
                              "remote.url": a.remote_url, "model.depth_type": a.model_depth_type}
    for m in a.model:
        task, _, path = m.partition("=")
        for t in (tasks if task == "all" else (task,)):
            values[f"model.{t}_path"] = path
    if a.backend == "ground_truth":
        values["ground_truth.bag"] = str(a.bags[0])
        values["ground_truth.depth_topic"] = a.depth_topic
        values["ground_truth.world_frame"] = a.world_frame
    if not a.bags and not a.labels:
        print("vlm3-ros eval: give bags or --labels files", file=sys.stderr)
        return 2
    if a.labels and a.backend == "ground_truth":
        print("vlm3-ros eval: the ground-truth backend needs a bag; label files need a model backend", file=sys.stderr)
        return 2
    cfg = build_config(values) if not a.through_ros else None
    seqs = []
    for bag in a.bags:
        seqs.append(load_sequence(bag, topics, opts))
        LOG.info("%s: %d frames, %d with depth, poses %s", bag.name, len(seqs[-1].frames), len(seqs[-1].depth),
                 "yes" if seqs[-1].trajectory else "no")
    results = []
    if make_runner is not None:
        for seq in seqs:
            runner_ros = make_runner(seq)
            with tqdm(total=len(seq.frames) * 2 + 8, desc=seq.name, disable=a.no_progress) as bar:
                try:
                    results.append(evaluate_sequence(seq, runner_ros, opts, bar))
                finally:
                    runner_ros.close()
        seqs = []
    for seq in seqs:
        if a.backend == "ground_truth" and seq is not seqs[0]:
            values["ground_truth.bag"] = str(a.bags[seqs.index(seq)])
            cfg = build_config(values)
        backends = build_backends(cfg)
        mnt = {t: a.max_new_tokens for t in ("depth", "object", "corr", "pose")} if a.max_new_tokens else None
        settings = PipelineSettings(model_depth_type=a.model_depth_type, max_points=max(256, a.points_per_frame),
                                    **({"max_new_tokens": mnt} if mnt else {}))
        runner = InProcessRunner(Pipeline(backends, settings))
        steps = len(seq.frames) * 2 + 8
        with tqdm(total=steps, desc=seq.name, disable=a.no_progress, unit="step") as bar:
            try:
                results.append(evaluate_sequence(seq, runner, opts, bar))
            finally:
                close_backends(backends)
    if a.through_ros:
        a.backend = f"through-ros:{a.node}"
    if a.labels:
        from vlm3_ros.labels import read_depthlm_jsonl, read_vlm3_labels

        backends = build_backends(cfg)
        try:
            runner = InProcessRunner(Pipeline(backends, PipelineSettings(model_depth_type=a.model_depth_type,
                                                                         max_points=256)))
            for lf in a.labels:
                items = read_depthlm_jsonl(lf, a.max_frames) if lf.suffix == ".jsonl" else [read_vlm3_labels(lf)]
                results.append(evaluate_labels(items, runner, opts, lf.name))
        finally:
            close_backends(backends)
    report = {"config": {**vars(a), "bags": [str(b) for b in a.bags], "out": str(a.out), **asdict(opts)},
              "versions": versions(), "sequences": results, "pooled": pooled(results)}
    report["config"] = json.loads(json.dumps(report["config"], default=str))
    write_report(report, a.out)
    print((a.out / "report.md").read_text())
    print(f"written: {a.out / 'report.json'}, {a.out / 'report.md'}, plots in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
