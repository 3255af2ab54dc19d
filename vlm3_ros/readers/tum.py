"""Reader for the bundled TUM RGB-D freiburg1_xyz frames (vlm3_ros/data/tum_fr1_xyz/frames).

Data: TUM RGB-D benchmark, CC BY 4.0. Cite: J. Sturm, N. Engelhard, F. Endres, W. Burgard,
D. Cremers, "A Benchmark for the Evaluation of RGB-D SLAM Systems", IROS 2012.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.geometry.trajectory import Trajectory

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "tum_fr1_xyz"
FRAMES_DIR = DATA_DIR / "frames"
BAGS_DIR = DATA_DIR / "bags"
BAG_PATHS = {
    "mcap": BAGS_DIR / "tum_fr1_xyz_mini_mcap",
    "sqlite3": BAGS_DIR / "tum_fr1_xyz_mini_db3",
    "ros1": BAGS_DIR / "tum_fr1_xyz_mini.bag",
}
DEPTH_SCALE = 5000.0  # TUM depth PNG: metres = value / 5000


@dataclass(frozen=True)
class TumFrame:
    index: int
    rgb_stamp: float
    rgb_path: Path
    depth_stamp: float
    depth_path: Path

    def rgb(self) -> np.ndarray:
        """RGB image (H, W, 3) uint8."""
        bgr = cv2.imread(str(self.rgb_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(self.rgb_path)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def depth_m(self) -> np.ndarray:
        """z-depth (H, W) float64 metres, 0 where missing."""
        raw = cv2.imread(str(self.depth_path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise FileNotFoundError(self.depth_path)
        return raw.astype(np.float64) / DEPTH_SCALE


@dataclass(frozen=True)
class TumPair:
    i: int
    j: int
    T_j_i: np.ndarray   # maps points from camera i to camera j
    rot_deg: float
    trans_m: float


class TumSequence:
    def __init__(self, root: Path = FRAMES_DIR) -> None:
        self.root = Path(root)
        self.frames = self._frames()
        self.camera_info = self._camera_info()
        self.trajectory_at_rgb = self._trajectory("groundtruth_at_rgb.txt")

    def _rows(self, name: str) -> list[list[str]]:
        rows = []
        for line in (self.root / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                rows.append(line.split())
        return rows

    def _frames(self) -> list[TumFrame]:
        return [TumFrame(i, float(r[0]), self.root / r[1], float(r[2]), self.root / r[3])
                for i, r in enumerate(self._rows("associations.txt"))]

    def _camera_info(self) -> CameraInfoData:
        y = yaml.safe_load((self.root / "camera_rgb_fr1.yaml").read_text())
        return CameraInfoData(
            width=int(y["image_width"]), height=int(y["image_height"]),
            k=tuple(y["camera_matrix"]["data"]), d=tuple(y["distortion_coefficients"]["data"]),
            distortion_model=y["distortion_model"], r=tuple(y["rectification_matrix"]["data"]),
            p=tuple(y["projection_matrix"]["data"]), frame_id="camera_rgb_optical_frame")

    def _trajectory(self, name: str) -> Trajectory:
        rows = np.array([[float(v) for v in r[:8]] for r in self._rows(name)])
        return Trajectory.from_tq(rows[:, 0], rows[:, 1:4], rows[:, 4:8])

    def full_groundtruth(self) -> Trajectory:
        return self._trajectory("groundtruth.txt")

    def pairs(self) -> list[TumPair]:
        out = []
        for r in self._rows("pairs_gt.txt"):
            v = [float(x) for x in r[4:16]]
            T = np.eye(4)
            T[:3, :] = np.array(v).reshape(3, 4)
            out.append(TumPair(int(r[0]), int(r[1]), T, float(r[16]), float(r[17])))
        return out

    def pose_at(self, index: int) -> np.ndarray:
        return self.trajectory_at_rgb.poses[index].copy()
