"""Small inputs the tests share: a free loopback port and deterministic random images."""

from __future__ import annotations

import socket

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_images(n: int, seed: int = 3) -> list[np.ndarray]:
    """``n`` RGB uint8 images of growing height (different sizes exercise the image prefix)."""
    rng = np.random.default_rng(seed)
    return [(rng.random((200 + 16 * k, 300, 3)) * 255).astype(np.uint8) for k in range(n)]
