"""Give large freed buffers back to the operating system in a long-running server.

glibc serves allocations below its mmap threshold from per-thread heaps, and that
threshold rises (up to 32 MiB) each time a larger mmapped block is freed. A decoded
image lives in Pillow's 16 MiB blocks, so after the first big image every later one is
carved out of a worker thread's heap, and freeing it leaves the pages resident: a
server that decoded one large upload kept hundreds of MB for good. Fixing the threshold
at :data:`MMAP_THRESHOLD` makes every buffer that large an ``mmap`` of its own, unmapped
when freed. Small allocations, the vast majority, are unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["MMAP_THRESHOLD", "return_large_buffers_to_os"]

logger = logging.getLogger("mcp_server")

#: Allocations of this many bytes or more get their own mapping (glibc's initial default,
#: which glibc would otherwise raise as large blocks are freed).
MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # from <malloc.h>


def return_large_buffers_to_os(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process.

    Returns:
        True when the setting took effect; False on systems without glibc (macOS,
        musl, Windows), whose allocators need no such setting or offer none.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if not done:
        logger.warning("could not set the allocator's mmap threshold; memory may stay resident")
    return done
