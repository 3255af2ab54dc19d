"""The paper's metrics, written from their definitions (test/data/metric_vectors_README.md).

Depth (sparse points, the DepthLM/VLM3 protocol): delta1 per point, max(pred/gt, gt/pred) < 1.25,
under both parse-failure policies. Dense depth errors with the named SILog variants. Pose: rotation
and sign-folded translation-direction errors, AUC@T with 1-degree bins (VGGT/DA3) and the trapezoid
form. Correspondence: EPE and PCK. SpatialRGPT-Bench: quantitative, direction and qualitative scoring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vlm3_ros.geometry.pose import rotation_error_deg, translation_angle_deg

DELTA1 = 1.25

# numpy 2 renamed trapz; apt's numpy on Humble (1.21) and Jazzy (1.26) only has the old name
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


# ---------------------------------------------------------------- sparse depth points
@dataclass(frozen=True)
class PointDepthScores:
    n: int                      # all samples
    n_valid: int                # parsed and positive
    parse_failures: int         # no number in the reply
    non_positive: int           # parsed, <= 0
    delta1_depthlm: float       # failures and non-positive counted wrong, over n
    delta1_vlm3: float          # over valid samples only (VLM3 notebook)
    abs_rel: float              # over valid samples
    rmse: float


def point_depth_scores(pred: Sequence[float | None], gt: Sequence[float]) -> PointDepthScores:
    """``pred`` holds the parsed numbers (None = parse failure); ``gt`` the true depths (> 0)."""
    if len(pred) != len(gt):
        raise ValueError("pred and gt differ in length")
    g = np.asarray(gt, dtype=np.float64)
    if np.any(~(g > 0)):
        raise ValueError("ground truth must be positive (filter invalid samples before scoring)")
    parsed = np.array([p is not None and math.isfinite(p) for p in pred])
    p = np.array([p if ok else np.nan for p, ok in zip(pred, parsed, strict=True)], dtype=np.float64)
    valid = parsed & (p > 0)
    correct = np.zeros(len(g), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        correct[valid] = np.maximum(p[valid] / g[valid], g[valid] / p[valid]) < DELTA1
    n_valid = int(valid.sum())
    return PointDepthScores(
        n=len(g), n_valid=n_valid, parse_failures=int((~parsed).sum()), non_positive=int((parsed & ~valid).sum()),
        delta1_depthlm=float(correct.sum() / len(g)) if len(g) else float("nan"),
        delta1_vlm3=float(correct[valid].mean()) if n_valid else float("nan"),
        abs_rel=float(np.mean(np.abs(p[valid] - g[valid]) / g[valid])) if n_valid else float("nan"),
        rmse=float(np.sqrt(np.mean((p[valid] - g[valid]) ** 2))) if n_valid else float("nan"))


# ---------------------------------------------------------------- dense depth
def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Errors over paired valid values (caller masks). SILog variants named by their codebase:
    silog_zoedepth = 100 sqrt(mean d^2 - mean(d)^2); silog_da2 = sqrt(mean d^2 - 0.5 mean(d)^2);
    silog_unidepth = 100 std(d, ddof=1), with d = ln pred - ln gt."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    g = np.asarray(gt, dtype=np.float64).ravel()
    thresh = np.maximum(g / p, p / g)
    d = np.log(p) - np.log(g)
    return {
        "a1": float((thresh < 1.25).mean()), "a2": float((thresh < 1.25**2).mean()),
        "a3": float((thresh < 1.25**3).mean()),
        "abs_rel": float(np.mean(np.abs(g - p) / g)), "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))), "rmse_log": float(np.sqrt(np.mean(d**2))),
        "log_10": float(np.mean(np.abs(np.log10(g) - np.log10(p)))),
        "silog_zoedepth": float(np.sqrt(np.mean(d**2) - np.mean(d) ** 2) * 100),
        "silog_da2": float(np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2)),
        "silog_unidepth": float(100 * np.std(d, ddof=1)) if len(d) > 1 else float("nan"),
    }


# ---------------------------------------------------------------- pose
def pose_pair_errors(R_gt: np.ndarray, t_gt: np.ndarray, R_pred: np.ndarray, t_pred: np.ndarray) -> dict[str, float]:
    r = rotation_error_deg(np.asarray(R_gt), np.asarray(R_pred))
    t = translation_angle_deg(np.asarray(t_gt), np.asarray(t_pred), fold_sign=True)
    return {"rot_err_deg": r, "trans_err_deg": t, "max_err_deg": max(r, t)}


def auc_hist(max_errors: Sequence[float], threshold: int) -> float:
    """Mean over k = 1..T of the fraction of pairs with error below k, with 1-degree histogram bins
    (VGGT/DA3: np.histogram, whose last bin [T-1, T] includes T)."""
    e = np.asarray(max_errors, dtype=np.float64)
    hist, _ = np.histogram(e, bins=np.arange(threshold + 1))
    return float(np.mean(np.cumsum(hist) / len(e)))


def auc_trapz(max_errors: Sequence[float], threshold: float) -> float:
    """Area under the recall-vs-error curve up to ``threshold``, normalised (SuperGlue style)."""
    e = np.sort(np.asarray(max_errors, dtype=np.float64))
    recall = (np.arange(len(e)) + 1) / len(e)
    e = np.r_[0.0, e]
    recall = np.r_[0.0, recall]
    last = int(np.searchsorted(e, threshold))
    xs = np.r_[e[:last], threshold]
    ys = np.r_[recall[:last], recall[last - 1]]
    return float(_trapezoid(ys, x=xs) / threshold)


def pose_scores(max_errors: Sequence[float], rot: Sequence[float], trans: Sequence[float]) -> dict[str, float]:
    out = {f"auc@{t}": 100.0 * auc_hist(max_errors, t) for t in (5, 10, 15, 30)}
    r, t = np.asarray(rot), np.asarray(trans)
    out.update({"RRA@15": float(np.mean(r < 15)), "RRA@30": float(np.mean(r < 30)),
                "RTA@15": float(np.mean(t < 15)), "RTA@30": float(np.mean(t < 30)),
                "rot_err_median_deg": float(np.median(r)), "trans_err_median_deg": float(np.median(t))})
    return out


# ---------------------------------------------------------------- correspondence
def epe_pck(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    m = np.ones(len(g), bool) if valid is None else np.asarray(valid, bool)
    e = np.linalg.norm(g[m] - p[m], axis=1)
    return {"epe": float(e.mean()) if len(e) else float("nan"),
            "epe_median": float(np.median(e)) if len(e) else float("nan"),
            **{f"pck@{k}": float(np.mean(e < k)) if len(e) else float("nan") for k in (1, 3, 5)}, "n": len(e)}


# ---------------------------------------------------------------- SpatialRGPT-Bench
QUANT_NAMES = {"distance_data": "direct_distance", "horizontal_distance_data": "horizontal_distance",
               "vertical_distance_data": "vertical_distance", "width_data": "width", "height_data": "height"}
QUAL_PAIRS = (("left", "right"), ("below", "above"), ("big", "small"), ("tall", "short"), ("wide", "thin"),
              ("behind", "front"))


def quantitative_success(gt: float, pred: float | None) -> bool:
    return pred is not None and 0.75 * gt <= pred <= 1.25 * gt


def clock_error(a: int, b: int) -> int:
    d = abs(a - b) % 12
    return min(d, 12 - d)


def spatialrgpt_results(quant: Sequence[dict], qual: Sequence[dict]) -> dict[str, float]:
    """quant: {category, gt_m, pred_m} or {category: direction, gt_clock, pred_clock};
    qual: {category: '<pred>_predicate', judge_mark}. Names follow the benchmark's summary."""
    out: dict[str, float] = {}
    all_q: list[int] = []
    for cat, name in QUANT_NAMES.items():
        items = [q for q in quant if q["category"] == cat]
        if not items:
            continue
        succ = [int(quantitative_success(q["gt_m"], q["pred_m"])) for q in items]
        errs = [abs(q["pred_m"] - q["gt_m"]) / (q["gt_m"] + 1e-4) for q in items if q["pred_m"] is not None]
        out[f"Quan_{name}_acc"] = 100.0 * float(np.mean(succ))
        out[f"Quan_{name}_err"] = 100.0 * float(np.mean(errs)) if errs else float("nan")
        out[f"Quan_{cat}_absrel_rounded3"] = round(float(np.mean(errs)), 3) if errs else float("nan")
        all_q += succ
    dirs = [q for q in quant if q["category"] == "direction"]
    if dirs:
        errs = [clock_error(q["gt_clock"], q["pred_clock"]) for q in dirs]
        succ = [int(e <= 1) for e in errs]
        out["Quan_direction_acc"] = 100.0 * float(np.mean(succ))
        out["Quan_direction_err"] = 100.0 * float(np.mean(errs))
        out["direction_mean_err_deg"] = float(np.mean(errs)) * 30.0
        all_q += succ
    if all_q:
        out["Quan_overall_acc"] = 100.0 * float(np.mean(all_q))
    all_l: list[int] = []
    for a, b in QUAL_PAIRS:
        items = [q for q in qual if q["category"] in (f"{a}_predicate", f"{b}_predicate")]
        if items:
            marks = [int(q["judge_mark"] > 0) for q in items]
            out[f"Qual_{a}/{b}_acc"] = 100.0 * float(np.mean(marks))
            all_l += marks
    if all_l:
        out["Qual_overall_acc"] = 100.0 * float(np.mean(all_l))
    return out


def latency_percentiles(seconds: Sequence[float]) -> dict[str, float]:
    s = np.asarray(seconds, dtype=np.float64)
    if not len(s):
        return {}
    return {"n": len(s), "p50_ms": float(np.percentile(s, 50) * 1e3), "p90_ms": float(np.percentile(s, 90) * 1e3),
            "p99_ms": float(np.percentile(s, 99) * 1e3), "max_ms": float(s.max() * 1e3)}
