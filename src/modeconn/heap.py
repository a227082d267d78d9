"""Keep freed weight-sized memory in the process during training (glibc only).

PyTorch's CPU allocator is plain malloc. glibc hands a freed block of a few MB back to
the operating system (it trims the heap top past twice the largest block freed so far),
so a training step that allocates weight-sized tensors afresh (a path's w(t) and its
gradient: 2.7 MB each for the MLP) can fault all their pages in again, step after step:
a SPRO step of the MLP faulted ~6,000 pages, and simplex training ran 1.13x slower
(benchmarks/held_memory.py). Raising the trim threshold keeps those pages; a fixed mmap
threshold (glibc's largest, 32 MiB) serves such blocks from the heap. The heap then stays
at its peak of blocks under 32 MiB until the process ends.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # glibc's mallopt parameters (malloc.h)
TRIM_THRESHOLD = 1 << 30                         # return the heap top only past 1 GiB free
MMAP_THRESHOLD = 32 << 20                        # the most glibc accepts on 64-bit


@functools.cache
def hold_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks for reuse; False where that is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # no mallopt (macOS, Windows); musl's answers 0: False below
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
