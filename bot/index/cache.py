"""On-disk embedding cache: one SQLite file per embedding model.

Keyed by the sentence text's SHA-1, so a restart or an added article embeds
only sentences it has never seen. SQLite gives atomic writes for free; a file
that fails its integrity check is moved aside and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingCache:
    def __init__(self, folder: Path, model_key: str, dim: int) -> None:
        self.path = Path(folder) / f"embeddings-{model_key}.sqlite3"
        self.dim = dim
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rebuilt = False
        self._conn = self._open()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM meta WHERE name='dim'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('dim', ?)", (str(self.dim),))
            conn.commit()
        elif int(row[0]) != self.dim:
            raise sqlite3.DatabaseError(f"cache holds {row[0]}-d vectors, model gives {self.dim}-d")
        ok = conn.execute("PRAGMA quick_check").fetchone()
        if not ok or ok[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {ok}")
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("embedding cache %s is unusable (%s); moved to %s and rebuilding", self.path, exc, aside.name)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.replace(Path(str(aside) + suffix))
            self.rebuilt = True
            return self._connect()

    def get_many(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """Vectors for the keys that are cached (others are absent from the result)."""
        found: dict[bytes, np.ndarray] = {}
        want = set(keys)
        if not want:
            return found
        expected = self.dim * 4
        if len(want) > 2000:
            rows = self._conn.execute("SELECT key, vec FROM emb")
        else:
            marks = ",".join("?" * len(want))
            rows = self._conn.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", list(want))
        for key, vec in rows:
            if key in want and len(vec) == expected:
                found[key] = np.frombuffer(vec, dtype=np.float32)
        return found

    def put_many(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        if not items:
            return
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?)",
                [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
