"""bot.memory: while texts are embedded, big blocks are mapped on their own (returned to the OS on free)."""

import ctypes

import pytest

from bot import memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _libc():
    if memory._LIBC is None:
        pytest.skip("not glibc, or MALLOC_MMAP_THRESHOLD_ set: scratch_returned does nothing")
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc before 2.33 has no mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _mapped_after_malloc(libc, size: int) -> bool:
    """Whether a malloc of ``size`` bytes got its own mapping (glibc counts those in hblks). The heap's
    free top is trimmed first: the threshold decides only when the heap would have to grow."""
    libc.malloc_trim(0)
    before = libc.mallinfo2().hblks
    p = libc.malloc(size)
    try:
        return libc.mallinfo2().hblks > before
    finally:
        libc.free(p)


def test_a_megabyte_is_mapped_inside_and_comes_from_the_heap_after():
    libc = _libc()
    mib = 1 << 20
    libc.free(libc.malloc(4 * mib))  # glibc raises its threshold past a freed mapped block (or it is HIGH)
    assert not _mapped_after_malloc(libc, mib)  # so, before: a megabyte comes from the heap
    with memory.scratch_returned():
        with memory.scratch_returned():  # nested (two builds embedding at once): still low inside
            assert _mapped_after_malloc(libc, mib)
        assert _mapped_after_malloc(libc, mib), "the inner exit must not raise the threshold for the outer"
    # outside: the high threshold (queries' per-sentence arrays stay in the reused heap)
    assert not _mapped_after_malloc(libc, mib)
    assert _mapped_after_malloc(libc, memory.HIGH + mib)
