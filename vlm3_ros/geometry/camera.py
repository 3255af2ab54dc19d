"""Camera model from ``sensor_msgs/CameraInfo`` fields, as plain validated data.

Owns: validation of the calibration (clear errors for what a robot actually sends wrong),
binning and ROI applied the way ``image_geometry`` does, and undistortion of images and pixels.
No rclpy: the ROS shell copies message fields into :class:`CameraInfoData`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

SUPPORTED_DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant", "")
MIN_FOCAL_PER_PX = 0.01    # focal / longest side: a field of view of 178.9 degrees
MAX_FOCAL_PER_PX = 1000.0  # 0.06 degrees
# Plausibility limits of a calibration (docs/reliability.md names them): beyond these a CameraInfo
# is a driver or unit error, and using it would warp the image into nonsense.
PRINCIPAL_POINT_MARGIN = 0.5   # cx, cy within the image widened by this share of its size on each side
MAX_SKEW_PER_FOCAL = 0.1       # |K[1]| (skew) at most this share of fx
MAX_RADIAL_COEFFICIENT = 100.0    # |k1..k6| (rational_polynomial fits of wide lenses reach tens)
MAX_TANGENTIAL_COEFFICIENT = 1.0  # |p1|, |p2|: a decentred lens, not a shifted sensor
ROTATION_TOLERANCE = 1e-3      # R R^T = I and det R = 1 to this tolerance


class CameraModelError(ValueError):
    """The calibration cannot be used; the message says which field and what to fix."""


@dataclass(frozen=True)
class CameraInfoData:
    """The fields of ``sensor_msgs/CameraInfo`` (row-major K 3x3, R 3x3, P 3x4)."""

    width: int
    height: int
    k: tuple[float, ...]
    d: tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    r: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    p: tuple[float, ...] = ()
    binning_x: int = 0
    binning_y: int = 0
    roi_x_offset: int = 0
    roi_y_offset: int = 0
    roi_width: int = 0
    roi_height: int = 0
    frame_id: str = ""

    @staticmethod
    def from_intrinsics(
        width: int, height: int, fx: float, fy: float, cx: float, cy: float, **kwargs: object
    ) -> CameraInfoData:
        k = (fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0)
        p = (fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0)
        return CameraInfoData(width=width, height=height, k=k, p=p, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CameraModel:
    """A validated pinhole camera for images of ``width`` x ``height`` (after binning and ROI).

    ``K`` and ``D`` describe the raw (distorted) image; ``P`` the rectified one. With zero
    distortion, K and P[:, :3] describe the same pinhole (P may still differ, as CameraInfo allows).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    P: np.ndarray
    frame_id: str = ""
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    _undistort_maps: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def has_distortion(self) -> bool:
        return bool(self.D.size) and bool(np.any(self.D != 0.0))

    @property
    def needs_rectification(self) -> bool:
        """True when the raw image differs from the rectified pinhole P (distortion, R or P != K)."""
        return (self.has_distortion or not np.allclose(self.P[:, :3], self.K)
                or not np.allclose(self.R, np.eye(3)))

    @staticmethod
    def from_camera_info(info: CameraInfoData) -> CameraModel:
        """Validate ``info`` and apply binning and ROI (ROI offset subtracted, then binning)."""
        _check(info.width > 0 and info.height > 0,
               f"image size {info.width}x{info.height} must be positive")
        k = _matrix(info.k, (3, 3), "K")
        _check(k[0, 0] > 0 and k[1, 1] > 0,
               f"focal length fx={k[0, 0]}, fy={k[1, 1]} must be positive (K[0], K[4]); "
               "an all-zero K means the camera is uncalibrated")
        _check(k[2, 2] == 1.0 and k[1, 0] == 0 and k[2, 0] == 0 and k[2, 1] == 0,
               f"K must be upper triangular with K[8]=1, got {list(info.k)}")
        # A lens sees between about 0.06 and 178 degrees: outside, the focal length is a unit or
        # driver error, and unifying to the model's focal would make an absurd image.
        span = max(info.width, info.height)
        for name, f in (("fx", k[0, 0]), ("fy", k[1, 1])):
            _check(MIN_FOCAL_PER_PX * span <= f <= MAX_FOCAL_PER_PX * span,
                   f"focal length {name}={f:g} px is implausible for a {info.width}x{info.height} image (expected "
                   f"{MIN_FOCAL_PER_PX * span:g} to {MAX_FOCAL_PER_PX * span:g} px): check the calibration's units")
        _check(abs(k[0, 1]) <= MAX_SKEW_PER_FOCAL * k[0, 0],
               f"skew K[1]={k[0, 1]:g} is implausible for fx={k[0, 0]:g} (at most {MAX_SKEW_PER_FOCAL:g} fx)")
        _check_principal_point("K", k, info.width, info.height)
        # An all-zero P is what drivers send when they do not rectify: use K then.
        has_p = len(info.p) and any(v != 0.0 for v in info.p)
        p = _matrix(info.p, (3, 4), "P") if has_p else np.hstack([k, np.zeros((3, 1))])
        if has_p:
            _check(p[0, 0] > 0 and p[1, 1] > 0, f"P focal lengths must be positive, got {list(info.p)}")
            _check_principal_point("P", p, info.width, info.height)
        d = np.asarray(info.d, dtype=np.float64)
        _check(bool(np.all(np.isfinite(d))), f"distortion coefficients must be finite, got {list(info.d)}")
        _check_distortion_magnitude(info.distortion_model, d)
        model = info.distortion_model
        _check(model in SUPPORTED_DISTORTION_MODELS,
               f"distortion model {model!r} is not supported; use one of "
               f"{[m for m in SUPPORTED_DISTORTION_MODELS if m]}")
        if model == "plumb_bob":
            _check(d.size in (0, 5), f"plumb_bob needs 5 coefficients, got {d.size}")
        elif model == "rational_polynomial":
            _check(d.size in (0, 8), f"rational_polynomial needs 8 coefficients, got {d.size}")
        elif model == "equidistant":
            _check(d.size in (0, 4), f"equidistant needs 4 coefficients, got {d.size}")
        elif model == "":
            _check(not np.any(d != 0), "distortion coefficients given without a distortion_model")

        width, height = info.width, info.height
        k = k.copy()
        p = p.copy()
        if info.roi_width > 0 and info.roi_height > 0:
            _check(info.roi_x_offset + info.roi_width <= info.width
                   and info.roi_y_offset + info.roi_height <= info.height,
                   "ROI exceeds the calibrated image size")
            width, height = info.roi_width, info.roi_height
            for m in (k, p):
                m[0, 2] -= info.roi_x_offset
                m[1, 2] -= info.roi_y_offset
        bx = info.binning_x if info.binning_x > 1 else 1
        by = info.binning_y if info.binning_y > 1 else 1
        if bx > 1 or by > 1:
            width, height = width // bx, height // by
            # Row scaling divides focal, principal point and (for P) the Tx/Ty terms alike.
            for m in (k, p):
                m[0, :] /= bx
                m[1, :] /= by
        r = _matrix(info.r, (3, 3), "R") if len(info.r) else np.eye(3)
        if not np.any(r):
            r = np.eye(3)  # an all-zero R is what many drivers send for "not set"
        _check(bool(np.allclose(r @ r.T, np.eye(3), atol=ROTATION_TOLERANCE))
               and abs(float(np.linalg.det(r)) - 1.0) <= ROTATION_TOLERANCE,
               f"R must be a rotation (orthonormal, det 1) or all zeros, got {list(info.r)}")
        return CameraModel(width=width, height=height, K=k, D=d, distortion_model=model or "plumb_bob",
                           P=p, frame_id=info.frame_id, R=r)

    def check_image_size(self, width: int, height: int) -> None:
        if (width, height) != (self.width, self.height):
            raise CameraModelError(
                f"image is {width}x{height} but its CameraInfo (after binning/ROI) describes "
                f"{self.width}x{self.height}: the CameraInfo does not belong to this image"
            )

    def rectified(self) -> CameraModel:
        """The pinhole camera of the rectified image, K = P[:, :3] as image_geometry uses it."""
        k = self.P[:, :3].copy()
        return CameraModel(self.width, self.height, k, np.zeros(0), "plumb_bob",
                           np.hstack([k, np.zeros((3, 1))]), self.frame_id)

    def undistort_image(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Remap a raw image to the rectified pinhole (:meth:`rectified`); maps are cached."""
        if not self.needs_rectification:
            return image
        key = f"{interpolation}"
        if key not in self._undistort_maps:
            new_k = self.rectified().K
            if self.distortion_model == "equidistant":
                m1, m2 = cv2.fisheye.initUndistortRectifyMap(
                    self.K, self.D, self.R, new_k, (self.width, self.height), cv2.CV_32FC1)
            else:
                m1, m2 = cv2.initUndistortRectifyMap(
                    self.K, self.D, self.R, new_k, (self.width, self.height), cv2.CV_32FC1)
            self._undistort_maps[key] = (m1, m2)
        m1, m2 = self._undistort_maps[key]
        return cv2.remap(image, m1, m2, interpolation)

    def undistort_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Raw pixels (N, 2) -> pixels of the rectified image (:meth:`rectified`)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if not self.needs_rectification or not len(uv):
            return uv.copy()
        new_k = self.rectified().K
        pts = uv.reshape(-1, 1, 2)
        if self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D, R=self.R, P=new_k)
        else:
            out = cv2.undistortPoints(pts, self.K, self.D if self.D.size else None, R=self.R, P=new_k)
        return out.reshape(-1, 2)

    def distort_pixels(self, uv_rect: np.ndarray) -> np.ndarray:
        """Pixels of the rectified image (N, 2) -> raw pixels (inverse of undistort_pixels)."""
        uv_rect = np.asarray(uv_rect, dtype=np.float64).reshape(-1, 2)
        if not self.needs_rectification or not len(uv_rect):
            return uv_rect.copy()
        kr = self.rectified().K
        rays = np.column_stack([(uv_rect[:, 0] - kr[0, 2]) / kr[0, 0],
                                (uv_rect[:, 1] - kr[1, 2]) / kr[1, 1],
                                np.ones(len(uv_rect))])
        rays = rays @ self.R  # rectified ray -> raw camera ray (R maps raw -> rectified)
        if self.distortion_model == "equidistant":
            norm = (rays[:, :2] / rays[:, 2:3]).reshape(-1, 1, 2)
            out = cv2.fisheye.distortPoints(norm, self.K, self.D)
            return out.reshape(-1, 2)
        out, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), self.K,
                                   self.D if self.D.size else None)
        return out.reshape(-1, 2)


def _matrix(values: tuple[float, ...], shape: tuple[int, int], name: str) -> np.ndarray:
    _check(len(values) == shape[0] * shape[1],
           f"{name} must have {shape[0] * shape[1]} elements, got {len(values)}")
    m = np.asarray(values, dtype=np.float64).reshape(shape)
    _check(bool(np.all(np.isfinite(m))), f"{name} contains NaN or infinity: {list(values)}")
    return m


def _check_principal_point(name: str, m: np.ndarray, width: int, height: int) -> None:
    """The principal point of ``m`` (K or P) lies within the image widened by the margin."""
    for axis, c, size in (("cx", m[0, 2], width), ("cy", m[1, 2], height)):
        lo, hi = -PRINCIPAL_POINT_MARGIN * size, (1.0 + PRINCIPAL_POINT_MARGIN) * size
        _check(lo <= c <= hi, f"principal point {axis}={c:g} ({name}) is implausible for a {width}x{height} "
               f"image (expected {lo:g} to {hi:g} px): check the calibration's units and image size")


def _check_distortion_magnitude(model: str, d: np.ndarray) -> None:
    """Coefficients of the size a real lens has: radial and (plumb_bob, rational) tangential terms."""
    tangential = (2, 3) if model in ("plumb_bob", "rational_polynomial") else ()
    for i, v in enumerate(d):
        limit = MAX_TANGENTIAL_COEFFICIENT if i in tangential else MAX_RADIAL_COEFFICIENT
        _check(abs(v) <= limit, f"distortion coefficient D[{i}]={v:g} is implausible for {model or 'no model'} "
               f"(|D[{i}]| at most {limit:g}): check the calibration")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise CameraModelError(f"invalid CameraInfo: {message}")


def is_finite_number(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
