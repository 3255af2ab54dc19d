"""End-to-end geometry chains on the bundled TUM frames, with the ground-truth answerer.

Shared by the tests (which assert bounds) and ``python -m vlm3_ros.testing.chains`` (which prints
the error figures quoted in docs/geometry.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.geometry import coords, pose
from vlm3_ros.geometry.backproject import backproject
from vlm3_ros.geometry.camera import CameraModel
from vlm3_ros.geometry.unify import UnifyConfig, plan
from vlm3_ros.inference.ground_truth import answerer as gt_answerer
from vlm3_ros.readers.tum import TumSequence
from vlm3_ros.tasks.task_registry import TASKS


@dataclass(frozen=True)
class DepthChainResult:
    points: int
    median_mm: float
    p95_mm: float
    max_mm: float
    max_pixel_roundtrip_px: float
    rectify: bool
    smooth_points: int        # points whose 5x5 neighbourhood varies by < 2% in depth
    smooth_max_mm: float      # worst error among them (no depth edge nearby)
    smooth_max_rel: float     # ... relative to the true distance


def depth_chain(rectify: bool = True, n_points: int = 400, seed: int = 0, frames: int = 11) -> DepthChainResult:
    """Original pixels -> prompt integers -> GT answer text -> parse -> 3D, against the 3D points
    computed directly from the depth image at the original pixels."""
    seq = TumSequence()
    cam = CameraModel.from_camera_info(seq.camera_info)
    cfg = UnifyConfig(target_focal=TASKS["depth"].unify.target_focal, rectify=rectify)
    view = plan(cam, cfg)
    prompts = PromptSet()
    rng = np.random.default_rng(seed)
    errs, rt, smooth_errs, smooth_rel = [], [], [], []
    K_rect = cam.rectified().K
    for frame in seq.frames[:frames]:
        depth = frame.depth_m()
        kernel = np.ones((5, 5), np.uint8)
        local_max = cv2.dilate(depth, kernel)
        local_min = cv2.erode(np.where(depth > 0, depth, np.inf), kernel)
        du = gt_answerer.unified_depth(depth, view)
        uv = np.column_stack([rng.integers(8, cam.width - 8, n_points), rng.integers(8, cam.height - 8, n_points)])
        z_true = depth[uv[:, 1], uv[:, 0]]
        keep = z_true > 0
        uv, z_true = uv[keep].astype(np.float64), z_true[keep]
        n = coords.depth_to_prompt(view.to_unified(uv), view.width, view.height)
        back = view.from_unified(coords.depth_from_prompt(n, view.width, view.height))
        rt.append(np.max(np.abs(back - uv)))
        z_pred = np.full(len(uv), np.nan)
        for i, (nx, ny) in enumerate(n):
            parsed = answers.parse_depth(gt_answerer.answer_depth(prompts.render_depth(nx, ny), du))
            if parsed.ok and parsed.value is not None and parsed.value > 0:
                z_pred[i] = parsed.value
        uv_rect = view.rectified_pixels(uv)
        p_pred = backproject(uv_rect, z_pred, K_rect, "z_depth")
        p_true = backproject(uv_rect, z_true, K_rect, "z_depth")
        e = np.linalg.norm(p_pred - p_true, axis=1) * 1000.0
        errs.append(e[np.isfinite(e)])
        ui, vi = uv[:, 0].astype(int), uv[:, 1].astype(int)
        smooth = local_max[vi, ui] < 1.02 * local_min[vi, ui]
        smooth_errs.append(e[smooth & np.isfinite(e)])
        rng_true = np.linalg.norm(p_true, axis=1) * 1000.0
        smooth_rel.append((e / rng_true)[smooth & np.isfinite(e)])
    all_e = np.concatenate(errs)
    return DepthChainResult(points=len(all_e), median_mm=float(np.median(all_e)),
                            p95_mm=float(np.percentile(all_e, 95)), max_mm=float(all_e.max()),
                            max_pixel_roundtrip_px=float(max(rt)), rectify=rectify,
                            smooth_points=int(sum(len(x) for x in smooth_errs)),
                            smooth_max_mm=float(np.concatenate(smooth_errs).max()),
                            smooth_max_rel=float(np.concatenate(smooth_rel).max()))


@dataclass(frozen=True)
class PoseTextResult:
    pairs: int
    max_rot_err_deg: float
    max_trans_dir_err_deg: float
    max_dist_err_m: float
    max_ypr_vs_angle_deg: float


def pose_text_chain() -> PoseTextResult:
    """GT relative poses of the TUM pairs -> the contract's four text answers -> parse -> pose."""
    seq = TumSequence()
    rot, tr, dist, consist = [], [], [], []
    for pair in seq.pairs():
        T_1_2 = pose.invert(pair.T_j_i)  # pairs hold T_j_i (points i -> j); the answer is T_i_j
        texts = {k: answers.format_pose_answer(k, T_1_2) for k in answers.POSE_KEYS}
        ypr = answers.parse_ypr(texts["ypr"]).value
        u = answers.parse_direction(texts["direction"]).value
        d = answers.parse_distance(texts["distance"]).value
        angle = answers.parse_rotation_angle(texts["rotation"]).value
        assert ypr is not None and u is not None and d is not None and angle is not None
        R = pose.ypr_to_matrix(*ypr)
        rot.append(pose.rotation_error_deg(T_1_2[:3, :3], R))
        tr.append(pose.translation_angle_deg(T_1_2[:3, 3], np.array(u), fold_sign=False))
        dist.append(abs(d - float(np.linalg.norm(T_1_2[:3, 3]))))
        consist.append(abs(pose.rotation_angle_deg(R) - angle))
    return PoseTextResult(len(rot), max(rot), max(tr), max(dist), max(consist))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=400, help="pixels sampled per frame")
    args = parser.parse_args(argv)
    out = {
        "depth_rectified": asdict(depth_chain(True, args.points)),
        "depth_pass_through": asdict(depth_chain(False, args.points)),
        "pose_text": asdict(pose_text_chain()),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
