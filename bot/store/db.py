"""The store: digest subscriptions, the articles each digest can cover, what
every digest post covered, the feeds the bot polls (their conditional-request
state, failures, back-off and poll lease, every feed item ever seen, so an item
is never added twice) and, with PostgreSQL, the text of feed and link articles.

**Two engines, one code path.** ``DATABASE_URL`` unset: a SQLite file in
``DATA_DIR`` (WAL, ``busy_timeout``, every write transaction ``BEGIN
IMMEDIATE``; one connection per :class:`Store`, guarded by a lock so worker
threads and the event loop can share it; several processes may open the same
file). ``postgresql://...``: a PostgreSQL server (a small connection pool;
claims take row locks with ``SELECT ... FOR UPDATE SKIP LOCKED``; article
``seq`` numbers are handed out under an advisory lock so they commit in
order). Queries are SQLAlchemy Core built from :mod:`bot.store.schema`; the
schema's versions are Alembic revisions (``migrations/versions/``).

**Schema versions.** A SQLite file from before Alembic carries its version in
``PRAGMA user_version`` (1-4): it is brought to v4 by the hand-written scripts
below, kept as they were, then *stamped* with Alembic revision ``0001`` (the v4
schema) and upgraded from there like any other database. ``SCHEMA_VERSION``
stays 4: the last ``user_version`` generation (a file above it, or an Alembic
revision this Precis does not know, is refused as newer).

Exactly-once digests rest on three rules kept here, the same on both engines:

1. **Claim before sending.** :meth:`Store.claim` runs in one write
   transaction (holding the subscription's row): it fixes the articles a digest
   covers (``seq`` range after the subscription's cursor) and inserts a
   ``pending`` post, unique per (subscription, digest key) and at most one
   pending post per subscription, with a lease (owner + expiry) and a nonce.
2. **Record after sending, atomically.** :meth:`Store.mark_sent` flips the post
   to ``sent`` with its message id *and* advances the subscription's cursor and
   next due time in the same transaction.
3. **Recover, never re-decide.** A ``pending`` post whose lease ran out (the
   sender crashed, or failed) is handed out again *unchanged* (same articles,
   same nonce), with ``attempts > 1`` telling the caller to look for the
   message it may already have sent before sending it again.

Article ``seq`` numbers are assigned here, in the order the bot first saw each
article id, so the cursor means the same thing after a restart even when the
corpus files load in a different order.

**Shards.** :meth:`Store.set_shards` makes :meth:`Store.due` return only the
subscriptions of this process's Discord shards (``(guild_id >> 22) %
shard_count``), plus any subscription whose pending post's lease ran out (its
process died mid-post): whichever process claims that first recovers it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping

import sqlalchemy as sa
from sqlalchemy import event, exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from . import schema as S
from .schedule import Schedule

log = logging.getLogger(__name__)
# Alembic logs each step at INFO ("setup plugin ...", "Context impl ..."): noise in the console and the
# bot's log; the store logs the revision it moved to itself.
logging.getLogger("alembic").setLevel(logging.WARNING)

SCHEMA_VERSION = 4  # the last PRAGMA user_version generation; later changes are Alembic revisions
DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_FEED_LEASE_SECONDS = 600.0
PAGE_DAYS = 7.0  # a kept feed-item page (feed_pages) is given to later followers for this long
HOST_IDLE_DAYS = 1.0  # a host's turn (feed_hosts) nobody asked for this long is forgotten
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ARTICLE_LOCK = 0x50524543  # PostgreSQL advisory lock key: article seq numbers, handed out in commit order
_MIGRATE_LOCK = 0x50524544  # PostgreSQL advisory lock key: one process migrates at a time

# The SQLite schema before Alembic, one script per PRAGMA user_version (kept to adopt old files).
_SCHEMA_V1 = """
CREATE TABLE articles (
    seq         INTEGER PRIMARY KEY,  -- never deleted, so never reused
    article_id  TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL DEFAULT '',
    first_seen  REAL NOT NULL
);
CREATE TABLE subscriptions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id     INTEGER NOT NULL,
    channel_id   INTEGER NOT NULL UNIQUE,
    schedule     TEXT NOT NULL,
    created_by   INTEGER,
    created_at   REAL NOT NULL,
    last_cursor  INTEGER NOT NULL DEFAULT 0,
    next_due     REAL NOT NULL,
    last_post_at REAL
);
CREATE INDEX subscriptions_due ON subscriptions(next_due);
CREATE TABLE posts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    digest_key      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('digest', 'empty')),
    from_cursor     INTEGER NOT NULL,
    to_cursor       INTEGER NOT NULL,
    article_ids     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent')),
    nonce           TEXT NOT NULL,
    message_id      INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 1,
    lease_owner     TEXT,
    lease_until     REAL NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    sent_at         REAL,
    UNIQUE (subscription_id, digest_key)
);
CREATE UNIQUE INDEX posts_one_pending ON posts(subscription_id) WHERE state = 'pending';
"""

# v2: feeds. An article registered with announce = 0 (a new feed's first poll)
# is in the corpus but no digest announces it; guild_id NULL = global, else
# only that guild's digests cover it (the guild scoping of queries builds on it).
_SCHEMA_V2 = """
ALTER TABLE articles ADD COLUMN announce INTEGER NOT NULL DEFAULT 1;
ALTER TABLE articles ADD COLUMN guild_id INTEGER;
CREATE TABLE feeds (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id      INTEGER NOT NULL,  -- 0: a global feed (the FEEDS setting, the console, the CLI)
    url           TEXT NOT NULL,
    title         TEXT NOT NULL DEFAULT '',
    added_by      INTEGER,
    added_at      REAL NOT NULL,
    etag          TEXT,
    last_modified TEXT,
    polls         INTEGER NOT NULL DEFAULT 0,
    last_poll     REAL,
    last_status   TEXT,
    last_success  REAL,
    last_error    TEXT,
    last_error_at REAL,
    failures      INTEGER NOT NULL DEFAULT 0,
    next_poll     REAL NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    items         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (guild_id, url)
);
CREATE TABLE seen_items (
    item_key   TEXT PRIMARY KEY,  -- 'guid:...', 'link:<normalised url>' or 'td:<hash of title + date>'
    article_id TEXT,
    feed_id    INTEGER,
    first_seen REAL NOT NULL
);
CREATE TABLE article_guilds (
    article_id TEXT NOT NULL,
    guild_id   INTEGER NOT NULL,
    PRIMARY KEY (article_id, guild_id)
);
"""
# v3: per-feed filters (JSON lists of lower-cased words/phrases; '[]': none) and the role a
# subscription's digests ping (NULL: none, the digest mentions no one).
_SCHEMA_V3 = """
ALTER TABLE feeds ADD COLUMN include_terms TEXT NOT NULL DEFAULT '[]';
ALTER TABLE feeds ADD COLUMN exclude_terms TEXT NOT NULL DEFAULT '[]';
ALTER TABLE subscriptions ADD COLUMN ping_role_id INTEGER;
"""
# v4: what a sent digest showed, per story: JSON [{"articles": [ids], "sentences": [texts]}, ...]
# (NULL: posted before v4, or an empty note; such a post tells later digests nothing).
_SCHEMA_V4 = """
ALTER TABLE posts ADD COLUMN shown TEXT;
"""
_MIGRATIONS = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4)  # the script that brings a file to version i + 1
assert len(_MIGRATIONS) == SCHEMA_VERSION
GLOBAL_GUILD = 0


class StoreError(RuntimeError):
    pass


class StoreLocked(StoreError):
    """Another process held the database's write lock for longer than ``busy_timeout``."""


