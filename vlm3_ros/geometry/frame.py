"""One camera image with its calibration: the unit every task, reader and the node pass around."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlm3_ros.geometry.camera import CameraModel


class FrameError(ValueError):
    """The image cannot form a frame with this camera (wrong type, shape or size)."""


@dataclass(frozen=True)
class Frame:
    """``image`` is RGB uint8 (H, W, 3) of the size ``camera`` was calibrated for."""

    image: np.ndarray
    camera: CameraModel
    stamp_ns: int
    frame_id: str = ""

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise FrameError(f"frame image must be RGB uint8 (H, W, 3), got {self.image.dtype} {self.image.shape}")
        self.camera.check_image_size(self.image.shape[1], self.image.shape[0])
