"""Scoring: one accumulator per task (the same for bags and label files, in-process and through
ROS), the VO run over a sequence, and the evaluation loop that feeds queries to a runner.

Each accumulator takes (query, result, seconds) and gives the paper's metrics (eval.metrics)
plus the raw values the report's plots and the pooled figures need.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np

from vlm3_ros.contract import answers as A
from vlm3_ros.eval import metrics as M
from vlm3_ros.eval.dataset import CorrQuery, Dataset, DepthQuery, ObjectQuery, PoseQuery
from vlm3_ros.eval.runners import Runner
from vlm3_ros.geometry import pose as P
from vlm3_ros.geometry.coords import corr_to_norm
from vlm3_ros.geometry.odometry import KeyframeOdometry, KeyframePolicy
from vlm3_ros.geometry.trajectory import Trajectory
from vlm3_ros.geometry.unify import UnifyConfig, plan
from vlm3_ros.tasks.common import Outcome, PointCode
from vlm3_ros.tasks.corr_task import CorrResult
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult
from vlm3_ros.tasks.pose_task import PoseResult

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


_REGION = re.compile(r"Region \[(\d+)\]|bounding box region \((\d+), (\d+), (\d+), (\d+)\)")


def first_region(text: str, boxes_text: list[str]) -> int | None:
    """The region an answer names first: ``Region [i]`` or the box text of region i."""
    m = _REGION.search(text)
    if m is None:
        return None
    if m.group(1) is not None:
        return int(m.group(1))
    written = m.group(0)
    return boxes_text.index(written) if written in boxes_text else None


class ObjectScore:
    """SpatialRGPT-Bench scoring without an LLM judge: quantitative answers parsed into metres
    (success within 0.75-1.25 x the truth), directions into clock hours (within 1 hour),
    qualitative predicates by the yes/no polarity of the answer (the VLM3 notebook's check) and
    choices by the region the answer names first."""

    def __init__(self) -> None:
        self.quant: list[dict[str, Any]] = []
        self.qual: list[dict[str, Any]] = []
        self.unparsed = 0
        self.n = 0

    def add(self, q: ObjectQuery, r: ObjectResult) -> None:
        self.n += 1
        gt = A.parse_object(q.answer).value
        pred = r.answer
        boxes = re.findall(r"bounding box region \(\d+, \d+, \d+, \d+\)", r.prompt)
        named = pred is not None and first_region(pred.text, boxes) is not None
        if r.outcome()[0] != Outcome.OK and not (q.category.endswith("_choice") and named):
            self.unparsed += 1
        if gt is None:
            return
        if q.qa_type == "quantitative":
            if q.category == "direction":
                if gt.clock is not None:   # no clock in the answer: the largest error, 6 hours
                    self.quant.append({"category": "direction", "gt_clock": gt.clock,
                                       "pred_clock": pred.clock if pred is not None and pred.clock else gt.clock + 6})
            elif gt.quantity_m is not None:
                self.quant.append({"category": q.category, "gt_m": gt.quantity_m,
                                   "pred_m": pred.quantity_m if pred is not None else None})
            return
        if q.category.endswith("_choice"):
            right = pred is not None and first_region(pred.text, boxes) == first_region(q.answer, [])
        else:
            right = pred is not None and pred.yes is not None and pred.yes == gt.yes
        self.qual.append({"category": q.category, "judge_mark": int(right)})

    def summary(self) -> dict[str, Any] | None:
        if not self.n:
            return None
        choice = [q["judge_mark"] for q in self.qual if q["category"].endswith("_choice")]
        out: dict[str, Any] = {"n": self.n, "unparsed": self.unparsed, "quantitative": len(self.quant),
                               "qualitative": len(self.qual), **M.spatialrgpt_results(self.quant, self.qual)}
        if choice:
            out["Qual_choice_acc"] = 100.0 * float(np.mean(choice))
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
    lat: dict[str, list[float]] = {"depth": [], "pose": [], "corr": [], "object": []}
    depth, pose, corr, obj = DepthScore(depth_type), PoseScore(), CorrScore(corr_unify), ObjectScore()

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
    for oq in ds.object:
        obj.add(oq, timed("object", lambda q=oq: runner.object(q.frame, q.boxes, q.question)))
    res: dict[str, Any] = {"name": ds.name, "frames": ds.frames, "notes": list(ds.notes)}
    for task, score in (("depth", depth), ("pose", pose), ("corr", corr), ("object", obj)):
        s = score.summary()
        if s is not None:
            res[task] = s
    if ds.vo_frames and ds.trajectory is not None and len(ds.vo_frames) > 1:
        res["trajectory"] = run_vo(ds.vo_frames, ds.trajectory, runner, vo_policy or KeyframePolicy(), progress)
    res["latency"] = {k: M.latency_percentiles(v) for k, v in lat.items() if v}
    res["_raw"] = {"depth": {"pred": depth.pred, "gt": depth.gt}, "pose": {"rot": pose.rot, "trans": pose.trans},
                   "object": {"quant": [q for q in obj.quant if "gt_m" in q]}}
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
