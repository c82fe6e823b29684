"""bot.memory: while texts are embedded, big blocks are mapped on their own (returned to the OS on free).

Checked in a fresh interpreter: in the test process, earlier tests leave free chunks in the heap that
glibc would reuse for the probe's block whatever the threshold (the threshold only decides when the
heap would have to grow).
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot import memory

PROBE = textwrap.dedent(
    """
    import ctypes
    from bot import memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                   "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        print("SKIP glibc before 2.33 has no mallinfo2"); raise SystemExit
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def mapped(size):
        libc.malloc_trim(0)
        before = libc.mallinfo2().hblks
        p = libc.malloc(size)
        try:
            return libc.mallinfo2().hblks > before
        finally:
            libc.free(p)

    mib = 1 << 20
    libc.free(libc.malloc(4 * mib))  # glibc raises its threshold past a freed mapped block
    seen = [mapped(mib)]  # before: from the heap
    with memory.scratch_returned():
        with memory.scratch_returned():  # nested (two builds embedding at once)
            seen.append(mapped(mib))
        seen.append(mapped(mib))  # the inner exit must not raise it for the outer
    seen.append(mapped(mib))  # after: the heap again (queries' arrays reuse it)
    seen.append(mapped(memory.HIGH + mib))
    print(seen)
    """
)


def test_a_megabyte_is_mapped_inside_and_comes_from_the_heap_after():
    if memory._LIBC is None:
        pytest.skip("not glibc, or MALLOC_MMAP_THRESHOLD_ set: scratch_returned does nothing")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout[5:].strip())
    assert out.stdout.strip() == "[False, True, True, False, True]"


TRIM_PROBE = textwrap.dedent(
    """
    import ctypes
    from bot import memory

    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    with memory.scratch_returned():
        pass  # as in the bot after its first embedding: blocks under 32 MB from the heap, trimmed past 64 MB
    blocks = []
    for _ in range(160):  # 40 MB of 256 KB blocks, each written (resident), as a search's transient arrays
        p = libc.malloc(256 * 1024)
        libc.memset(p, 1, 256 * 1024)
        blocks.append(p)
    pin = libc.malloc(64)  # a small live block above them: the heap's top cannot shrink past it
    for p in blocks:
        libc.free(p)
    kept = rss_kb()
    memory.trim()
    print(kept - rss_kb())
    libc.free(pin)
    """
)


def test_trim_gives_a_searchs_freed_arrays_back():
    """The bot trims once a minute (Precis.retire): without it glibc keeps what searches freed (here 40 MB)."""
    if memory._LIBC is None:
        pytest.skip("not glibc, or MALLOC_MMAP_THRESHOLD_ set: trim does nothing")
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, timeout=60, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert int(out.stdout.strip()) > 30 * 1024  # KB handed back of the 40 MB freed


def test_the_minute_tick_trims(app_factory, monkeypatch):
    import bot.app

    calls = []
    monkeypatch.setattr(bot.app, "trim_memory", lambda: calls.append(1))
    app = app_factory()
    app.retire(batched=True)
    assert calls == [1]
