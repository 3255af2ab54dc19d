"""Scoring a checkpoint on held-out samples (an export's ``val.jsonl``): the questions asked
exactly as stored (unified images, prompt text) through an inference backend, the answers read by
the tasks' own parsers, scored against each sample's unrounded truth, beside the best constant
predictor on the same points (what a model that ignores the image can reach at most).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.question import Backend, Question
from vlm3_ros.eval.metrics import DELTA1, point_depth_scores, quantitative_success
from vlm3_ros.geometry import pose as P
from vlm3_ros.tasks import depth_task
from vlm3_ros.tasks.pose_task import PARSERS as POSE_PARSERS
from vlm3_ros.tasks.task_registry import TASKS
from vlm3_ros.training.sft_samples import Sample


def best_constant_delta1(gt: np.ndarray) -> tuple[float, float]:
    """(delta1, c) of the constant c that maximises delta1 on ``gt``: an upper bound for any
    predictor that answers one number whatever the image (c is chosen knowing the truth)."""
    g = np.sort(np.asarray(gt, dtype=np.float64))
    best, best_c = 0.0, float("nan")
    for lo in g:      # an optimal window (c/1.25, 1.25c) can be slid until its lower edge meets a sample
        c = lo * DELTA1 * (1 - 1e-9)
        hit = float(np.mean(np.maximum(c / g, g / c) < DELTA1))
        if hit > best:
            best, best_c = hit, c
    return best, best_c


def best_constant_success(gt: np.ndarray) -> tuple[float, float]:
    """(success rate, c) of the constant c with the most answers inside SpatialRGPT-Bench's
    0.75-1.25 x truth band on ``gt``: the object task's counterpart of :func:`best_constant_delta1`."""
    g = np.asarray(gt, dtype=np.float64)
    best, best_c = 0.0, float("nan")
    for c in np.concatenate([0.75 * g, 1.25 * g]):   # an optimal c can be moved onto a band edge
        hit = float(np.mean([quantitative_success(t, c) for t in g]))
        if hit > best:
            best, best_c = hit, float(c)
    return best, best_c


def _load_images(root: Path, paths: tuple[str, ...], cache: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    import cv2

    out = []
    for p in paths:
        if p not in cache:
            im = cv2.imread(str(root / p), cv2.IMREAD_COLOR)
            if im is None:
                raise FileNotFoundError(f"{root / p}: image of a sample is missing")
            cache[p] = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
        out.append(cache[p])
    return tuple(out)


def ask(backend: Backend, samples: list[Sample], root: Path, progress: Any = None) -> list[str]:
    """The backend's replies to ``samples`` (questions on one image set asked together)."""
    cache: dict[str, np.ndarray] = {}
    replies = [""] * len(samples)
    by_images: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(samples):
        by_images.setdefault(s.images, []).append(i)
    for images, idx in by_images.items():
        ims = _load_images(root, images, cache)
        qs = [Question(images, ims, samples[i].prompt, TASKS[samples[i].task].max_new_tokens,
                       answer_end=TASKS[samples[i].task].answer_end) for i in idx]
        for i, a in zip(idx, backend.answer(qs), strict=True):
            replies[i] = a.text if a.ok else ""
        if progress is not None:
            progress.update(len(idx))
    return replies


def score(samples: list[Sample], replies: list[str]) -> dict[str, Any]:
    """Per task: parse rate and the task's accuracy next to the best constant predictor."""
    out: dict[str, Any] = {}
    depth = [(s, r) for s, r in zip(samples, replies, strict=True) if s.task == "depth"]
    if depth:
        pred = [depth_task.parse(r)[0] for _, r in depth]
        gt = np.array([s.truth["depth_m"] for s, _ in depth])
        sc = point_depth_scores(pred, gt)
        const, c = best_constant_delta1(gt)
        out["depth"] = {"n": sc.n, "parse_rate": (sc.n - sc.parse_failures) / sc.n,
                        "delta1": sc.delta1_depthlm, "delta1_parsed_only": sc.delta1_vlm3, "abs_rel": sc.abs_rel,
                        "best_constant_delta1": const, "best_constant_m": c}
    pose = [(s, r) for s, r in zip(samples, replies, strict=True) if s.task == "pose"]
    if pose:
        parsed = [POSE_PARSERS[s.truth["question"]](r) for s, r in pose]
        rot = [(p.value, P.rotation_angle_deg(np.asarray(s.truth["T_a_b"])[:3, :3]))
               for (s, _), p in zip(pose, parsed, strict=True) if s.truth["question"] == "rotation"]
        entry: dict[str, Any] = {"n": len(pose), "parse_rate": sum(p.ok for p in parsed) / len(pose)}
        if rot:
            truth = np.array([t for _, t in rot])
            err = [abs(v - t) for v, t in rot if v is not None]
            entry["rotation_angle_abs_err_deg"] = float(np.mean(err)) if err else None
            # a constant fitted to fewer than 3 pairs is the truth itself: no baseline then
            entry["best_constant_rotation_abs_err_deg"] = (float(np.mean(np.abs(truth - np.median(truth))))
                                                           if len(truth) >= 3 else None)
        out["pose"] = entry
    corr = [(s, r) for s, r in zip(samples, replies, strict=True) if s.task == "corr"]
    if corr:
        parsed_pts = [answers.parse_point(r) for _, r in corr]
        truth_pts = [answers.parse_point(s.answer).value for s, _ in corr]
        err = [float(np.hypot(p.value[0] - t[0], p.value[1] - t[1]))
               for p, t in zip(parsed_pts, truth_pts, strict=True) if p.ok and p.value is not None and t is not None]
        out["corr"] = {"n": len(corr), "parse_rate": sum(p.ok for p in parsed_pts) / len(corr),
                       "epe_norm1000_mean": float(np.mean(err)) if err else None}
    obj = [(s, r) for s, r in zip(samples, replies, strict=True) if s.task == "object"]
    if obj:
        got = [answers.parse_object(r).value for _, r in obj]
        pred = [g.quantity_m if g is not None else None for g in got]
        truth = np.array([s.truth["value_m"] for s, _ in obj])
        const, c = best_constant_success(truth)
        hits = [quantitative_success(t, p) for t, p in zip(truth, pred, strict=True)]
        out["object"] = {"n": len(obj), "parse_rate": sum(p is not None for p in pred) / len(obj),
                         "success": float(np.mean(hits)),
                         "best_constant_success": const, "best_constant_m": c}
    return out


def score_checkpoint(model_dir: Path, data_dir: Path, split: str = "val", device: str = "cpu",
                     show_progress: bool = False) -> dict[str, Any]:
    """Ask ``model_dir`` (through the node's transformers backend) every question of an export's
    ``split`` and score the replies."""
    from tqdm import tqdm

    from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend
    from vlm3_ros.training.sft_samples import read_jsonl, split_files

    samples = read_jsonl(split_files(data_dir)[split])
    backend = TransformersBackend(TransformersConfig(str(model_dir), device=device, batch_size=32))
    try:
        with tqdm(total=len(samples), desc=f"held-out {split}", unit="question", disable=not show_progress) as bar:
            replies = ask(backend, samples, data_dir, bar)
    finally:
        backend.close()
    return {"split": split, "samples": len(samples), "scores": score(samples, replies),
            "examples": {t: next((r for s, r in zip(samples, replies, strict=True) if s.task == t), None)
                         for t in sorted({s.task for s in samples})}}
