"""Visual odometry that respects the answer's resolution: on a slow 30 Hz trajectory, integrating
every frame's 0.8 cm step as a "0.01 meters" answer inflates the path by a fifth; integrating
only baselines of 10 cm and more keeps the path length within 3 %."""

from __future__ import annotations

import time

import numpy as np
from scipy.spatial.transform import Rotation

from vlm3_ros.geometry import pose
from vlm3_ros.geometry.camera import CameraInfoData, CameraModel
from vlm3_ros.geometry.odometry import KeyframePolicy
from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend
from vlm3_ros.serving.core import PerceptionCore
from vlm3_ros.serving.settings import OdometrySettings, ServingSettings, SparseDepthSettings
from vlm3_ros.tasks.pipeline import PipelineSettings

RATE_HZ, SECONDS, SPEED = 30.0, 4.0, 0.25     # a slow robot: 0.83 cm per frame


def camera_pose(t: float) -> np.ndarray:
    """T_world_camera: forward along an arc, turning 20 degrees over the run."""
    yaw = np.radians(20.0) * t / SECONDS
    x, z = SPEED * t * np.sin(yaw / 2), SPEED * t * np.cos(yaw / 2)
    return pose.make_T(Rotation.from_euler("y", yaw).as_matrix(), [x, 0.0, z])


class ArcTruth:
    """TEST DOUBLE ground truth: the synthetic arc's poses (no depth needed for pose answers)."""

    def depth_z(self, stamp_ns: int) -> np.ndarray | None:
        return None

    def pose(self, stamp_ns: int) -> np.ndarray | None:
        return camera_pose(stamp_ns * 1e-9)


def vo_path_length(policy: KeyframePolicy) -> tuple[float, int, dict]:
    """Run the node's VO producer over the arc: (estimated path length, odometry messages, the
    core's VO counters)."""
    gt = GroundTruthBackend(ArcTruth())
    core = PerceptionCore()
    settings = ServingSettings(tasks=("pose",), sparse=SparseDepthSettings(rate_hz=0.0),
                               vo=OdometrySettings(extrinsic=(0, 0, 0, 0, 0, 0, 1), use_tf_static=False, policy=policy))
    assert core.configure(settings, PipelineSettings(), lambda: {"pose": gt}) and core.activate()
    cam = CameraModel.from_camera_info(CameraInfoData.from_intrinsics(160, 120, 130.0, 130.0, 80.0, 60.0))
    image = np.zeros((120, 160, 3), np.uint8)
    published: list[np.ndarray] = []
    try:
        assert core.vo is not None
        for k in range(int(RATE_HZ * SECONDS) + 1):
            stamp = round(k / RATE_HZ * 1e9)
            core.camera.on_camera_info(stamp, cam_info(cam))
            core.camera.on_image(stamp, "cam", lambda: image)
            c = core.counters
            n = c["vo_updates"] + c["vo_short_baseline"] + c["vo_failures"]
            core.vo.tick(lambda T, s: published.append(T[:3, 3].copy()))
            deadline = time.monotonic() + 5
            while k and c["vo_updates"] + c["vo_short_baseline"] + c["vo_failures"] == n:
                assert time.monotonic() < deadline
                time.sleep(0.001)
        stats = {k: v for k, v in core.counters.items() if k.startswith("vo_")}
    finally:
        core.cleanup()
    p = np.array(published)
    return float(np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1))), len(published), stats


def cam_info(cam: CameraModel) -> CameraInfoData:
    return CameraInfoData.from_intrinsics(cam.width, cam.height, cam.fx, cam.fy, cam.K[0, 2], cam.K[1, 2])


def test_short_baselines_are_not_integrated_and_the_path_length_holds() -> None:
    truth = sum(np.linalg.norm(camera_pose((k + 1) / RATE_HZ)[:3, 3] - camera_pose(k / RATE_HZ)[:3, 3])
                for k in range(int(RATE_HZ * SECONDS)))
    frames = int(RATE_HZ * SECONDS)
    length, messages, stats = vo_path_length(KeyframePolicy())  # the defaults: 10 cm baselines
    assert abs(length / truth - 1.0) < 0.03, (length, truth)
    # the frames the truth keeps within 9.5 cm of the first keyframe (10 cm less the answers'
    # rounding) cannot be integrated: only the origin is published for them
    near = next(k for k in range(1, frames + 1)
                if np.linalg.norm(camera_pose(k / RATE_HZ)[:3, 3] - camera_pose(0.0)[:3, 3]) >= 0.095) - 1
    assert near >= 10 and stats["vo_short_baseline"] >= near
    # the near frames publish nothing; the origin and at least one integrated frame are published
    assert 1 + (frames - near) >= messages > 1
    # every frame is either integrated (and published once) or a short baseline (published not at all)
    assert stats["vo_updates"] + stats["vo_short_baseline"] == frames and stats["vo_failures"] == 0
    assert messages == 1 + stats["vo_updates"] and stats["vo_short_baseline"] >= 12, stats
    naive, naive_messages, naive_stats = vo_path_length(KeyframePolicy(min_translation_m=0.0, min_baseline_m=0.0))
    assert naive_messages == frames + 1 and naive / truth > 1.1  # rounding inflates it
    assert naive_stats["vo_short_baseline"] == 0
