"""Memory the build frees goes back to the OS (glibc only; elsewhere these do nothing).

glibc serves a block of 128 KiB or more with its own mmap, returned on free,
but raises that threshold (up to 32 MiB) each time such a block is freed; from
then on the embedder's activations (a few MB a batch) come from the heap and
the heap keeps them. At 20,000 articles, adding 100 raised the RSS by ~130 MB
that way; with the threshold held at 128 KiB while the embedder runs, by ~50 MB
(``benchmarks/scale.py --arrivals``). Held there all the time, it doubled /ask's
latency instead (its per-sentence arrays, 1.6 MB each, were mapped and
faulted in on every question), so it is held low only while texts are being
embedded (:func:`scratch_returned`) and set back to the high value after.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading

LOW = 128 * 1024  # glibc's starting mmap threshold
HIGH = 32 * 1024 * 1024  # where glibc's own raising stops (64-bit)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)

_lock = threading.Lock()
_depth = 0


def _libc():
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:  # the admin chose: leave it alone
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


_LIBC = _libc()


def trim() -> None:
    """Hand the heap's free pages back to the OS now (``malloc_trim``, ~2 ms; no garbage collection): the
    bot calls it once a minute, so that what searches at size freed (tens of MB at 2M sentences, kept by
    the heap below the 64 MB trim threshold :func:`scratch_returned` leaves, or in holes glibc never
    trims) does not stay with an idle process. Not after every search: the next one would fault it all
    back in (~10 ms a question at 100k articles)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def release(collect: bool = True) -> None:
    """Hand freed memory back to the OS (``collect``: run the garbage collector first, ~0.1-0.5 s on a
    large corpus)."""
    if collect:
        gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def scratch_returned():
    """While inside, blocks of 128 KiB or more are mapped and unmapped on their own (returned on free)."""
    global _depth
    if _LIBC is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, LOW)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                # where glibc's own raising would end; trim at twice that, as glibc does
                _LIBC.mallopt(_M_MMAP_THRESHOLD, HIGH)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, 2 * HIGH)