class StoreUnavailable(StoreError):
    """The database server cannot be reached (PostgreSQL: down, restarting, or the network)."""


def _records(rows) -> list[tuple[int, dict]]:
    """(seq, record) of fetched-article rows; a damaged record is skipped (logged)."""
    out = []
    for r in rows:
        try:
            out.append((r["seq"], json.loads(r["record"])))
        except ValueError:
            log.warning("store: fetched article %s has a damaged record; skipped", r["seq"])
    return out


def _first_line(exc: object) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns of ``table`` in a (possibly damaged) file; empty when unreadable or absent."""
    try:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    except sqlite3.Error:
        return set()


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, sqlite3.OperationalError):  # locked, busy, cannot open: not the file's fault
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text \
        or text.startswith("integrity check failed")


@dataclass(frozen=True)
class Subscription:
    id: int
    guild_id: int
    channel_id: int
    schedule: Schedule
    created_by: int | None
    created_at: float
    last_cursor: int
    next_due: float
    last_post_at: float | None
    ping_role_id: int | None = None  # the role each digest mentions (None: no one)


@dataclass(frozen=True)
class Feed:
    id: int
    guild_id: int  # 0: global
    url: str
    title: str
    added_by: int | None
    added_at: float
    etag: str | None
    last_modified: str | None
    polls: int
    last_poll: float | None
    last_status: str | None
    last_success: float | None
    last_error: str | None
    last_error_at: float | None
    failures: int
    next_poll: float
    disabled: bool
    items: int
    include: tuple[str, ...] = ()  # an item passes when it has one of these (or none are set) ...
    exclude: tuple[str, ...] = ()  # ... and none of these (lower-cased words or phrases)
    primed_at: float | None = None  # when this server's copy got the feed's items the first time

    @property
    def filtered(self) -> bool:
        return bool(self.include or self.exclude)

    @property
    def primed(self) -> bool:
        """This server's copy got the feed's items once (not announced): what arrives from now on is news."""
        return self.primed_at is not None

    @property
    def label(self) -> str:
        return self.title or self.url


def _terms(raw: str | None) -> tuple[str, ...]:
    try:
        terms = json.loads(raw or "[]")
    except ValueError:
        return ()
    return tuple(str(t) for t in terms) if isinstance(terms, list) else ()


_FEED_SPECIAL = {"disabled", "include_terms", "exclude_terms", "lease_owner", "lease_until"}


def url_host(url: str) -> str:
    """The URL's host, lower-cased ('' when it has none): the unit of per-host scheduling."""
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _feed_select():
    """A feed subscription with its URL's state (``feeds`` joined with ``feed_urls``), as :class:`Feed`
    reads it: per server the id, guild, filters, item count, status line and ``primed_at``; per URL the
    title, validators, polls, last success, errors, back-off and disabled."""
    f, u = S.feeds, S.feed_urls
    return sa.select(
        f.c.id, f.c.guild_id, f.c.url, u.c.title, f.c.added_by, f.c.added_at, u.c.etag, u.c.last_modified,
        u.c.polls, u.c.last_poll, f.c.last_status, u.c.last_success, u.c.last_error, u.c.last_error_at,
        u.c.failures, u.c.next_poll, u.c.disabled, f.c["items"], f.c.include_terms, f.c.exclude_terms,
        f.c.primed_at,
    ).select_from(f.join(u, u.c.url == f.c.url))


def _feed(row: Mapping[str, Any]) -> Feed:
    keys = row.keys()
    return Feed(**{k: row[k] for k in keys if k not in _FEED_SPECIAL}, disabled=bool(row["disabled"]),
                include=_terms(row["include_terms"]) if "include_terms" in keys else (),
                exclude=_terms(row["exclude_terms"]) if "exclude_terms" in keys else ())


@dataclass(frozen=True)
class Post:
    id: int
    subscription_id: int
    digest_key: str
    kind: Literal["digest", "empty"]
    from_cursor: int
    to_cursor: int
    article_ids: tuple[str, ...]
    state: Literal["pending", "sent"]
    nonce: str
    message_id: int | None
    attempts: int
    lease_owner: str | None
    lease_until: float
    last_error: str | None
    created_at: float
    sent_at: float | None

    @property
    def recovering(self) -> bool:
        """An earlier attempt may already have posted it: look before sending."""
        return self.attempts > 1


