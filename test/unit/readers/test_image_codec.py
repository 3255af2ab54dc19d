"""Image message payloads <-> numpy for every supported encoding, and the errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest

from vlm3_ros.readers.image_codec import ImageDecodeError, from_rgb8, to_depth_m, to_rgb8

RGB = (np.arange(4 * 5 * 3) % 251).astype(np.uint8).reshape(4, 5, 3)


@pytest.mark.parametrize("encoding, make", [
    ("rgb8", lambda: RGB),
    ("bgr8", lambda: RGB[:, :, ::-1]),
    ("rgba8", lambda: np.dstack([RGB, np.full((4, 5), 7, np.uint8)])),
    ("bgra8", lambda: np.dstack([RGB[:, :, ::-1], np.full((4, 5), 7, np.uint8)])),
])
def test_colour_encodings(encoding: str, make) -> None:
    a = np.ascontiguousarray(make())
    out = to_rgb8(encoding, 5, 4, a.shape[1] * a.shape[2], a.tobytes())
    np.testing.assert_array_equal(out, RGB)


def test_row_padding_and_mono() -> None:
    padded = np.zeros((4, 5 * 3 + 1), np.uint8)
    padded[:, :15] = RGB.reshape(4, 15)
    np.testing.assert_array_equal(to_rgb8("rgb8", 5, 4, 16, padded.tobytes()), RGB)
    mono = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = to_rgb8("mono8", 5, 4, 5, mono.tobytes())
    assert out.shape == (4, 5, 3) and np.all(out[:, :, 0] == mono)
    m16 = (np.arange(20, dtype=np.uint16) * 1000).reshape(4, 5)
    out16 = to_rgb8("mono16", 5, 4, 10, m16.tobytes())
    np.testing.assert_array_equal(out16[:, :, 1], (m16 >> 8).astype(np.uint8))
    big = to_rgb8("mono16", 5, 4, 10, m16.astype(">u2").tobytes(), is_bigendian=True)
    np.testing.assert_array_equal(big, out16)


def test_depth_encodings() -> None:
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    np.testing.assert_allclose(to_depth_m("16UC1", 2, 2, 4, mm.tobytes()), mm / 1000.0)
    m = np.array([[np.nan, 1.5], [np.inf, 2.0]], np.float32)
    np.testing.assert_allclose(to_depth_m("32FC1", 2, 2, 8, m.tobytes()), [[0, 1.5], [0, 2.0]])


@pytest.mark.parametrize("args, needle", [
    (("yuv422", 5, 4, 10, bytes(40)), "unsupported"),
    (("rgb8", 5, 4, 15, bytes(10)), "truncated"),
    (("rgb8", 5, 4, 15, bytes(61)), "do not match"),
    (("rgb8", 5, 4, 14, bytes(60)), "step"),
    (("rgb8", 0, 4, 0, b""), "positive"),
    (("32FC1", 5, 4, 20, bytes(80)), "not a camera image"),
])
def test_bad_images_are_explained(args, needle: str) -> None:
    with pytest.raises(ImageDecodeError, match=needle):
        to_rgb8(*args)


def test_size_limit_and_round_trip() -> None:
    with pytest.raises(ImageDecodeError, match="maximum"):
        to_rgb8("rgb8", 5000, 5000, 15000, b"", max_pixels=1000)
    w, h, step, data = from_rgb8(RGB, "bgr8")
    np.testing.assert_array_equal(to_rgb8("bgr8", w, h, step, data), RGB)
    with pytest.raises(ImageDecodeError, match="depth encoding"):
        to_depth_m("rgb8", 5, 4, 15, RGB.tobytes())
