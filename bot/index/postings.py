"""Append-only storage for the index: dense rows and sparse rows x terms postings.

A corpus that keeps flowing adds a few articles at a time to a large index.
Rebuilding every array for each addition costs work in proportion to the
corpus; these stores make an addition cost what it adds:

* :class:`Rows` - a growable dense buffer (sentence vectors, title vectors,
  per-row numbers). An index version sees its first ``n`` rows; the next
  version writes rows past them, so the version still answering is never
  touched and the rows are held once.
* :class:`Postings` - a sparse rows x terms matrix kept as growable CSR buffers
  (reading a row is a slice). Reading a *column* (every row holding a query
  term, what BM25 needs) wants the transpose: the rows up to the last
  :meth:`Postings.merge` sit in one CSC matrix, the few rows added since are
  scanned from the CSR. A merge runs in the background (scipy's conversion
  releases the GIL) and changes no result, only the speed of column reads.

Both follow the same rule: only the newest version may append in place
(``tip``); appending to an older one copies its rows into a new store first,
so versions never see each other's rows.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

_MIN_CAPACITY = 1024


def _grown(buf: np.ndarray, used: int, need: int) -> np.ndarray:
    """``buf`` if it holds ``need`` rows, else a bigger copy of its first ``used`` rows (10 % headroom)."""
    if buf.shape[0] >= need:
        return buf
    cap = max(_MIN_CAPACITY, need + max(_MIN_CAPACITY, need // 10))
    out = np.empty((cap,) + buf.shape[1:], dtype=buf.dtype)
    out[:used] = buf[:used]
    return out


class Rows:
    """A growable dense array; ``view(n)`` is a version's first n rows (no copy)."""

    def __init__(self, tail_shape: tuple[int, ...] = (), dtype=np.float32, capacity: int = 0) -> None:
        self._buf = np.empty((max(capacity, 0),) + tuple(tail_shape), dtype=dtype)
        self.n = 0  # rows written (by the newest version)
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return int(self._buf.shape[0])

    def append(self, n: int, rows: np.ndarray) -> tuple[Rows, np.ndarray]:
        """Rows after a version's first ``n``: returns (the store, the new version's view)."""
        rows = np.asarray(rows, dtype=self._buf.dtype).reshape((-1,) + self._buf.shape[1:])
        with self._lock:
            store = self if n == self.n else self._fork(n)
            k = rows.shape[0]
            store._buf = _grown(store._buf, n, n + k)
            store._buf[n : n + k] = rows
            store.n = n + k
            return store, store._buf[: n + k]

    def _fork(self, n: int) -> Rows:
        out = Rows(self._buf.shape[1:], self._buf.dtype, capacity=n)
        out._buf[:n] = self._buf[:n]
        out.n = n
        return out

    def view(self, n: int) -> np.ndarray:
        return self._buf[:n]