def _sub(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        schedule=Schedule.parse(row["schedule"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_cursor=row["last_cursor"],
        next_due=row["next_due"],
        last_post_at=row["last_post_at"],
        ping_role_id=row["ping_role_id"] if "ping_role_id" in row.keys() else None,
    )


def _post(row: Mapping[str, Any]) -> Post:
    return Post(
        id=row["id"],
        subscription_id=row["subscription_id"],
        digest_key=row["digest_key"],
        kind=row["kind"],
        from_cursor=row["from_cursor"],
        to_cursor=row["to_cursor"],
        article_ids=tuple(json.loads(row["article_ids"])),
        state=row["state"],
        nonce=row["nonce"],
        message_id=row["message_id"],
        attempts=row["attempts"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        sent_at=row["sent_at"],
    )


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """A database URL fit for a log line or /about: the password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0]
    if sep and netloc.count("@") > 1:  # an unescaped '@' in the password: hide all up to the last '@'
        user = netloc.rpartition("@")[0].split(":", 1)[0]
        return f"{scheme}://{user}:***@{netloc.rpartition('@')[2]}" + rest[len(netloc):].split("?", 1)[0]
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: show only the scheme
        return url.split(":", 1)[0] + "://..."


def _pg_url(url: str) -> sa.engine.URL:
    u = sa.engine.make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's rule: a guild lives on shard ``(guild_id >> 22) % shard_count``."""
    return (int(guild_id) >> 22) % max(1, int(shard_count))


_heads: dict[str, tuple[str, frozenset[str]]] = {}


def _alembic_config(conn: Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def _alembic_heads() -> tuple[str, frozenset[str]]:
    """(the head revision, every known revision), read once per process."""
    if "heads" not in _heads:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        script = ScriptDirectory.from_config(cfg)
        _heads["heads"] = (script.get_current_head(), frozenset(r.revision for r in script.walk_revisions()))
    return _heads["heads"]


class Store:
    def __init__(self, target: Path | str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, busy_timeout_ms: int = 5000,
                 feed_lease_seconds: float = DEFAULT_FEED_LEASE_SECONDS, pool_size: int = 5) -> None:
        """``target``: a SQLite file path (or ``":memory:"``), or a ``postgresql://`` URL."""
        self.lease_seconds = float(lease_seconds)
        self.feed_lease_seconds = float(feed_lease_seconds)
        self._lock = threading.RLock()
        self._busy_timeout_ms = int(busy_timeout_ms)
        self.recovered_from: Path | None = None  # where a corrupt file was set aside at start-up
        self._shards: tuple[frozenset[int], int] | None = None
        self._sa: Connection | None = None
        self._begin = "BEGIN"
        if is_postgres_url(target):
            self.url = str(target)
            self.path = None
            self.engine_name = "postgresql"
            self._engine = sa.create_engine(_pg_url(self.url), pool_size=pool_size, max_overflow=10,
                                            pool_pre_ping=True, connect_args={"connect_timeout": 5})
            try:
                with self._tx() as c:
                    c.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATE_LOCK)))
                    self._migrate_alembic(c)
            except BaseException:
                self._engine.dispose()
                raise
            return
        self.engine_name = "sqlite"
        self.path = Path(target)
        self.url = None
        if str(target) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except StoreError:
            self._close_quietly()
            raise
        except sqlite3.OperationalError as exc:
            self._close_quietly()
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreLocked(f"{self.path} is locked by another process ({exc}); stop the other Precis "
                                  "or wait for it to finish, then start again") from exc
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            if str(target) == ":memory:" or not _is_corrupt(exc):
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            self._recover(str(exc))

    # ---------------------------------------------------------------- engines
    @property
    def is_postgres(self) -> bool:
        return self.engine_name == "postgresql"

    def describe(self) -> str:
        """Which database, for /about and the log (never the password)."""
        return f"PostgreSQL {redact_url(self.url)}" if self.is_postgres else f"SQLite {self.path}"

    def _open(self) -> None:
        """SQLite: one connection, our own BEGIN (IMMEDIATE for writes), then the schema."""
        self._engine = sa.create_engine(
            f"sqlite+pysqlite:///{self.path}", poolclass=sa.pool.StaticPool,
            connect_args={"timeout": self._busy_timeout_ms / 1000, "check_same_thread": False},
        )

        @event.listens_for(self._engine, "connect")
        def _connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # pysqlite must not begin on its own: we do (below)
            dbapi_conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            dbapi_conn.execute("PRAGMA journal_mode = WAL")
            dbapi_conn.execute("PRAGMA synchronous = FULL")  # a committed 'sent' survives a crash
            dbapi_conn.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(self._engine, "begin")
        def _begin(conn) -> None:
            conn.exec_driver_sql(self._begin)

        try:
            self._sa = self._engine.connect()
        except sa_exc.DBAPIError as exc:
            raise exc.orig from None
        if str(self.path) != ":memory:":
            ok = self._raw().execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {ok[0] if ok else 'no answer'}")
        try:
            self._migrate()
        except sa_exc.DBAPIError as exc:
            raise exc.orig from None

    def _raw(self) -> sqlite3.Connection:
        """The SQLite DBAPI connection (PRAGMAs, salvage, tests); autocommit mode."""
        return self._sa.connection.dbapi_connection  # type: ignore[union-attr]

    def _close_quietly(self) -> None:
        try:
            if self._sa is not None:
                self._sa.close()
            engine = getattr(self, "_engine", None)
            if engine is not None:
                engine.dispose()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
        self._sa = None

    def _recover(self, reason: str) -> None:
        """The file is corrupt: keep it aside for recovery, start a new one, copy over what still reads."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                p.replace(Path(str(aside) + suffix))
        self.recovered_from = aside
        self._open()
        counts = self._salvage(aside)
        log.error(
            "store %s is corrupt (%s): moved it to %s and started a new one; salvaged %s. "
            "Keep %s to recover anything else by hand.",
            self.path, reason, aside.name,
            ", ".join(f"{n} {table}" for table, n in counts.items()), aside,
        )

    def _salvage(self, aside: Path) -> dict[str, int]:
        counts = {"subscriptions": 0, "articles": 0, "posts": 0, "feeds": 0, "feed_urls": 0, "seen_items": 0,
                  "article_guilds": 0}
        try:
            src = sqlite3.connect(str(aside), isolation_level=None)
        except sqlite3.Error:
            return counts
        src.row_factory = sqlite3.Row
        try:
            for table in ("articles", "subscriptions", "posts", "feeds", "feed_urls", "seen_items", "article_guilds"):
                have = _columns(src, table)
                # columns both files have (an older file lacks the newer ones: their defaults apply)
                cols = [c.name for c in S.metadata.tables[table].columns if c.name in have]
                if not cols:
                    continue
                rows = []
                try:
                    for row in src.execute(f"SELECT * FROM {table}"):
                        rows.append({c: (row[c] if c in row.keys() else None) for c in cols})
                except sqlite3.Error as exc:  # read up to the damage
                    log.warning("store: salvaging %s from %s stopped after %d row(s): %s", table, aside.name, len(rows), exc)
                if rows:
                    with self._tx() as c:
                        got = c.execute(self._insert_ignore(S.metadata.tables[table]), rows)
                        counts[table] = max(0, got.rowcount)
        finally:
            src.close()
        with self._tx() as c:  # a feed salvaged without its URL's row (a file from before 0003): add it
            self._adopt_feed_urls(c)
        return counts

    # ---------------------------------------------------------------- basics
    def close(self) -> None:
        with self._lock:
            if self._sa is not None:
                self._sa.close()
                self._sa = None
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        """One transaction. SQLite: ``BEGIN IMMEDIATE`` for a write (no lost updates between processes),
        a plain BEGIN for a read. PostgreSQL: a pooled connection, READ COMMITTED; the statements
        take the row locks they need."""
        if self.is_postgres:
            try:
                with self._engine.begin() as c:
                    yield c
            except sa_exc.OperationalError as exc:
                raise StoreUnavailable(f"the database {redact_url(self.url)} is unreachable ({_first_line(exc.orig)})") from exc
            return
        with self._lock:
            if self._sa is None:
                raise StoreError(f"{self.path} is closed")
            self._begin = "BEGIN IMMEDIATE" if write else "BEGIN"
            try:
                tx = self._sa.begin()
            except sa_exc.OperationalError as exc:
                text = str(exc.orig)
                if "locked" not in text and "busy" not in text:
                    raise
                raise StoreLocked(
                    f"The digest database is locked by another process ({text}); try again shortly."
                ) from exc
            try:
                yield self._sa
            except BaseException:
                tx.rollback()
                raise
            else:
                tx.commit()

    def _read(self, stmt, args: Mapping[str, Any] | None = None) -> list:
        with self._tx(write=False) as c:
            return list(c.execute(stmt, args or {}).mappings().all())

    def _insert_ignore(self, table: sa.Table):
        """INSERT ... ON CONFLICT DO NOTHING, in the engine's own dialect."""
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()

    def _lock_articles(self, c: Connection) -> None:
        """PostgreSQL: article seq numbers are taken one transaction at a time, so they commit in
        order and a cursor never skips one still being written. (SQLite writes are serial anyway.)"""
        if self.is_postgres:
            c.execute(sa.select(sa.func.pg_advisory_xact_lock(_ARTICLE_LOCK)))

    # ---------------------------------------------------------------- schema
    def _migrate(self) -> None:
        """SQLite: the legacy user_version scripts up to v4, then Alembic."""
        with self._tx() as c:
            raw = self._raw()
            version = raw.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this Precis ({SCHEMA_VERSION}); upgrade Precis"
                )
            tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "alembic_version" not in tables and version > 0:
                for target, script in enumerate(_MIGRATIONS, 1):  # a file from before Alembic: bring it to v4
                    if version < target:
                        for stmt in script.split(";"):
                            if stmt.strip():
                                raw.execute(stmt)
                from alembic import command

                command.stamp(_alembic_config(c), "0001")
                log.info("store %s: schema version %d -> %d, adopted by Alembic (revision 0001)",
                         self.path, version, SCHEMA_VERSION)
            self._migrate_alembic(c)
            if version != SCHEMA_VERSION:
                raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _migrate_alembic(self, c: Connection) -> None:
        from alembic.runtime.migration import MigrationContext

        head, known = _alembic_heads()
        current = MigrationContext.configure(c).get_current_revision()
        if current == head:
            return
        if current is not None and current not in known:
            raise StoreError(f"{self.describe()} has schema revision {current}, newer than this Precis "
                             f"(which knows up to {head}); upgrade Precis")
        from alembic import command

        command.upgrade(_alembic_config(c), "head")
        log.info("store %s: schema revision %s -> %s", self.describe(), current or "none (new)", head)

    @property
    def schema_version(self) -> int:
        """The legacy generation: 4 once the schema is at (or past) v4."""
        if self.is_postgres:
            return SCHEMA_VERSION
        with self._lock:
            return self._raw().execute("PRAGMA user_version").fetchone()[0]

    @property
    def schema_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._tx(write=False) as c:
            return MigrationContext.configure(c).get_current_revision()

    # -------------------------------------------------------------- articles
    def register_articles(self, articles: Iterable[tuple[str, str]], now: float | None = None, *,
                          announce: bool = True, guild_id: int | None = None) -> int:
        """Give each new article id the next ``seq`` (in the order given); returns how many were new.
        ``announce=False``: no digest will cover them (a new feed's first poll);
        ``guild_id``: only that guild's digests cover them (None: every guild's)."""
        now = time.time() if now is None else now
        # items are (id, title) or (id, title, guild_id): a per-article guild wins over ``guild_id``
        rows: dict[str, dict] = {}
        for a in articles:
            if a[0] not in rows:
                rows[a[0]] = {"article_id": a[0], "title": a[1] or "", "first_seen": now, "announce": int(announce),
                              "guild_id": (a[2] if len(a) > 2 else guild_id) or None}
        if not rows:
            return 0
        new = 0
        with self._tx() as c:
            self._lock_articles(c)
            items = list(rows.values())
            for i in range(0, len(items), 1000):
                chunk = items[i : i + 1000]
                have = {r[0] for r in c.execute(sa.select(S.articles.c.article_id).where(
                    S.articles.c.article_id.in_([r["article_id"] for r in chunk])))}
                fresh = [r for r in chunk if r["article_id"] not in have]
                if fresh:  # executemany inserts in the order given: seq numbers follow it
                    c.execute(sa.insert(S.articles), fresh)
                new += len(fresh)
        return new

    def max_cursor(self) -> int:
        return self._read(sa.select(sa.func.coalesce(sa.func.max(S.articles.c.seq), 0).label("m")))[0]["m"]

    @staticmethod
    def _covered(guild_id: int):
        """What a guild's digest covers: announced articles, global or that guild's own, or shared with it
        (another guild brought them first and this guild's feed or link too; 0: a global source too)."""
        a, g = S.articles, S.article_guilds
        shared = sa.select(g.c.article_id).where(sa.or_(g.c.guild_id == guild_id, g.c.guild_id == 0))
        return sa.and_(a.c.announce == 1,
                       sa.or_(a.c.guild_id.is_(None), a.c.guild_id == guild_id, a.c.article_id.in_(shared)))

    def articles_after(self, cursor: int, guild_id: int | None = None) -> list[tuple[str, int]]:
        """Article ids after ``cursor`` (all of them; with ``guild_id``, those its digests cover)."""
        a = S.articles
        q = sa.select(a.c.article_id, a.c.seq).where(a.c.seq > cursor)
        if guild_id is not None:
            q = q.where(self._covered(guild_id))
        return [(r["article_id"], r["seq"]) for r in self._read(q.order_by(a.c.seq))]

    def count_after(self, cursor: int, guild_id: int | None = None) -> int:
        return len(self.articles_after(cursor, guild_id))

    # --------------------------------------------------------- subscriptions
    def subscribe(
        self, guild_id: int, channel_id: int, schedule: Schedule, created_by: int | None, now: float | None = None,
        *, ping_role_id: int | None = None,
    ) -> tuple[Subscription, bool]:
        """Subscribe a channel (or change its schedule and ping role). Returns (subscription, created).
        ``ping_role_id``: the role each digest mentions (None: no one; subscribing again sets it anew).

        A new subscription starts at the current article watermark: its first
        digest covers what arrives after it was made."""
        now = time.time() if now is None else now
        s = S.subscriptions
        with self._tx() as c:
            row = c.execute(sa.select(s).where(s.c.channel_id == channel_id).with_for_update()).mappings().first()
            if row is not None:
                if row["guild_id"] != guild_id:
                    raise StoreError("that channel belongs to another server")
                c.execute(s.update().where(s.c.id == row["id"]).values(
                    schedule=schedule.to_text(), created_at=now, next_due=schedule.next_after(now, now),
                    ping_role_id=ping_role_id or None))
                created, sid = False, row["id"]
            else:
                cursor = c.execute(sa.select(sa.func.coalesce(sa.func.max(S.articles.c.seq), 0))).scalar_one()
                try:
                    with c.begin_nested():
                        sid = c.execute(s.insert().values(
                            guild_id=guild_id, channel_id=channel_id, schedule=schedule.to_text(), created_by=created_by,
                            created_at=now, last_cursor=cursor, next_due=schedule.next_after(now, now),
                            ping_role_id=ping_role_id or None)).inserted_primary_key[0]
                except sa_exc.IntegrityError:
                    raise StoreError("that channel was subscribed at the same moment by another request; "
                                     "try again") from None
                created = True
            sub = _sub(c.execute(sa.select(s).where(s.c.id == sid)).mappings().one())
        return sub, created

    def unsubscribe(self, guild_id: int, channel_id: int) -> bool:
        s = S.subscriptions
        with self._tx() as c:
            ids = [r[0] for r in c.execute(sa.select(s.c.id).where(s.c.guild_id == guild_id, s.c.channel_id == channel_id))]
            if not ids:
                return False
            c.execute(S.posts.delete().where(S.posts.c.subscription_id.in_(ids)))
            c.execute(s.delete().where(s.c.id.in_(ids)))
            return True

    def set_next_due(self, subscription_id: int, when: float) -> None:
        """Move a subscription's next digest (e.g. to now: post at the next tick)."""
        with self._tx() as c:
            c.execute(S.subscriptions.update().where(S.subscriptions.c.id == subscription_id).values(next_due=when))

    def subscription(self, subscription_id: int) -> Subscription | None:
        rows = self._read(sa.select(S.subscriptions).where(S.subscriptions.c.id == subscription_id))
        return _sub(rows[0]) if rows else None

    def subscription_for_channel(self, channel_id: int) -> Subscription | None:
        rows = self._read(sa.select(S.subscriptions).where(S.subscriptions.c.channel_id == channel_id))
        return _sub(rows[0]) if rows else None

    def subscriptions(self, guild_id: int | None = None) -> list[Subscription]:
        s = S.subscriptions
        q = sa.select(s)
        if guild_id is not None:
            q = q.where(s.c.guild_id == guild_id)
        return [_sub(r) for r in self._read(q.order_by(s.c.id))]

    # ------------------------------------------------------------------ shards
    def set_shards(self, shard_ids: Iterable[int] | None, shard_count: int = 1) -> None:
        """Serve only these Discord shards' guilds in :meth:`due` (None: every guild)."""
        ids = None if shard_ids is None else frozenset(int(i) for i in shard_ids)
        self._shards = None if ids is None or int(shard_count) <= 1 and ids >= {0} else (ids, int(shard_count))

    @property
    def shards(self) -> tuple[frozenset[int], int] | None:
        return self._shards

    def serves(self, guild_id: int) -> bool:
        if self._shards is None:
            return True
        ids, count = self._shards
        return shard_of(guild_id, count) in ids

    def due(self, now: float) -> list[Subscription]:
        """Subscriptions whose time has come, or with a pending post whose lease ran out.

        With shards (:meth:`set_shards`): those of this process's shards; of other shards only the
        orphans — a pending post whose lease ran out (its process died mid-post) or a digest overdue
        by more than a lease (no process serves that shard now). Whichever process claims one first
        posts it; the claim makes that exactly once."""
        s, p = S.subscriptions, S.posts
        expired = sa.exists().where(p.c.subscription_id == s.c.id, p.c.state == "pending", p.c.lease_until <= now)
        rows = self._read(sa.select(s, expired.label("expired")).where(sa.or_(s.c.next_due <= now, expired))
                          .order_by(s.c.next_due, s.c.id))
        out = []
        for r in rows:
            sub = _sub(r)
            if not (self.serves(sub.guild_id) or r["expired"] or sub.next_due <= now - self.lease_seconds):
                continue
            out.append(sub)
        return out

    # ------------------------------------------------------------------ posts
    def claim(self, subscription_id: int, now: float, owner: str, *, empty_note: bool = False) -> Post | None:
        """Claim the next post of a subscription, or None when there is nothing to do.

        * a pending post whose lease ran out comes back unchanged (attempts + 1);
        * a pending post still leased to someone else: None (it is being sent);
        * due, with new articles: a new pending post covering all of them;
        * due, nothing new: None and the next due time moves on (or, with
          ``empty_note``, a pending 'empty' post keyed by the due time);
        * another process is claiming it this moment (PostgreSQL: its row is locked): None.
        """
        s, p, a = S.subscriptions, S.posts, S.articles
        with self._tx() as c:
            row = c.execute(sa.select(s).where(s.c.id == subscription_id).with_for_update(skip_locked=True)
                            ).mappings().first()
            if row is None:
                return None
            sub = _sub(row)
            pending = c.execute(sa.select(p).where(p.c.subscription_id == sub.id, p.c.state == "pending")
                                ).mappings().first()
            if pending is not None:
                if pending["lease_until"] > now:
                    return None
                c.execute(p.update().where(p.c.id == pending["id"]).values(
                    attempts=p.c.attempts + 1, lease_owner=owner, lease_until=now + self.lease_seconds))
                return _post(c.execute(sa.select(p).where(p.c.id == pending["id"])).mappings().one())
            if sub.next_due > now:
                return None
            new = c.execute(sa.select(a.c.article_id, a.c.seq).where(a.c.seq > sub.last_cursor, self._covered(sub.guild_id))
                            .order_by(a.c.seq)).mappings().all()
            if new:
                kind, key = "digest", f"{sub.last_cursor + 1}-{new[-1]['seq']}"
                to_cursor, ids = new[-1]["seq"], [r["article_id"] for r in new]
            elif empty_note:
                kind, key = "empty", f"empty@{int(sub.next_due)}"
                to_cursor, ids = sub.last_cursor, []
            else:
                c.execute(s.update().where(s.c.id == sub.id).values(next_due=sub.schedule.next_after(now, sub.created_at)))
                return None
            try:
                with c.begin_nested():
                    pid = c.execute(p.insert().values(
                        subscription_id=sub.id, digest_key=key, kind=kind, from_cursor=sub.last_cursor, to_cursor=to_cursor,
                        article_ids=json.dumps(ids), state="pending", nonce=secrets.token_hex(8), attempts=1,
                        lease_owner=owner, lease_until=now + self.lease_seconds, created_at=now)).inserted_primary_key[0]
            except sa_exc.IntegrityError:
                # The same digest was already posted (its key is unique): never twice.
                log.error("digest %s for subscription %d already exists; not posting it again", key, sub.id)
                return None
            return _post(c.execute(sa.select(p).where(p.c.id == pid)).mappings().one())

    def holds_lease(self, post_id: int, owner: str, now: float) -> bool:
        """Renew the lease if ``owner`` still holds it (call just before sending)."""
        p = S.posts
        with self._tx() as c:
            cur = c.execute(p.update().where(p.c.id == post_id, p.c.state == "pending", p.c.lease_owner == owner,
                                             p.c.lease_until > now).values(lease_until=now + self.lease_seconds))
            return cur.rowcount == 1

    def release(self, post_id: int, owner: str, retry_at: float, error: str | None = None) -> None:
        """Give a pending post back (a failed attempt); it may be claimed again from ``retry_at``."""
        p = S.posts
        with self._tx() as c:
            c.execute(p.update().where(p.c.id == post_id, p.c.state == "pending", p.c.lease_owner == owner)
                      .values(lease_until=retry_at, last_error=(error or "")[:500] or None))

    def mark_sent(self, post_id: int, message_id: int | None, now: float, shown: list[dict] | None = None) -> bool:
        """Record a post as sent and move its subscription on, in one transaction.
        ``shown``: what it showed, per story (see :meth:`told_before`).
        Returns False when it was already recorded (or the subscription is gone)."""
        s, p = S.subscriptions, S.posts
        with self._tx() as c:
            row = c.execute(sa.select(p).where(p.c.id == post_id).with_for_update()).mappings().first()
            if row is None or row["state"] == "sent":
                return False
            post = _post(row)
            srow = c.execute(sa.select(s).where(s.c.id == post.subscription_id).with_for_update()).mappings().first()
            if srow is None:
                return False
            sub = _sub(srow)
            c.execute(p.update().where(p.c.id == post_id).values(
                state="sent", message_id=message_id, sent_at=now, lease_until=0, last_error=None,
                shown=json.dumps(shown) if shown is not None else None))
            c.execute(s.update().where(s.c.id == sub.id).values(
                last_cursor=max(sub.last_cursor, post.to_cursor),
                next_due=max(sub.next_due, sub.schedule.next_after(now, sub.created_at)), last_post_at=now))
            return True

    def post(self, post_id: int) -> Post | None:
        rows = self._read(sa.select(S.posts).where(S.posts.c.id == post_id))
        return _post(rows[0]) if rows else None

    def posts(self, subscription_id: int | None = None, state: str | None = None) -> list[Post]:
        p = S.posts
        q = sa.select(p)
        if subscription_id is not None:
            q = q.where(p.c.subscription_id == subscription_id)
        if state is not None:
            q = q.where(p.c.state == state)
        return [_post(r) for r in self._read(q.order_by(p.c.id))]

    def told_before(self, subscription_id: int, before_post_id: int | None = None, *, since: float = 0.0,
                    limit: int = 8) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """The stories the subscription's last ``limit`` sent posts (before ``before_post_id``, sent
        at ``since`` or later) showed, newest post first: (article ids, sentences shown) each."""
        p = S.posts
        rows = self._read(sa.select(p.c.shown).where(
            p.c.subscription_id == subscription_id, p.c.state == "sent", p.c.shown.is_not(None),
            p.c.id < (before_post_id if before_post_id is not None else 2**62), p.c.sent_at >= since,
        ).order_by(p.c.id.desc()).limit(limit))
        out = []
        for r in rows:
            try:
                stories = json.loads(r["shown"])
                out.extend((tuple(map(str, st.get("articles", ()))), tuple(map(str, st.get("sentences", ()))))
                           for st in stories if isinstance(st, dict))
            except (ValueError, TypeError, AttributeError):
                continue  # a damaged record tells nothing
        return out

    def last_sent(self, subscription_id: int) -> Post | None:
        p = S.posts
        rows = self._read(sa.select(p).where(p.c.subscription_id == subscription_id, p.c.state == "sent")
                          .order_by(p.c.id.desc()).limit(1))
        return _post(rows[0]) if rows else None

    # ------------------------------------------------------------------ feeds
    def _adopt_feed_urls(self, c: Connection) -> None:
        """Give every subscribed URL its ``feed_urls`` row (due at once) where it has none."""
        f, u = S.feeds, S.feed_urls
        missing = [r[0] for r in c.execute(sa.select(f.c.url).distinct().where(
            ~sa.exists().where(u.c.url == f.c.url)))]
        if missing:
            c.execute(self._insert_ignore(u), [{"url": url, "host": url_host(url), "next_poll": 0} for url in missing])

    def add_feed(self, guild_id: int, url: str, added_by: int | None = None, now: float | None = None, *,
                 include: Iterable[str] = (), exclude: Iterable[str] = ()) -> tuple[Feed, bool]:
        """Add a feed to a guild (0: global) with its filters; returns (feed, created). An existing feed is
        returned as it is (its filters unchanged). A URL no one followed yet (or no one follows any
        more) is due at once; one that other servers follow keeps its schedule and state (see
        :meth:`bot.sources.service.Sources.add_feed` for how the new server gets its items)."""
        now = time.time() if now is None else now
        f, u = S.feeds, S.feed_urls
        with self._tx() as c:
            c.execute(self._insert_ignore(u).values(url=url, host=url_host(url), next_poll=now))
            ins = self._insert_ignore(f).values(guild_id=guild_id, url=url, added_by=added_by, added_at=now, next_poll=now,
                                                include_terms=json.dumps(list(include)),
                                                exclude_terms=json.dumps(list(exclude)))
            created = c.execute(ins.returning(f.c.id)).first() is not None  # (rowcount is -1 on psycopg)
            if created:
                others = c.execute(sa.select(sa.func.count()).select_from(f).where(
                    f.c.url == url, f.c.guild_id != guild_id)).scalar()
                if not others:  # no other server follows it: poll it now
                    c.execute(u.update().where(u.c.url == url, u.c.next_poll > now).values(next_poll=now))
                # a URL disabled after its failures: a server adding it asks to try it again (as a new
                # per-server row did before the URL's state was shared)
                c.execute(u.update().where(u.c.url == url, u.c.disabled != 0).values(disabled=0, failures=0,
                                                                                    next_poll=now))
            row = c.execute(_feed_select().where(f.c.guild_id == guild_id, f.c.url == url)).mappings().one()
            return _feed(row), created

    def set_feed_filters(self, guild_id: int, feed_id: int, *, include: Iterable[str] | None = None,
                         exclude: Iterable[str] | None = None) -> Feed | None:
        """Change one of a guild's feed's filters (None: leave that one as it is); None when no such feed."""
        f = S.feeds
        with self._tx() as c:
            values = {}
            if include is not None:
                values["include_terms"] = json.dumps(list(include))
            if exclude is not None:
                values["exclude_terms"] = json.dumps(list(exclude))
            if values:
                c.execute(f.update().where(f.c.id == feed_id, f.c.guild_id == guild_id).values(**values))
            row = c.execute(_feed_select().where(f.c.id == feed_id, f.c.guild_id == guild_id)).mappings().first()
            return _feed(row) if row is not None else None

    def remove_feed(self, guild_id: int, feed_id: int) -> Feed | None:
        """Remove one of a guild's feeds (its seen items stay seen). Other servers' copies of the URL stay;
        the URL's own row stays too (a URL no one follows is never leased)."""
        f = S.feeds
        with self._tx() as c:
            row = c.execute(_feed_select().where(f.c.id == feed_id, f.c.guild_id == guild_id)).mappings().first()
            if row is None:
                return None
            c.execute(f.delete().where(f.c.id == feed_id, f.c.guild_id == guild_id))
            return _feed(row)

    def feed(self, feed_id: int) -> Feed | None:
        rows = self._read(_feed_select().where(S.feeds.c.id == feed_id))
        return _feed(rows[0]) if rows else None

    def feeds(self, guild_id: int | None = None, url: str | None = None) -> list[Feed]:
        f = S.feeds
        q = _feed_select()
        if guild_id is not None:
            q = q.where(f.c.guild_id == guild_id)
        if url is not None:
            q = q.where(f.c.url == url)
        return [_feed(r) for r in self._read(q.order_by(f.c.id))]

    def due_feeds(self, now: float) -> list[Feed]:
        """The subscriptions whose URL is due (enabled, next poll passed)."""
        u = S.feed_urls
        return [_feed(r) for r in self._read(_feed_select().where(u.c.disabled == 0, u.c.next_poll <= now)
                                             .order_by(u.c.next_poll, S.feeds.c.id))]

    def lease_feeds(self, now: float, owner: str, limit: int = 100, feed_ids: Iterable[int] | None = None,
                    per_host: int | None = None) -> list[Feed]:
        """Take the poll lease of due URLs no other process holds, most overdue first (at most ``limit``
        URLs, at most ``per_host`` of them on one host; or only the URLs of these ``feed_ids``, due or
        not): each URL is fetched by one process at a time, once for every server that follows it.
        Returns every subscription (``feeds`` row) of the URLs leased. The lease ends when the poll is
        recorded (:meth:`url_polled`, :meth:`url_failed`, :meth:`release_feed`) or runs out
        (``feed_lease_seconds``: the process died)."""
        f, u = S.feeds, S.feed_urls
        with self._tx() as c:
            if feed_ids is not None:  # these (the holder may renew its own lease)
                q = sa.select(u.c.url, u.c.host).where(
                    u.c.url.in_(sa.select(f.c.url).where(f.c.id.in_(list(feed_ids)))),
                    sa.or_(u.c.lease_until <= now, u.c.lease_owner == owner))
                want = None
            else:  # due, enabled, followed, and no one's (a URL this process holds is being polled already)
                q = sa.select(u.c.url, u.c.host).where(u.c.disabled == 0, u.c.next_poll <= now, u.c.lease_until <= now,
                                                       sa.exists().where(f.c.url == u.c.url))
                want = limit
            q = q.order_by(u.c.next_poll, u.c.url).limit(limit * 4 if per_host else limit)
            rows = c.execute(q.with_for_update(skip_locked=True, of=u)).all()
            urls, hosts = [], {}
            for url, host in rows:  # the candidates are locked; those not taken are let go at commit
                if per_host and hosts.get(host, 0) >= per_host:
                    continue
                hosts[host] = hosts.get(host, 0) + 1
                urls.append(url)
                if want is not None and len(urls) >= want:
                    break
            if not urls:
                return []
            c.execute(u.update().where(u.c.url.in_(urls)).values(lease_owner=owner,
                                                                 lease_until=now + self.feed_lease_seconds))
            return [_feed(r) for r in c.execute(_feed_select().where(f.c.url.in_(urls))
                                                .order_by(u.c.next_poll, u.c.url, f.c.id)).mappings()]

    def release_feed(self, feed_id: int, owner: str) -> None:
        """Give back the poll lease of this feed's URL, if ``owner`` holds it."""
        f, u = S.feeds, S.feed_urls
        with self._tx() as c:
            c.execute(u.update().where(u.c.url.in_(sa.select(f.c.url).where(f.c.id == feed_id)), u.c.lease_owner == owner)
                      .values(lease_owner=None, lease_until=0))

    def release_url(self, url: str, owner: str) -> None:
        u = S.feed_urls
        with self._tx() as c:
            c.execute(u.update().where(u.c.url == url, u.c.lease_owner == owner).values(lease_owner=None, lease_until=0))

    def feed_lease(self, feed_id: int) -> tuple[str | None, float]:
        """(holder, until) of the poll lease of this feed's URL."""
        f, u = S.feeds, S.feed_urls
        rows = self._read(sa.select(u.c.lease_owner, u.c.lease_until).select_from(f.join(u, u.c.url == f.c.url))
                          .where(f.c.id == feed_id))
        return (rows[0]["lease_owner"], rows[0]["lease_until"]) if rows else (None, 0.0)

    def feed_cache(self, url: str) -> tuple[str | None, float | None]:
        """(the items the URL's last full read gave, as JSON; when) — (None, None) when none are kept."""
        u = S.feed_urls
        rows = self._read(sa.select(u.c.items_json, u.c.items_at).where(u.c.url == url))
        return (rows[0]["items_json"], rows[0]["items_at"]) if rows else (None, None)

    def url_polled(self, url: str, now: float, *, status: str, next_poll: float | None,
                   delivered: Mapping[int, tuple[str, int]] | None = None, etag: str | None = None,
                   last_modified: str | None = None, title: str | None = None, items_json: str | None = None,
                   fetched: bool = True) -> None:
        """Record a poll of a URL in one transaction. ``fetched`` (a 200 or a 304): failures reset, the
        validators kept for the next request (None: dropped, the next request reads the feed in full),
        ``items_json`` (when given) kept for servers that follow the URL later. ``delivered``: for each
        subscription (feed id) the items were given to, (its status line, how many reached it): its item
        count grows, it is primed. The lease ends either way."""
        f, u = S.feeds, S.feed_urls
        values: dict[str, Any] = dict(lease_owner=None, lease_until=0)
        if fetched:
            values.update(polls=u.c.polls + 1, last_poll=now, last_status=status[:200], last_success=now, failures=0,
                          etag=etag, last_modified=last_modified)
            if next_poll is not None:
                values["next_poll"] = next_poll
            if title:
                values["title"] = title[:200]
            if items_json is not None:
                values.update(items_json=items_json, items_at=now)
        with self._tx() as c:
            c.execute(u.update().where(u.c.url == url).values(**values))
            for fid, (line, added) in (delivered or {}).items():
                c.execute(f.update().where(f.c.id == fid, f.c.url == url).values(
                    last_status=line[:200], items=f.c["items"] + int(added),
                    primed_at=sa.func.coalesce(f.c.primed_at, now)))

    def feed_polled(self, feed_id: int, now: float, *, status: str, next_poll: float, etag: str | None = None,
                    last_modified: str | None = None, title: str | None = None, new_items: int = 0) -> None:
        """Record a successful poll (200 or 304) of this feed's URL, delivered to this feed alone
        (:meth:`url_polled`). Validators not given stay as they were."""
        feed = self.feed(feed_id)
        if feed is None:
            return
        self.url_polled(feed.url, now, status=status, next_poll=next_poll, delivered={feed_id: (status, new_items)},
                        etag=etag if etag is not None else feed.etag,
                        last_modified=last_modified if last_modified is not None else feed.last_modified, title=title)

    def url_failed(self, url: str, now: float, error: str, *, next_poll: float, disable_after: int) -> None:
        """Record a failed poll of a URL (every server's copy shows it); the URL is disabled once it failed
        ``disable_after`` times in a row. The lease ends."""
        f, u = S.feeds, S.feed_urls
        with self._tx() as c:
            c.execute(u.update().where(u.c.url == url).values(
                polls=u.c.polls + 1, last_poll=now, last_status="error", last_error=error[:500], last_error_at=now,
                failures=u.c.failures + 1, next_poll=next_poll, lease_owner=None, lease_until=0,
                disabled=sa.case((u.c.failures + 1 >= disable_after, 1), else_=u.c.disabled)))
            c.execute(f.update().where(f.c.url == url).values(last_status="error"))

    def feed_failed(self, feed_id: int, now: float, error: str, *, next_poll: float, disable_after: int) -> Feed | None:
        """Record a failed poll of this feed's URL (:meth:`url_failed`); the feed as it is now."""
        feed = self.feed(feed_id)
        if feed is None:
            return None
        self.url_failed(feed.url, now, error, next_poll=next_poll, disable_after=disable_after)
        return self.feed(feed_id)

    def enable_feed(self, feed_id: int, now: float | None = None) -> None:
        """Enable this feed's URL again (for every server that follows it), due at once."""
        f, u = S.feeds, S.feed_urls
        with self._tx() as c:
            c.execute(u.update().where(u.c.url.in_(sa.select(f.c.url).where(f.c.id == feed_id))).values(
                disabled=0, failures=0, next_poll=time.time() if now is None else now))

    def seen_items(self, keys: Iterable[str]) -> dict[str, str | None]:
        """Which of these item keys were seen before, and the article each became."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, str | None] = {}
        t = S.seen_items
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = self._read(sa.select(t.c.item_key, t.c.article_id).where(t.c.item_key.in_(chunk)))
            out.update((r["item_key"], r["article_id"]) for r in rows)
        return out

    def mark_seen(self, keys: Iterable[str], article_id: str | None, feed_id: int | None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        rows = [{"item_key": k, "article_id": article_id, "feed_id": feed_id, "first_seen": now} for k in dict.fromkeys(keys)]
        if rows:
            with self._tx() as c:
                c.execute(self._insert_ignore(S.seen_items), rows)

    def kept_pages(self, keys: Iterable[str], now: float | None = None) -> dict[str, tuple[str, dict]]:
        """The pages kept for these item keys (:meth:`keep_pages`): key -> (the page's URL, its extraction).
        Only pages read in the last :data:`PAGE_DAYS`: an older one may still be stored (the prunes run
        now and then) but is not handed out."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, tuple[str, dict]] = {}
        t = S.feed_pages
        since = (time.time() if now is None else now) - PAGE_DAYS * 86400.0
        for i in range(0, len(keys), 500):
            for r in self._read(sa.select(t.c.item_key, t.c.url, t.c.record)
                                .where(t.c.item_key.in_(keys[i : i + 500]), t.c.read_at >= since)):
                try:
                    out[r["item_key"]] = (r["url"], json.loads(r["record"]))
                except ValueError:
                    log.warning("store: the kept page of %s is damaged; it will be read again", r["item_key"])
        return out

    def keep_pages(self, pages: Mapping[str, tuple[str, dict]], now: float | None = None) -> None:
        """Keep the pages read for feed items that became no article (their filters kept them out of every
        server that follows the feed): key -> (URL, extraction). A server that follows the feed later is
        given them instead of another request. Pages older than :data:`PAGE_DAYS` are dropped."""
        now = time.time() if now is None else now
        t = S.feed_pages
        rows = [{"item_key": k, "url": u, "record": json.dumps(rec), "read_at": now} for k, (u, rec) in sorted(pages.items())]
        with self._tx() as c:
            if rows:
                c.execute(self._insert_ignore(t), rows)
            c.execute(t.delete().where(t.c.read_at < now - PAGE_DAYS * 86400.0))

    def drop_pages(self, keys: Iterable[str]) -> None:
        """Forget the kept pages of these item keys (they became articles)."""
        keys = list(dict.fromkeys(keys))
        if keys:
            with self._tx() as c:
                c.execute(S.feed_pages.delete().where(S.feed_pages.c.item_key.in_(keys)))

    # ------------------------------------------------------------ host turns
    def _db_now(self):
        """The database's clock in Unix seconds (PostgreSQL); SQLite: this machine's."""
        if self.is_postgres:
            return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), S.Time)
        return sa.literal(time.time(), S.Time)

    def claim_host(self, host: str, holder: str, hold: float) -> float | None:
        """Take ``host``'s turn for one request (every process on this database asks here first):
        None when taken, ``holder``'s until :meth:`free_host` or, should it die, ``hold`` seconds;
        else how long to wait before asking again: the rest of the pause after the last request, or
        0.0 while another holder's request is in flight (its end is not known). One statement
        (an upsert that updates only a free row), so two processes cannot both take it."""
        t = S.feed_hosts
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        with self._tx() as c:
            now = self._db_now()
            ins = insert(t).values(host=host, holder=holder, free_at=now + float(hold))
            ins = ins.on_conflict_do_update(index_elements=[t.c.host], where=t.c.free_at <= now,
                                            set_={"holder": ins.excluded.holder, "free_at": ins.excluded.free_at})
            if c.execute(ins.returning(t.c.host)).first() is not None:
                return None
            row = c.execute(sa.select(t.c.holder, t.c.free_at - now).where(t.c.host == host)).first()
        if row is None or row[0] is not None:
            return 0.0
        return max(0.0, float(row[1]))

    def free_host(self, host: str, holder: str, pause: float) -> None:
        """End ``holder``'s turn on ``host``: the next request, from any process, after ``pause`` seconds."""
        t = S.feed_hosts
        with self._tx() as c:
            c.execute(t.update().where(t.c.host == host, t.c.holder == holder)
                      .values(holder=None, free_at=self._db_now() + float(pause)))

    def prune_feed_state(self, now: float | None = None) -> tuple[int, int]:
        """Drop what the feeds keep only for a while (the feed tick calls it now and then): pages kept
        longer than :data:`PAGE_DAYS` (:meth:`keep_pages` drops them too, but only when it keeps one) and
        the hosts whose turn nobody took for :data:`HOST_IDLE_DAYS` (each pasted link's host has a row; few
        are asked again): a row whose ``free_at`` is that far past is free, any hold on it ran out long
        ago, and the next claim makes it again. Returns (pages, hosts) dropped."""
        now = time.time() if now is None else now
        p, h = S.feed_pages, S.feed_hosts
        with self._tx() as c:
            pages = c.execute(p.delete().where(p.c.read_at < now - PAGE_DAYS * 86400.0)).rowcount
            hosts = c.execute(h.delete().where(h.c.free_at < self._db_now() - HOST_IDLE_DAYS * 86400.0)).rowcount
        return max(pages, 0), max(hosts, 0)

    def shared_articles(self) -> list[tuple[str, int]]:
        """(article id, guild id) for every article a second guild's source also brought (0: a global one)."""
        g = S.article_guilds
        return [(r["article_id"], r["guild_id"]) for r in self._read(sa.select(g.c.article_id, g.c.guild_id))]

    def share_article(self, article_id: str, guild_id: int) -> None:
        """Record that a guild's feed also carries an article another source added first."""
        self.share_articles([(article_id, guild_id)])

    def share_articles(self, pairs: Iterable[tuple[str, int]]) -> int:
        """:meth:`share_article` for many (article, guild) pairs in one transaction (a feed item that
        hundreds of servers follow); returns how many were new."""
        # sorted: two processes writing overlapping pairs take their row locks in the same order (no deadlock)
        rows = [{"article_id": a, "guild_id": g} for a, g in sorted(dict.fromkeys(pairs))]
        if not rows:
            return 0
        with self._tx() as c:
            t = S.article_guilds
            added = len(c.execute(self._insert_ignore(t).returning(t.c.article_id), rows).all())  # (rowcount: -1 on psycopg)
            if added and self.is_postgres:  # listeners (bot/store/listen.py) read the new shares at once
                c.execute(sa.select(sa.func.pg_notify("precis_articles", "share")))
        return added

    # -------------------------------------------------------- fetched articles
    def add_fetched(self, records: Iterable[dict], now: float | None = None) -> int:
        """Keep feed and link articles (their JSON records, as the fetched file holds them) where every
        process can load them; returns how many were new. PostgreSQL tells listeners at once."""
        now = time.time() if now is None else now
        rows = [{"article_id": str(r["id"]), "guild_id": r.get("guild_id") or None, "record": json.dumps(r),
                 "arrived": float(r.get("arrived") or now)} for r in records]
        if not rows:
            return 0
        with self._tx() as c:
            self._lock_articles(c)  # seq in commit order: a reader's "after N" never skips one
            t = S.fetched_articles
            got = len(c.execute(self._insert_ignore(t).returning(t.c.seq), rows).all())  # (rowcount: -1 on psycopg)
            if self.is_postgres:
                c.execute(sa.select(sa.func.pg_notify("precis_articles", "")))
        return max(0, got)

    def fetched_seq_keeping(self, n: int) -> int:
        """The ``seq`` after which the newest ``n`` fetched articles are (0: there are at most ``n``)."""
        t = S.fetched_articles
        rows = self._read(sa.select(t.c.seq).order_by(t.c.seq.desc()).offset(int(n)).limit(1))
        return int(rows[0]["seq"]) if rows else 0

    def fetched_keys(self, upto: int) -> list[tuple[int, str]]:
        """(seq, article id) of the fetched articles kept up to ``seq`` ``upto``, oldest first."""
        t = S.fetched_articles
        rows = self._read(sa.select(t.c.seq, t.c.article_id).where(t.c.seq <= upto).order_by(t.c.seq))
        return [(int(r["seq"]), str(r["article_id"])) for r in rows]

    def fetched_records(self, seqs: Iterable[int]) -> list[tuple[int, dict]]:
        """(seq, record) of these fetched articles, oldest first (a damaged record is skipped)."""
        t = S.fetched_articles
        return _records(self._read(sa.select(t.c.seq, t.c.record).where(t.c.seq.in_([int(x) for x in seqs]))
                                   .order_by(t.c.seq)))

    def fetched_after(self, seq: int, limit: int = 1000) -> list[tuple[int, dict]]:
        """(seq, record) of the feed and link articles kept after ``seq``, oldest first."""
        t = S.fetched_articles
        return _records(self._read(sa.select(t.c.seq, t.c.record).where(t.c.seq > seq).order_by(t.c.seq).limit(limit)))
