"""Focal-length unification: resize a camera image the way the VLM3 checkpoints were trained.

Owns the image geometry of a task: which size the model sees (a fixed focal length, or a fixed
long edge; each task's choice is in its spec under vlm3_ros/tasks/), the unified intrinsics, and
the mapping of pixels between the original image and the unified one in both directions.

Decisions (docs/geometry.md):
- fx != fy: the reference scales both axes by target/fx; we do the same by default
  (``equalize_focal=False``). ``equalize_focal=True`` scales y by target/fy so fy' = target too.
- Lens distortion: by default the image is undistorted with the CameraInfo model first
  (``rectify=True``) so the model sees a pinhole image with the focal length it expects; the
  reference ignores distortion (``rectify=False`` reproduces that). 3D outputs always use the
  correct (undistorted) ray of the queried pixel.
- Size rounding: new size = (int(W*s), int(H*s)) for focal targets; round() for the long edge.
- Interpolation: the reference's is not stated; ``auto`` uses area averaging to shrink and
  bicubic to enlarge (cv2).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from vlm3_ros.geometry.camera import CameraModel

LOG = logging.getLogger(__name__)

# Qwen3-VL's image processor refuses images whose sides differ more than this, or a side below
# one merged patch (16 px patches, 2x2 merge).
MAX_ASPECT_RATIO = 200.0
MIN_SIDE_PX = 32


class UnifyError(ValueError):
    """The image cannot be unified into something the model accepts (message says why)."""


INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


@dataclass(frozen=True)
class UnifyConfig:
    """How one task resizes its images. Exactly one of target_focal / long_edge is set."""

    target_focal: float | None = 1000.0
    long_edge: int | None = None
    equalize_focal: bool = False
    rectify: bool = True
    max_long_edge: int = 2560
    interpolation: str = "auto"

    def __post_init__(self) -> None:
        if (self.target_focal is None) == (self.long_edge is None):
            raise ValueError("set exactly one of target_focal and long_edge")
        if self.target_focal is not None and not (self.target_focal > 0 and math.isfinite(self.target_focal)):
            raise ValueError(f"target_focal must be a positive number, got {self.target_focal}")
        if self.long_edge is not None and self.long_edge <= 0:
            raise ValueError(f"long_edge must be positive, got {self.long_edge}")
        if self.max_long_edge <= 0:
            raise ValueError(f"max_long_edge must be positive, got {self.max_long_edge}")
        if self.interpolation != "auto" and self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be 'auto' or one of {sorted(INTERPOLATIONS)}")


@dataclass(frozen=True)
class UnifiedView:
    """The geometric relation between one original image and its unified copy."""

    camera: CameraModel          # the original camera (raw image, with distortion)
    width: int                   # unified image size
    height: int
    sx: float                    # unified pixel = rectified-or-raw pixel * (sx, sy)
    sy: float
    K: np.ndarray                # intrinsics of the unified image
    rectified: bool              # the unified image was undistorted first
    clamped: bool                # the target focal was not reached (max_long_edge)

    @property
    def base_K(self) -> np.ndarray:
        """Intrinsics of the image that was resized (rectified P, or raw K)."""
        return self.camera.rectified().K if self.rectified else self.camera.K

    def to_unified(self, uv: np.ndarray) -> np.ndarray:
        """Original (raw) pixels (N, 2) -> unified-image pixels, sub-pixel."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        base = self.camera.undistort_pixels(uv) if self.rectified else uv
        return base * np.array([self.sx, self.sy])

    def to_unified_int(self, uv: np.ndarray) -> np.ndarray:
        """The reference's integer rule: u' = int((u - cx) * s + cx'), v likewise."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        base = self.camera.undistort_pixels(uv) if self.rectified else uv
        k0 = self.base_K
        u = (base[:, 0] - k0[0, 2]) * self.sx + self.K[0, 2]
        v = (base[:, 1] - k0[1, 2]) * self.sy + self.K[1, 2]
        return np.column_stack([u, v]).astype(np.int64)

    def from_unified(self, uv_u: np.ndarray) -> np.ndarray:
        """Unified-image pixels (N, 2) -> original (raw) pixels."""
        uv_u = np.asarray(uv_u, dtype=np.float64).reshape(-1, 2)
        base = uv_u / np.array([self.sx, self.sy])
        return self.camera.distort_pixels(base) if self.rectified else base

    def rectified_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Original pixels -> pixels of the rectified pinhole (for back-projection)."""
        return self.camera.undistort_pixels(uv)


def plan(camera: CameraModel, config: UnifyConfig) -> UnifiedView:
    """Decide the unified size and intrinsics for ``camera`` under ``config``."""
    rectify = bool(config.rectify and camera.needs_rectification)
    k0 = camera.rectified().K if rectify else camera.K
    w, h = camera.width, camera.height
    if max(w, h) / min(w, h) > MAX_ASPECT_RATIO:
        raise UnifyError(f"image is {w}x{h}: an aspect ratio above {MAX_ASPECT_RATIO:g}, which the model's image "
                         "processor refuses")
    clamped = False
    if config.target_focal is not None:
        sx = config.target_focal / k0[0, 0]
        sy = config.target_focal / k0[1, 1] if config.equalize_focal else sx
        if max(w * sx, h * sy) > config.max_long_edge:
            shrink = config.max_long_edge / max(w * sx, h * sy)
            sx, sy = sx * shrink, sy * shrink
            clamped = True
            LOG.warning(
                "unifying %dx%d (fx=%.1f) to focal %.0f would need a %dx%d image; clamped to "
                "max_long_edge=%d, so the model sees focal %.1f and its metric answers will be "
                "biased. Raise max_long_edge if memory allows.",
                w, h, k0[0, 0], config.target_focal, int(w * sx / shrink), int(h * sy / shrink),
                config.max_long_edge, k0[0, 0] * sx)
        new_w, new_h = int(w * sx), int(h * sy)
    else:
        assert config.long_edge is not None
        s = config.long_edge / max(w, h)
        sx = sy = s
        new_w, new_h = round(w * s), round(h * s)
    if not (math.isfinite(sx) and math.isfinite(sy)) or min(new_w, new_h) < MIN_SIDE_PX:
        raise UnifyError(f"unified image would be {new_w}x{new_h} (scale {sx:.3g}), below the model's minimum of "
                         f"{MIN_SIDE_PX} px a side: check the CameraInfo focal length and the image size")
    k = k0.copy()
    k[0, :] *= sx
    k[1, :] *= sy
    return UnifiedView(camera=camera, width=new_w, height=new_h, sx=sx, sy=sy, K=k,
                       rectified=rectify, clamped=clamped)


def render(image: np.ndarray, view: UnifiedView, interpolation: str = "auto",
           size: tuple[int, int] | None = None) -> np.ndarray:
    """Produce the unified image (H', W', C) that the model sees. ``size`` (width, height), when
    given, renders the same view straight at another size, in one resampling: the model's input
    grid (``resample_once``, docs/geometry.md). Text coordinates are normalised to the image, so a
    pixel's coordinate is the same at either size."""
    view.camera.check_image_size(image.shape[1], image.shape[0])
    src = view.camera.undistort_image(image) if view.rectified else image
    width, height = size or (view.width, view.height)
    if interpolation == "auto":
        flag = cv2.INTER_AREA if width < src.shape[1] else cv2.INTER_CUBIC
    else:
        flag = INTERPOLATIONS[interpolation]
    return cv2.resize(src, (width, height), interpolation=flag)
