"""How glibc's allocator keeps large blocks, set for the kind of work a process does.

A process that runs the models allocates and frees tensors of the same large sizes at every call. Kept on the
heap for reuse, they cost nothing the next time; mapped afresh each time, every page is faulted in and zeroed by
the kernel again. Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which does the latter: measured
on this machine (bench/allocator.py), an SR3 batch took 0.72 s instead of 0.30 s and an e2diffsr decode tile 2.36 s
instead of 1.33 s, most of the difference kernel time. So model work keeps large blocks on the heap (`for_model_work`).

A process that only streams blocks of the scene (the client of a Dask run: input rows, decoded tiles, output
windows) wants the opposite: with glibc's default, whose mmap threshold grows after each large free, those
blocks come to live on the heap, which stays at its high-water mark, and the client's RAM grows with the scene
although what it holds at any time does not. `for_streaming` keeps large blocks mapped and returned when freed.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MODEL_WORK_MMAP_BYTES = 32 * 1024**2  # glibc's largest: blocks up to 32 MB come from the heap and are reused
MODEL_WORK_TRIM_BYTES = 512 * 1024**2  # free heap kept for the next call before any is given back
STREAMING_BYTES = 64 * 1024  # blocks above 64 KB mapped, and given back when freed


def _mallopt(mmap_threshold: int, trim_threshold: int) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)


def for_model_work() -> None:
    """Large blocks stay on the heap for the next model call (a run in one process, a Dask worker, training)."""
    _mallopt(MODEL_WORK_MMAP_BYTES, MODEL_WORK_TRIM_BYTES)


def for_streaming() -> None:
    """Large blocks go back to the system when freed (the client of a Dask run), so RAM stays flat."""
    _mallopt(STREAMING_BYTES, STREAMING_BYTES)
