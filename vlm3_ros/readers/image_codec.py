"""``sensor_msgs/Image`` payloads <-> numpy, without cv_bridge.

Why not cv_bridge: it is not installable from the package registries here (the PyPI "cv-bridge"
is an old ROS 1 port with wrong type tables), and the conversions needed are a reshape and a
channel swap. Errors name the encoding and the size mismatch so a driver bug is easy to spot.
"""

from __future__ import annotations

import numpy as np

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1, "16UC1": 1, "32FC1": 1}
_DTYPE = {"rgb8": np.uint8, "bgr8": np.uint8, "rgba8": np.uint8, "bgra8": np.uint8, "mono8": np.uint8,
          "mono16": np.uint16, "16UC1": np.uint16, "32FC1": np.float32}


class ImageDecodeError(ValueError):
    """The image message cannot be decoded; the message says why."""


def _as_array(encoding: str, width: int, height: int, step: int, data: bytes | np.ndarray,
              is_bigendian: bool, max_pixels: int) -> np.ndarray:
    if encoding not in _CHANNELS:
        raise ImageDecodeError(f"unsupported encoding {encoding!r}; supported: {', '.join(_CHANNELS)}")
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image size {width}x{height} must be positive")
    if width * height > max_pixels:
        raise ImageDecodeError(f"image {width}x{height} exceeds the configured maximum of {max_pixels} pixels")
    dt = np.dtype(_DTYPE[encoding]).newbyteorder(">" if is_bigendian else "<")
    ch = _CHANNELS[encoding]
    row = width * ch * dt.itemsize
    if step < row:
        raise ImageDecodeError(f"step {step} is smaller than width*channels*bytes = {row} for {encoding}")
    buf = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data.tobytes(), dtype=np.uint8)
    if buf.size < step * (height - 1) + row:
        raise ImageDecodeError(f"data has {buf.size} bytes but {width}x{height} {encoding} with step {step} "
                               f"needs {step * height}: truncated image")
    if buf.size > step * height:
        raise ImageDecodeError(f"data has {buf.size} bytes but {width}x{height} {encoding} with step {step} "
                               f"has {step * height}: width/height/step do not match the data")
    if buf.size < step * height:  # last row without padding is tolerated
        buf = np.concatenate([buf, np.zeros(step * height - buf.size, np.uint8)])
    rows = buf.reshape(height, step)[:, :row]
    arr = np.ascontiguousarray(rows).view(dt).reshape(height, width, ch)
    return arr.astype(dt.newbyteorder("="), copy=False)


def to_rgb8(encoding: str, width: int, height: int, step: int, data: bytes | np.ndarray,
            is_bigendian: bool = False, max_pixels: int = 4096 * 4096) -> np.ndarray:
    """A colour or mono image message -> RGB uint8 (H, W, 3)."""
    if encoding not in COLOR_ENCODINGS:
        raise ImageDecodeError(f"unsupported encoding {encoding!r}: not a camera image encoding; use one of "
                               f"{', '.join(COLOR_ENCODINGS)}")
    a = _as_array(encoding, width, height, step, data, is_bigendian, max_pixels)
    if encoding == "rgb8":
        return a
    if encoding == "bgr8":
        return np.ascontiguousarray(a[:, :, ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(a[:, :, :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(a[:, :, 2::-1])
    if encoding == "mono8":
        return np.repeat(a, 3, axis=2)
    mono = (a[:, :, 0] >> 8).astype(np.uint8)  # mono16: keep the high byte
    return np.repeat(mono[:, :, None], 3, axis=2)


def to_depth_m(encoding: str, width: int, height: int, step: int, data: bytes | np.ndarray,
               is_bigendian: bool = False, max_pixels: int = 4096 * 4096) -> np.ndarray:
    """A depth image message (REP 118: 16UC1 millimetres or 32FC1 metres) -> float64 metres, 0 = none."""
    if encoding not in DEPTH_ENCODINGS:
        raise ImageDecodeError(f"depth encoding {encoding!r} unsupported; use 16UC1 (mm) or 32FC1 (m)")
    a = _as_array(encoding, width, height, step, data, is_bigendian, max_pixels)[:, :, 0]
    if encoding == "32FC1":
        d = a.astype(np.float64)
        d[~np.isfinite(d)] = 0.0
        return d
    return a.astype(np.float64) / 1000.0


def from_rgb8(image: np.ndarray, encoding: str = "rgb8") -> tuple[int, int, int, bytes]:
    """RGB uint8 (H, W, 3) -> (width, height, step, data) in ``encoding`` (rgb8 or bgr8)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageDecodeError("expected RGB uint8 (H, W, 3)")
    out = image if encoding == "rgb8" else image[:, :, ::-1]
    if encoding not in ("rgb8", "bgr8"):
        raise ImageDecodeError(f"cannot encode {encoding!r}")
    h, w = image.shape[:2]
    return w, h, w * 3, np.ascontiguousarray(out).tobytes()
