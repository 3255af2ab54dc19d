"""Scoring: one accumulator per task (the same for bags and label files, in-process and through
ROS), the VO run over a sequence, and the evaluation loop that feeds queries to a runner.

Each accumulator takes (query, result, seconds) and gives the paper's metrics (eval.metrics)
plus the raw values the report's plots and the pooled figures need.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np

from vlm3_ros.eval import metrics as M
from vlm3_ros.eval.dataset import CorrQuery, Dataset, DepthQuery, PoseQuery
from vlm3_ros.eval.runner import Runner
from vlm3_ros.geometry import pose as P
from vlm3_ros.geometry.coords import corr_to_norm
from vlm3_ros.geometry.odometry import KeyframeOdometry, KeyframePolicy
from vlm3_ros.geometry.trajectory import Trajectory
from vlm3_ros.geometry.unify import UnifyConfig, plan
from vlm3_ros.tasks.common import PointCode
from vlm3_ros.tasks.corr import CorrResult
from vlm3_ros.tasks.depth import DepthResult
from vlm3_ros.tasks.pose import PoseResult

# A failed pose counts as the worst possible answer (the protocol of the pose AUC).
FAILED_ROT_DEG, FAILED_TRANS_DEG = 180.0, 90.0


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...


class DepthScore:
    def __init__(self, depth_type: str) -> None:
        self.depth_type = depth_type
        self.pred: list[float | None] = []
        self.gt: list[float] = []
        self.codes: dict[str, int] = {}

    def add(self, q: DepthQuery, r: DepthResult) -> None:
        for c, v, g in zip(r.codes, r.depth, q.gt, strict=True):
            name = PointCode(int(c)).name
            self.codes[name] = self.codes.get(name, 0) + 1
            # INVALID_VALUE (non-positive) is a wrong answer, not a missing one.
            self.pred.append(float(v) if c == PointCode.OK else (0.0 if c == PointCode.INVALID_VALUE else None))
            self.gt.append(float(g))

    def summary(self) -> dict[str, Any] | None:
        if not self.gt:
            return None
        return {**asdict(M.point_depth_scores(self.pred, self.gt)), "status_counts": self.codes,
                "depth_type": self.depth_type}


class PoseScore:
    def __init__(self) -> None:
        self.rot: list[float] = []
        self.trans: list[float] = []
        self.failures = 0
        self.dist_abs: list[float] = []
        self.dist_rel: list[float] = []

    def add(self, q: PoseQuery, r: PoseResult) -> None:
        if r.T_a_b is None:
            self.failures += 1
            self.rot.append(FAILED_ROT_DEG)
            self.trans.append(FAILED_TRANS_DEG)
            return
        e = M.pose_pair_errors(q.T_a_b[:3, :3], q.T_a_b[:3, 3], r.T_a_b[:3, :3], r.T_a_b[:3, 3])
        self.rot.append(e["rot_err_deg"])
        self.trans.append(e["trans_err_deg"])
        if q.metric and r.distance_m is not None:
            d_true = float(np.linalg.norm(q.T_a_b[:3, 3]))
            self.dist_abs.append(abs(r.distance_m - d_true))
            self.dist_rel.append(abs(r.distance_m - d_true) / d_true if d_true > 0 else float("nan"))

    def summary(self) -> dict[str, Any] | None:
        if not self.rot:
            return None
        mx = [max(a, b) for a, b in zip(self.rot, self.trans, strict=True)]
        return {"pairs": len(self.rot), "parse_failures": self.failures, **M.pose_scores(mx, self.rot, self.trans),
                "distance_abs_err_m_mean": float(np.mean(self.dist_abs)) if self.dist_abs else None,
                "distance_rel_err_mean": float(np.mean(self.dist_rel)) if self.dist_rel else None}


class CorrScore:
    """EPE/PCK in original pixels of B, and in the contract's [0, 1000] frame of B's unified image
    (``unify`` is the corr task's unification, as the pipeline applies it)."""

    def __init__(self, unify: UnifyConfig) -> None:
        self.unify = unify
        self.gt: list[np.ndarray] = []
        self.pred: list[np.ndarray] = []
        self.gt_n: list[np.ndarray] = []
        self.pred_n: list[np.ndarray] = []
        self.failures = 0

    def add(self, q: CorrQuery, r: CorrResult) -> None:
        ok = r.codes == PointCode.OK
        self.failures += int((~ok).sum())
        self.gt.append(q.pixels_b[ok])
        self.pred.append(r.pixels_b[ok])
        if ok.any():
            view = plan(q.frame_b.camera, self.unify)
            self.gt_n.append(corr_to_norm(view.to_unified(q.pixels_b[ok]), view.width, view.height))
            self.pred_n.append(corr_to_norm(view.to_unified(r.pixels_b[ok]), view.width, view.height))

    def summary(self) -> dict[str, Any] | None:
        if not self.gt and not self.failures:
            return None
        out: dict[str, Any] = {"original_px": M.epe_pck(np.concatenate(self.gt), np.concatenate(self.pred)),
                               "parse_failures": self.failures}
        if self.gt_n:
            out["norm1000"] = M.epe_pck(np.concatenate(self.gt_n), np.concatenate(self.pred_n))
        return out


def run_vo(frames: list, trajectory: Trajectory, runner: Runner, policy: KeyframePolicy,
           progress: Progress | None = None) -> dict[str, Any]:
    """Keyframe VO over the sequence as the node runs it: each frame's pose against the keyframe,
    integrated only from ``policy.min_baseline_m`` on, new keyframes by baseline and time. The
    estimate is scored where the node would publish (the integrated frames)."""
    vo = KeyframeOdometry(np.eye(4), policy)
    gt0 = trajectory.interpolate(frames[0].stamp_ns * 1e-9)
    est, gt = [np.zeros(3)], [np.zeros(3)]
    vo.start(frames[0].stamp_ns)
    key = frames[0]
    for b in frames[1:]:
        r = runner.pose(key, b)
        T = r.T_a_b if (r.T_a_b is not None and r.distance_m is not None) else None
        st = vo.update(b.stamp_ns, T)
        if st is not None and st.integrated:
            est.append(st.T_odom_base[:3, 3])
            gt.append((P.invert(gt0) @ trajectory.interpolate(b.stamp_ns * 1e-9))[:3, 3])
            if st.keyframe_stamp_ns == b.stamp_ns:
                key = b
        if progress is not None:
            progress.update(1)
    e, g = np.array(est), np.array(gt)
    err = np.linalg.norm(e - g, axis=1)
    path_gt = [(P.invert(gt0) @ trajectory.interpolate(f.stamp_ns * 1e-9))[:3, 3] for f in frames]
    length_gt = float(np.sum(np.linalg.norm(np.diff(path_gt, axis=0), axis=1)))
    length_est = float(np.sum(np.linalg.norm(np.diff(e, axis=0), axis=1))) if len(e) > 1 else 0.0
    return {"positions_est": e.tolist(), "positions_gt": g.tolist(), "ate_rmse_m": float(np.sqrt(np.mean(err**2))),
            "final_error_m": float(err[-1]), "updates": vo.updates, "updates_failed": vo.failures,
            "short_baselines": vo.short, "path_length_m": length_gt, "path_length_est_m": length_est,
            "min_baseline_m": policy.min_baseline_m}


def evaluate(ds: Dataset, runner: Runner, depth_type: str, corr_unify: UnifyConfig,
             progress: Progress | None = None, vo_policy: KeyframePolicy | None = None) -> dict[str, Any]:
    """Ask every query of ``ds``, score it; the per-sequence section of the report."""
    lat: dict[str, list[float]] = {"depth": [], "pose": [], "corr": []}
    depth, pose, corr = DepthScore(depth_type), PoseScore(), CorrScore(corr_unify)

    def timed(task: str, call: Any) -> Any:
        t = time.monotonic()
        r = call()
        lat[task].append(time.monotonic() - t)
        if progress is not None:
            progress.update(1)
        return r

    for dq in ds.depth:
        depth.add(dq, timed("depth", lambda q=dq: runner.depth(q.frame, q.pixels, depth_type)))
    for pq in ds.pose:
        pose.add(pq, timed("pose", lambda q=pq: runner.pose(q.frame_a, q.frame_b)))
    for cq in ds.corr:
        corr.add(cq, timed("corr", lambda q=cq: runner.corr(q.frame_a, q.frame_b, q.pixels_a)))
    res: dict[str, Any] = {"name": ds.name, "frames": ds.frames, "notes": list(ds.notes)}
    for task, score in (("depth", depth), ("pose", pose), ("corr", corr)):
        s = score.summary()
        if s is not None:
            res[task] = s
    if ds.vo_frames and ds.trajectory is not None and len(ds.vo_frames) > 1:
        res["trajectory"] = run_vo(ds.vo_frames, ds.trajectory, runner, vo_policy or KeyframePolicy(), progress)
    res["latency"] = {k: M.latency_percentiles(v) for k, v in lat.items() if v}
    res["_raw"] = {"depth": {"pred": depth.pred, "gt": depth.gt}, "pose": {"rot": pose.rot, "trans": pose.trans}}
    return res


def pooled(sequences: list[dict[str, Any]]) -> dict[str, Any]:
    """Depth and pose metrics over all sequences' samples together."""
    out: dict[str, Any] = {}
    preds = [p for s in sequences for p in s["_raw"]["depth"]["pred"]]
    gts = [g for s in sequences for g in s["_raw"]["depth"]["gt"]]
    if gts:
        out["depth"] = asdict(M.point_depth_scores(preds, gts))
    rot = [r for s in sequences for r in s["_raw"]["pose"]["rot"]]
    tr = [t for s in sequences for t in s["_raw"]["pose"]["trans"]]
    if rot:
        out["pose"] = M.pose_scores([max(a, b) for a, b in zip(rot, tr, strict=True)], rot, tr)
    return out