class Postings:
    """Sparse rows x terms counts, appended a batch of rows at a time (see the module docstring)."""

    DTYPE = np.uint16  # term counts; a sentence never holds a term 65k times (clipped if it did)

    def __init__(self) -> None:
        self._indptr = np.zeros(_MIN_CAPACITY, dtype=np.int32)
        self._indices = np.empty(_MIN_CAPACITY * 8, dtype=np.int32)
        self._data = np.empty(_MIN_CAPACITY * 8, dtype=self.DTYPE)
        self.n = 0  # rows written by the newest version
        self._lock = threading.Lock()
        self._main: tuple[sp.csc_matrix | None, int] = (None, 0)  # (CSC of rows [0, m), m)
        self._merging = False

    # ---------------------------------------------------------------- write
    def append(self, view: PostingsView | None, rows: list[list[int]]) -> PostingsView:
        """A new version: ``view``'s rows followed by ``rows`` (each a list of term ids; a repeated id counts)."""
        n = view.n if view is not None else 0
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lengths.sum()))
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        width = int(flat.max()) + 1 if flat.size else 1
        keys, counts = np.unique(owner * width + flat, return_counts=True)  # sorted: by row, then term
        ids = (keys % width).astype(np.int32)
        vals = np.minimum(counts, 65535).astype(self.DTYPE)
        row_nnz = np.bincount(keys // width, minlength=len(rows)) if keys.size else np.zeros(len(rows), np.int64)
        with self._lock:
            tip = view.store is self and n == self.n if view is not None else self.n == 0
            store = self if tip else self._fork(view)
            nnz0 = int(store._indptr[n])
            nnz1 = nnz0 + int(ids.size)
            if nnz1 >= 2**31:
                raise OverflowError("postings over 2**31 entries; the corpus is far past MAX_ARTICLES")
            store._indptr = _grown(store._indptr, n + 1, n + 1 + len(rows))
            store._indices = _grown(store._indices, nnz0, nnz1)
            store._data = _grown(store._data, nnz0, nnz1)
            store._indices[nnz0:nnz1] = ids
            store._data[nnz0:nnz1] = vals
            store._indptr[n + 1 : n + 1 + len(rows)] = nnz0 + np.cumsum(row_nnz)
            store.n = n + len(rows)
            return PostingsView(store, store.n, store._main)

    def _fork(self, view: PostingsView | None) -> Postings:
        out = Postings()
        if view is None or view.n == 0:
            return out
        n, nnz = view.n, view.nnz
        out._indptr = _grown(out._indptr, 0, n + 1)
        out._indptr[: n + 1] = view.indptr
        out._indices = _grown(out._indices, 0, nnz)
        out._indices[:nnz] = view.indices
        out._data = _grown(out._data, 0, nnz)
        out._data[:nnz] = view.data
        out.n = n
        out._main = view.main  # the CSC covers rows both share
        return out

    # ---------------------------------------------------------------- merge
    def merge(self, view: PostingsView, force: bool = False) -> bool:
        """Build the CSC of all of ``view``'s rows (safe in a background thread; readers go on meanwhile).
        Returns False when another merge was running or (unless ``force``) there was nothing to merge."""
        with self._lock:
            if self._merging or view.store is not self or (self._main[1] >= view.n and not force):
                return False
            self._merging = True
        try:
            csc = view.csr().tocsc()
            with self._lock:
                if self._main[1] <= view.n:
                    self._main = (csc, view.n)
            return True
        finally:
            with self._lock:
                self._merging = False

    def latest_main(self, n: int) -> tuple[sp.csc_matrix | None, int] | None:
        main = self._main
        return main if main[1] <= n else None


class PostingsView:
    """One version's rows of a :class:`Postings` (immutable for its readers)."""

    __slots__ = ("store", "n", "nnz", "indptr", "indices", "data", "main")

    def __init__(self, store: Postings, n: int, main: tuple[sp.csc_matrix | None, int]) -> None:
        self.store = store
        self.n = n
        self.indptr = store._indptr[: n + 1]
        self.nnz = int(self.indptr[n]) if n else 0
        self.indices = store._indices[: self.nnz]
        self.data = store._data[: self.nnz]
        self.main = main

    @staticmethod
    def empty() -> PostingsView:
        return PostingsView(Postings(), 0, (None, 0))

    # ----------------------------------------------------------------- rows
    def row_ids(self, lo: int, hi: int | None = None) -> np.ndarray:
        """Term ids of rows lo..hi-1 (hi defaults to lo + 1), concatenated."""
        hi = lo + 1 if hi is None else hi
        return self.indices[int(self.indptr[lo]) : int(self.indptr[hi])]

    def csr(self, n_cols: int | None = None, rows=None) -> sp.csr_matrix:
        """The rows as a scipy CSR matrix (float32 counts) ``n_cols`` wide (default: the widest id + 1);
        ``rows``: a slice or row indices (default all)."""
        if isinstance(rows, slice) and rows.step in (None, 1):
            lo, hi, _ = rows.indices(self.n)
            hi = max(lo, hi)
            a, b = int(self.indptr[lo]), int(self.indptr[hi])
            idx = self.indices[a:b]
            cols = n_cols if n_cols is not None else (int(idx.max()) + 1 if idx.size else 0)
            ptr = self.indptr[lo : hi + 1] - a
            return sp.csr_matrix((self.data[a:b].astype(np.float32), idx, ptr), shape=(hi - lo, cols))
        cols = n_cols if n_cols is not None else (int(self.indices.max()) + 1 if self.nnz else 0)
        full = sp.csr_matrix((self.data, self.indices, self.indptr), shape=(self.n, cols))
        if rows is None:
            return full
        return full[rows].astype(np.float32)

    # -------------------------------------------------------------- columns
    def _main_now(self) -> tuple[sp.csc_matrix | None, int]:
        newer = self.store.latest_main(self.n)
        return newer if newer is not None and newer[1] > self.main[1] else self.main

    def columns(self, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every entry in the columns ``ids`` (distinct term ids): (rows, position of its id in ``ids``,
        counts as float32)."""
        ids = np.asarray(ids, dtype=np.int64)
        if np.unique(ids).size != ids.size:
            raise ValueError("columns() wants distinct term ids")
        if not ids.size or not self.n:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0, np.float32)
        csc, m = self._main_now()
        rows, which, vals = [], [], []
        if csc is not None:
            width = csc.shape[1]
            for j, t in enumerate(ids.tolist()):
                if 0 <= t < width:
                    a, b = int(csc.indptr[t]), int(csc.indptr[t + 1])
                    if b > a:
                        rows.append(csc.indices[a:b].astype(np.int64))
                        which.append(np.full(b - a, j, dtype=np.int64))
                        vals.append(csc.data[a:b])
        if m < self.n:  # rows since the last merge: scan them
            a = int(self.indptr[m])
            tail = self.indices[a:]
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            pos = np.minimum(np.searchsorted(sorted_ids, tail), len(ids) - 1)
            hit = np.flatnonzero(sorted_ids[pos] == tail)
            if hit.size:
                entry_row = np.repeat(np.arange(m, self.n, dtype=np.int64), np.diff(self.indptr[m:]))
                rows.append(entry_row[hit])
                which.append(order[pos[hit]].astype(np.int64))
                vals.append(self.data[a:][hit])
        if not rows:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0, np.float32)
        return np.concatenate(rows), np.concatenate(which), np.concatenate(vals).astype(np.float32)

    def column_sum(self, ids, binary: bool = False) -> np.ndarray:
        """Per row: the sum of its counts (or of 1 per entry) over the columns ``ids``."""
        rows, _, vals = self.columns(ids)
        if not rows.size:
            return np.zeros(self.n, dtype=np.float32)
        w = None if binary else vals
        return np.bincount(rows, weights=w, minlength=self.n).astype(np.float32)

    def needs_merge(self, min_rows: int = 4096, share: float = 0.05) -> bool:
        m = self._main_now()[1]
        return self.n - m > max(min_rows, int(share * self.n))
