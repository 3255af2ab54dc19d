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


# ---------------------------------------------------------------- sensor_msgs/CompressedImage
# compressed_depth_image_transport: a 12-byte header (int32 format, float32 depthQuantA, float32
# depthQuantB) then a PNG; 16UC1 depth is the PNG as is (mm), 32FC1 depth is quantised inverse
# depth (value = A / depth + B, 0 = no depth).
_DEPTH_HEADER = np.dtype([("fmt", "<i4"), ("a", "<f4"), ("b", "<f4")])


def compressed_to_rgb(fmt: str, data: bytes | np.ndarray, max_pixels: int = 4096 * 4096) -> np.ndarray:
    """A CompressedImage (jpeg or png, the image_transport ``compressed`` plugin) -> RGB uint8."""
    import cv2

    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError(f"format {fmt!r} is a compressed depth image, not a camera image")
    buf = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data.tobytes(), np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise ImageDecodeError(f"cannot decode the compressed image (format {fmt!r}, {buf.size} bytes)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise ImageDecodeError(f"image {img.shape[1]}x{img.shape[0]} exceeds the configured maximum of "
                               f"{max_pixels} pixels")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def compressed_depth_to_m(fmt: str, data: bytes | np.ndarray) -> np.ndarray:
    """A ``compressedDepth`` CompressedImage (16UC1 or 32FC1; png) -> float64 metres, 0 = none."""
    import cv2

    raw = bytes(data) if not isinstance(data, np.ndarray) else data.tobytes()
    if "compresseddepth" not in fmt.lower():
        raise ImageDecodeError(f"format {fmt!r} is not compressedDepth (image_transport's depth plugin)")
    if len(raw) <= _DEPTH_HEADER.itemsize:
        raise ImageDecodeError(f"compressedDepth data of {len(raw)} bytes holds no image")
    head = np.frombuffer(raw[:_DEPTH_HEADER.itemsize], _DEPTH_HEADER)[0]
    img = cv2.imdecode(np.frombuffer(raw[_DEPTH_HEADER.itemsize:], np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        raise ImageDecodeError(f"compressedDepth payload is not a 16-bit single-channel PNG (format {fmt!r})")
    if fmt.split(";")[0].strip().upper() == "32FC1":
        out = np.zeros(img.shape, np.float64)
        valid = img > 0
        out[valid] = float(head["a"]) / (img[valid].astype(np.float64) - float(head["b"]))
        return out
    return img.astype(np.float64) / 1000.0


def encode_compressed(rgb: np.ndarray, kind: str = "jpeg") -> tuple[str, bytes]:
    """RGB -> (format, data) as image_transport's ``compressed`` plugin publishes them."""
    import cv2

    ok, buf = cv2.imencode(".jpg" if kind == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageDecodeError(f"cannot encode {kind}")
    return f"rgb8; {kind} compressed bgr8", buf.tobytes()


def encode_compressed_depth(depth_m: np.ndarray, encoding: str = "16UC1", depth_max: float = 10.0,
                            quantization: float = 100.0) -> tuple[str, bytes]:
    """Depth in metres -> (format, data) as compressed_depth_image_transport publishes them."""
    import cv2

    d = np.asarray(depth_m, dtype=np.float64)
    if encoding == "16UC1":
        img = np.round(np.clip(d, 0, 65.535) * 1000.0).astype(np.uint16)
        head = np.array([(0, 0.0, 0.0)], _DEPTH_HEADER)
    else:
        a = quantization * (quantization + 1.0)
        b = 1.0 - a / depth_max
        img = np.zeros(d.shape, np.uint16)
        valid = (d > 0) & (d <= depth_max) & np.isfinite(d)
        img[valid] = np.round(a / d[valid] + b).astype(np.uint16)
        head = np.array([(0, a, b)], _DEPTH_HEADER)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ImageDecodeError("cannot PNG-encode the depth image")
    return f"{encoding}; compressedDepth png", head.tobytes() + buf.tobytes()
