"""Process memory settings for long-running CPU inference: large transient buffers go back to the
operating system instead of pinning the heap.

Why: glibc raises its mmap threshold each time a large mmapped buffer is freed, so after the
first frames every transient buffer of a prefill or decode step (pixel values, activations,
logits: tens of MB) comes from the heap, and the small long-lived tensors the frame prefix cache
keeps between them stop the heap from shrinking: RSS then grows by several times what the cache
keeps per frame. With the threshold fixed at 4 MiB the growth per cached frame is what the cache
holds (measured: bench/results/load_*.md, docs/status.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

LOG = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3          # glibc's mallopt parameter number
LARGE_BUFFER_BYTES = 4 * 2**20
_applied: int | None = None


def return_large_buffers(threshold_bytes: int = LARGE_BUFFER_BYTES) -> bool:
    """Serve allocations of ``threshold_bytes`` and more with mmap (freed straight back to the
    system) and keep glibc from raising that threshold; once per process. False where the C
    library is not glibc (macOS, musl): nothing to do there."""
    global _applied
    if _applied is not None:
        return _applied == threshold_bytes
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)))
    except (OSError, AttributeError) as e:   # not glibc: no mallopt
        LOG.debug("mallopt unavailable (%s); the allocator keeps its defaults", e)
        return False
    if ok:
        _applied = threshold_bytes
    return ok
