"""On-disk caches that make a restart cheap, each one SQLite file:

* :class:`EmbeddingCache` - one file per embedding model, keyed by the
  sentence text's SHA-1, so a restart or an added article embeds only
  sentences it has never seen;
* :class:`SplitCache` - article text -> its sentences, so a restart does not
  run the sentence splitter (pysbd, ~0.5 ms a sentence) over the corpus again.

SQLite gives atomic writes for free; a file that fails its integrity check is
moved aside and rebuilt (a cache loses nothing that cannot be recomputed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class _SqliteCache:
    """A cache file: WAL, a ``meta`` table with one identity value, integrity-checked on open."""

    kind = "cache"
    schema = ""

    def __init__(self, path: Path, identity: tuple[str, str]) -> None:
        self.path = Path(path)
        self.identity = identity  # (meta name, expected value); a mismatch means "not ours": rebuild
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rebuilt = False
        self._conn = self._open()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(self.schema)
            conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            name, value = self.identity
            row = conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES (?, ?)", (name, value))
                conn.commit()
            elif row[0] != value:
                raise sqlite3.DatabaseError(f"{self.kind} holds {name}={row[0]}, expected {value}")
            ok = conn.execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {ok}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("%s %s is unusable (%s); moved to %s and rebuilding", self.kind, self.path, exc, aside.name)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.replace(Path(str(aside) + suffix))
            self.rebuilt = True
            return self._connect()

    def __len__(self) -> int:
        return int(self._conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


class EmbeddingCache(_SqliteCache):
    kind = "embedding cache"
    table = "emb"
    schema = "CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID"

    def __init__(self, folder: Path, model_key: str, dim: int) -> None:
        self.dim = dim
        super().__init__(Path(folder) / f"embeddings-{model_key}.sqlite3", ("dim", str(dim)))

    def fill(self, rows_of: dict[bytes, list[int]], out: np.ndarray) -> set[bytes]:
        """Copy each cached vector straight into ``out[rows]``; returns the keys found.

        No per-vector objects are kept: a 400k-sentence corpus needs only ``out``.
        """
        found: set[bytes] = set()
        if not rows_of:
            return found
        expected = self.dim * 4
        if len(rows_of) > 2000:
            batches = [self._conn.execute("SELECT key, vec FROM emb")]  # one scan beats 2,000-key lookups
        else:
            keys = list(rows_of)
            batches = [
                self._conn.execute(
                    f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                for chunk in (keys[i : i + 500] for i in range(0, len(keys), 500))
            ]
        for rows in batches:
            for key, vec in rows:
                where = rows_of.get(key)
                if where is not None and len(vec) == expected:
                    out[where] = np.frombuffer(vec, dtype=np.float32)
                    found.add(key)
        return found

    def put_many(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        if not items:
            return
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?)",
                [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )



class SplitCache(_SqliteCache):
    """Article text -> sentences. ``version`` names the splitter and its rules: a change starts afresh.

    Lookups go to SQLite one text at a time (cheap: one indexed read per
    article); new results are buffered and written by :meth:`flush`.
    """

    kind = "sentence-split cache"
    table = "split"
    schema = "CREATE TABLE IF NOT EXISTS split (key BLOB PRIMARY KEY, sentences TEXT NOT NULL) WITHOUT ROWID"

    def __init__(self, folder: Path, version: str) -> None:
        super().__init__(Path(folder) / "sentences.sqlite3", ("splitter", version))
        self._pending: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> list[str] | None:
        key = text_key(text)
        with self._lock:
            raw = self._pending.get(key)
            if raw is None:
                row = self._conn.execute("SELECT sentences FROM split WHERE key=?", (key,)).fetchone()
                raw = row[0] if row else None
        if raw is None:
            self.misses += 1
            return None
        try:
            found = json.loads(raw)
        except ValueError:
            self.misses += 1
            return None
        if not isinstance(found, list) or not all(isinstance(x, str) for x in found):
            self.misses += 1
            return None
        self.hits += 1
        return found

    def put(self, text: str, sentences: list[str]) -> None:
        with self._lock:
            self._pending[text_key(text)] = json.dumps(sentences, ensure_ascii=False)

    def flush(self) -> None:
        with self._lock:
            items, self._pending = list(self._pending.items()), {}
            if items:
                with self._conn:
                    self._conn.executemany("INSERT OR REPLACE INTO split VALUES (?, ?)", items)

    def close(self) -> None:
        self.flush()
        super().close()
