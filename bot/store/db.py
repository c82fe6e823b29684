"""SQLite state: digest subscriptions, the articles each digest can cover,
what every digest post covered, and the feeds the bot polls (schema v2: their
conditional-request state, failures and back-off, and every feed item ever
seen, so an item is never added twice; v3: each feed's include/exclude filters
and the role a subscription's digests ping; v4: what each digest post showed, per
story, so a later digest tells a continuing story by what is new).

Plain synchronous stdlib ``sqlite3`` (WAL, ``busy_timeout``, schema version
in ``PRAGMA user_version``). One :class:`Store` per process holds one
connection, guarded by a lock so worker threads and the event loop can share
it; several processes may open the same file (writes serialise on
``BEGIN IMMEDIATE``).

Exactly-once digests rest on three rules kept here:

1. **Claim before sending.** :meth:`Store.claim` runs in one write
   transaction: it fixes the articles a digest covers (``seq`` range after the
   subscription's cursor) and inserts a ``pending`` post, unique per
   (subscription, digest key) and at most one pending post per subscription,
   with a lease (owner + expiry) and a nonce.
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
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal

from .schedule import Schedule

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
DEFAULT_LEASE_SECONDS = 120.0

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

    @property
    def filtered(self) -> bool:
        return bool(self.include or self.exclude)

    @property
    def primed(self) -> bool:
        """The first poll succeeded: what arrives from now on is news."""
        return self.last_success is not None

    @property
    def label(self) -> str:
        return self.title or self.url


def _terms(raw: str | None) -> tuple[str, ...]:
    try:
        terms = json.loads(raw or "[]")
    except ValueError:
        return ()
    return tuple(str(t) for t in terms) if isinstance(terms, list) else ()


_FEED_SPECIAL = {"disabled", "include_terms", "exclude_terms"}


def _feed(row: sqlite3.Row) -> Feed:
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


def _sub(row: sqlite3.Row) -> Subscription:
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


def _post(row: sqlite3.Row) -> Post:
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


class Store:
    def __init__(self, path: Path | str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.lease_seconds = float(lease_seconds)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._busy_timeout_ms = int(busy_timeout_ms)
        self.recovered_from: Path | None = None  # where a corrupt file was set aside at start-up
        try:
            self._open()
        except sqlite3.OperationalError as exc:
            self._close_quietly()
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreLocked(f"{self.path} is locked by another process ({exc}); stop the other Precis "
                                  "or wait for it to finish, then start again") from exc
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            if str(path) == ":memory:" or not _is_corrupt(exc):
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            self._recover(str(exc))

    def _open(self) -> None:
        self._conn = sqlite3.connect(
            str(self.path), timeout=self._busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")  # a committed 'sent' survives a crash
        self._conn.execute("PRAGMA foreign_keys = ON")
        if str(self.path) != ":memory:":
            ok = self._conn.execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {ok[0] if ok else 'no answer'}")
        self._migrate()

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

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
        counts = {"subscriptions": 0, "articles": 0, "posts": 0, "feeds": 0, "seen_items": 0, "article_guilds": 0}
        try:
            src = sqlite3.connect(str(aside), isolation_level=None)
        except sqlite3.Error:
            return counts
        src.row_factory = sqlite3.Row
        try:
            for table in ("articles", "subscriptions", "posts", "feeds", "seen_items", "article_guilds"):
                have = _columns(src, table)
                # columns both files have (an older file lacks the newer ones: their defaults apply)
                cols = [r[1] for r in self._conn.execute(f"PRAGMA table_info({table})") if r[1] in have]
                if not cols:
                    continue
                rows = []
                try:
                    for row in src.execute(f"SELECT * FROM {table}"):
                        rows.append(tuple(row[c] if c in row.keys() else None for c in cols))
                except sqlite3.Error as exc:  # read up to the damage
                    log.warning("store: salvaging %s from %s stopped after %d row(s): %s", table, aside.name, len(rows), exc)
                if rows:
                    marks = ",".join("?" * len(cols))
                    with self._tx() as c:
                        before = c.total_changes
                        c.executemany(f"INSERT OR IGNORE INTO {table}({','.join(cols)}) VALUES ({marks})", rows)
                        counts[table] = c.total_changes - before
        finally:
            src.close()
        return counts

    # ---------------------------------------------------------------- basics
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (BEGIN IMMEDIATE): no lost updates between processes."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                raise StoreLocked(
                    f"The digest database is locked by another process ({exc}); try again shortly."
                ) from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._tx() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this Precis ({SCHEMA_VERSION}); upgrade Precis"
                )
            for target, script in enumerate(_MIGRATIONS, 1):  # a new version: append its script there
                if version < target:
                    for stmt in script.split(";"):
                        if stmt.strip():
                            c.execute(stmt)
            if version != SCHEMA_VERSION:
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                log.info("store %s: schema version %d -> %d", self.path, version, SCHEMA_VERSION)

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    # -------------------------------------------------------------- articles
    def register_articles(self, articles: Iterable[tuple[str, str]], now: float | None = None, *,
                          announce: bool = True, guild_id: int | None = None) -> int:
        """Give each new article id the next ``seq`` (in the order given); returns how many were new.
        ``announce=False``: no digest will cover them (a new feed's first poll);
        ``guild_id``: only that guild's digests cover them (None: every guild's)."""
        now = time.time() if now is None else now
        # items are (id, title) or (id, title, guild_id): a per-article guild wins over ``guild_id``
        rows = [(a[0], a[1] or "", now, int(announce), (a[2] if len(a) > 2 else guild_id) or None) for a in articles]
        if not rows:
            return 0
        with self._tx() as c:
            before = c.total_changes
            c.executemany("INSERT OR IGNORE INTO articles(article_id, title, first_seen, announce, guild_id)"
                          " VALUES (?, ?, ?, ?, ?)", rows)
            return c.total_changes - before

    def max_cursor(self) -> int:
        return self._read("SELECT COALESCE(MAX(seq), 0) FROM articles")[0][0]

    # what a guild's digest covers: announced articles, global or that guild's own, or shared with it
    # (another guild brought them first and this guild's feed or link too; 0: a global source too)
    _COVERED = ("announce = 1 AND (guild_id IS NULL OR guild_id = ? OR article_id IN "
                "(SELECT article_id FROM article_guilds WHERE guild_id = ? OR guild_id = 0))")

    def articles_after(self, cursor: int, guild_id: int | None = None) -> list[tuple[str, int]]:
        """Article ids after ``cursor`` (all of them; with ``guild_id``, those its digests cover)."""
        if guild_id is None:
            rows = self._read("SELECT article_id, seq FROM articles WHERE seq > ? ORDER BY seq", (cursor,))
        else:
            rows = self._read(f"SELECT article_id, seq FROM articles WHERE seq > ? AND {self._COVERED} ORDER BY seq",
                              (cursor, guild_id, guild_id))
        return [(r[0], r[1]) for r in rows]

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
        with self._tx() as c:
            row = c.execute("SELECT * FROM subscriptions WHERE channel_id = ?", (channel_id,)).fetchone()
            if row is not None:
                if row["guild_id"] != guild_id:
                    raise StoreError("that channel belongs to another server")
                c.execute(
                    "UPDATE subscriptions SET schedule = ?, created_at = ?, next_due = ?, ping_role_id = ? WHERE id = ?",
                    (schedule.to_text(), now, schedule.next_after(now, now), ping_role_id or None, row["id"]),
                )
                created = False
                sid = row["id"]
            else:
                cursor = c.execute("SELECT COALESCE(MAX(seq), 0) FROM articles").fetchone()[0]
                cur = c.execute(
                    "INSERT INTO subscriptions(guild_id, channel_id, schedule, created_by, created_at, last_cursor, next_due,"
                    " ping_role_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (guild_id, channel_id, schedule.to_text(), created_by, now, cursor, schedule.next_after(now, now),
                     ping_role_id or None),
                )
                created = True
                sid = cur.lastrowid
            sub = _sub(c.execute("SELECT * FROM subscriptions WHERE id = ?", (sid,)).fetchone())
        return sub, created

    def unsubscribe(self, guild_id: int, channel_id: int) -> bool:
        with self._tx() as c:
            cur = c.execute("DELETE FROM subscriptions WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id))
            return cur.rowcount > 0

    def set_next_due(self, subscription_id: int, when: float) -> None:
        """Move a subscription's next digest (e.g. to now: post at the next tick)."""
        with self._tx() as c:
            c.execute("UPDATE subscriptions SET next_due = ? WHERE id = ?", (when, subscription_id))

    def subscription(self, subscription_id: int) -> Subscription | None:
        rows = self._read("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,))
        return _sub(rows[0]) if rows else None

    def subscription_for_channel(self, channel_id: int) -> Subscription | None:
        rows = self._read("SELECT * FROM subscriptions WHERE channel_id = ?", (channel_id,))
        return _sub(rows[0]) if rows else None

    def subscriptions(self, guild_id: int | None = None) -> list[Subscription]:
        if guild_id is None:
            rows = self._read("SELECT * FROM subscriptions ORDER BY id")
        else:
            rows = self._read("SELECT * FROM subscriptions WHERE guild_id = ? ORDER BY id", (guild_id,))
        return [_sub(r) for r in rows]

    def due(self, now: float) -> list[Subscription]:
        """Subscriptions whose time has come, or with a pending post whose lease ran out."""
        rows = self._read(
            "SELECT * FROM subscriptions s WHERE s.next_due <= ? OR EXISTS ("
            " SELECT 1 FROM posts p WHERE p.subscription_id = s.id AND p.state = 'pending' AND p.lease_until <= ?)"
            " ORDER BY s.next_due, s.id",
            (now, now),
        )
        return [_sub(r) for r in rows]

    # ------------------------------------------------------------------ posts
    def claim(self, subscription_id: int, now: float, owner: str, *, empty_note: bool = False) -> Post | None:
        """Claim the next post of a subscription, or None when there is nothing to do.

        * a pending post whose lease ran out comes back unchanged (attempts + 1);
        * a pending post still leased to someone else: None (it is being sent);
        * due, with new articles: a new pending post covering all of them;
        * due, nothing new: None and the next due time moves on (or, with
          ``empty_note``, a pending 'empty' post keyed by the due time).
        """
        with self._tx() as c:
            row = c.execute("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone()
            if row is None:
                return None
            sub = _sub(row)
            pending = c.execute(
                "SELECT * FROM posts WHERE subscription_id = ? AND state = 'pending'", (sub.id,)
            ).fetchone()
            if pending is not None:
                if pending["lease_until"] > now:
                    return None
                c.execute(
                    "UPDATE posts SET attempts = attempts + 1, lease_owner = ?, lease_until = ? WHERE id = ?",
                    (owner, now + self.lease_seconds, pending["id"]),
                )
                return _post(c.execute("SELECT * FROM posts WHERE id = ?", (pending["id"],)).fetchone())
            if sub.next_due > now:
                return None
            new = c.execute(
                f"SELECT article_id, seq FROM articles WHERE seq > ? AND {self._COVERED} ORDER BY seq",
                (sub.last_cursor, sub.guild_id, sub.guild_id),
            ).fetchall()
            if new:
                kind, key = "digest", f"{sub.last_cursor + 1}-{new[-1]['seq']}"
                to_cursor, ids = new[-1]["seq"], [r["article_id"] for r in new]
            elif empty_note:
                kind, key = "empty", f"empty@{int(sub.next_due)}"
                to_cursor, ids = sub.last_cursor, []
            else:
                c.execute(
                    "UPDATE subscriptions SET next_due = ? WHERE id = ?",
                    (sub.schedule.next_after(now, sub.created_at), sub.id),
                )
                return None
            try:
                cur = c.execute(
                    "INSERT INTO posts(subscription_id, digest_key, kind, from_cursor, to_cursor, article_ids, state,"
                    " nonce, attempts, lease_owner, lease_until, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, 1, ?, ?, ?)",
                    (sub.id, key, kind, sub.last_cursor, to_cursor, json.dumps(ids), secrets.token_hex(8), owner,
                     now + self.lease_seconds, now),
                )
            except sqlite3.IntegrityError:
                # The same digest was already posted (its key is unique): never twice.
                log.error("digest %s for subscription %d already exists; not posting it again", key, sub.id)
                return None
            return _post(c.execute("SELECT * FROM posts WHERE id = ?", (cur.lastrowid,)).fetchone())

    def holds_lease(self, post_id: int, owner: str, now: float) -> bool:
        """Renew the lease if ``owner`` still holds it (call just before sending)."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE posts SET lease_until = ? WHERE id = ? AND state = 'pending' AND lease_owner = ? AND lease_until > ?",
                (now + self.lease_seconds, post_id, owner, now),
            )
            return cur.rowcount == 1

    def release(self, post_id: int, owner: str, retry_at: float, error: str | None = None) -> None:
        """Give a pending post back (a failed attempt); it may be claimed again from ``retry_at``."""
        with self._tx() as c:
            c.execute(
                "UPDATE posts SET lease_until = ?, last_error = ? WHERE id = ? AND state = 'pending' AND lease_owner = ?",
                (retry_at, (error or "")[:500] or None, post_id, owner),
            )

    def mark_sent(self, post_id: int, message_id: int | None, now: float, shown: list[dict] | None = None) -> bool:
        """Record a post as sent and move its subscription on, in one transaction.
        ``shown``: what it showed, per story (see :meth:`told_before`).
        Returns False when it was already recorded (or the subscription is gone)."""
        with self._tx() as c:
            row = c.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
            if row is None or row["state"] == "sent":
                return False
            post = _post(row)
            srow = c.execute("SELECT * FROM subscriptions WHERE id = ?", (post.subscription_id,)).fetchone()
            if srow is None:
                return False
            sub = _sub(srow)
            c.execute(
                "UPDATE posts SET state = 'sent', message_id = ?, sent_at = ?, lease_until = 0, last_error = NULL,"
                " shown = ? WHERE id = ?",
                (message_id, now, json.dumps(shown) if shown is not None else None, post_id),
            )
            c.execute(
                "UPDATE subscriptions SET last_cursor = MAX(last_cursor, ?), next_due = ?, last_post_at = ? WHERE id = ?",
                (post.to_cursor, max(sub.next_due, sub.schedule.next_after(now, sub.created_at)), now, sub.id),
            )
            return True

    def post(self, post_id: int) -> Post | None:
        rows = self._read("SELECT * FROM posts WHERE id = ?", (post_id,))
        return _post(rows[0]) if rows else None

    def posts(self, subscription_id: int | None = None, state: str | None = None) -> list[Post]:
        sql, args = "SELECT * FROM posts WHERE 1 = 1", []
        if subscription_id is not None:
            sql += " AND subscription_id = ?"
            args.append(subscription_id)
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        return [_post(r) for r in self._read(sql + " ORDER BY id", tuple(args))]

    def told_before(self, subscription_id: int, before_post_id: int | None = None, *, since: float = 0.0,
                    limit: int = 8) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """The stories the subscription's last ``limit`` sent posts (before ``before_post_id``, sent
        at ``since`` or later) showed, newest post first: (article ids, sentences shown) each."""
        rows = self._read(
            "SELECT shown FROM posts WHERE subscription_id = ? AND state = 'sent' AND shown IS NOT NULL"
            " AND id < ? AND sent_at >= ? ORDER BY id DESC LIMIT ?",
            (subscription_id, before_post_id if before_post_id is not None else 2**62, since, limit),
        )
        out = []
        for r in rows:
            try:
                stories = json.loads(r[0])
                out.extend((tuple(map(str, st.get("articles", ()))), tuple(map(str, st.get("sentences", ()))))
                           for st in stories if isinstance(st, dict))
            except (ValueError, TypeError, AttributeError):
                continue  # a damaged record tells nothing
        return out

    def last_sent(self, subscription_id: int) -> Post | None:
        rows = self._read(
            "SELECT * FROM posts WHERE subscription_id = ? AND state = 'sent' ORDER BY id DESC LIMIT 1", (subscription_id,)
        )
        return _post(rows[0]) if rows else None

    # ------------------------------------------------------------------ feeds
    def add_feed(self, guild_id: int, url: str, added_by: int | None = None, now: float | None = None, *,
                 include: Iterable[str] = (), exclude: Iterable[str] = ()) -> tuple[Feed, bool]:
        """Add a feed to a guild (0: global) with its filters; returns (feed, created). Polled at once.
        An existing feed is returned as it is (its filters unchanged)."""
        now = time.time() if now is None else now
        with self._tx() as c:
            row = c.execute("SELECT * FROM feeds WHERE guild_id = ? AND url = ?", (guild_id, url)).fetchone()
            if row is not None:
                return _feed(row), False
            cur = c.execute("INSERT INTO feeds(guild_id, url, added_by, added_at, next_poll, include_terms, exclude_terms)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (guild_id, url, added_by, now, now, json.dumps(list(include)), json.dumps(list(exclude))))
            return _feed(c.execute("SELECT * FROM feeds WHERE id = ?", (cur.lastrowid,)).fetchone()), True

    def set_feed_filters(self, guild_id: int, feed_id: int, *, include: Iterable[str] | None = None,
                         exclude: Iterable[str] | None = None) -> Feed | None:
        """Change one of a guild's feed's filters (None: leave that one as it is); None when no such feed."""
        with self._tx() as c:
            row = c.execute("SELECT * FROM feeds WHERE id = ? AND guild_id = ?", (feed_id, guild_id)).fetchone()
            if row is None:
                return None
            if include is not None:
                c.execute("UPDATE feeds SET include_terms = ? WHERE id = ?", (json.dumps(list(include)), feed_id))
            if exclude is not None:
                c.execute("UPDATE feeds SET exclude_terms = ? WHERE id = ?", (json.dumps(list(exclude)), feed_id))
            return _feed(c.execute("SELECT * FROM feeds WHERE id = ?", (feed_id,)).fetchone())

    def remove_feed(self, guild_id: int, feed_id: int) -> Feed | None:
        """Remove one of a guild's feeds (its seen items stay seen)."""
        with self._tx() as c:
            row = c.execute("SELECT * FROM feeds WHERE id = ? AND guild_id = ?", (feed_id, guild_id)).fetchone()
            if row is None:
                return None
            c.execute("DELETE FROM feeds WHERE id = ?", (feed_id,))
            return _feed(row)

    def feed(self, feed_id: int) -> Feed | None:
        rows = self._read("SELECT * FROM feeds WHERE id = ?", (feed_id,))
        return _feed(rows[0]) if rows else None

    def feeds(self, guild_id: int | None = None) -> list[Feed]:
        if guild_id is None:
            rows = self._read("SELECT * FROM feeds ORDER BY id")
        else:
            rows = self._read("SELECT * FROM feeds WHERE guild_id = ? ORDER BY id", (guild_id,))
        return [_feed(r) for r in rows]

    def due_feeds(self, now: float) -> list[Feed]:
        return [_feed(r) for r in self._read(
            "SELECT * FROM feeds WHERE disabled = 0 AND next_poll <= ? ORDER BY next_poll, id", (now,))]

    def feed_polled(self, feed_id: int, now: float, *, status: str, next_poll: float, etag: str | None = None,
                    last_modified: str | None = None, title: str | None = None, new_items: int = 0) -> None:
        """Record a successful poll (200 or 304): failures reset, validators kept for the next request."""
        with self._tx() as c:
            c.execute(
                "UPDATE feeds SET polls = polls + 1, last_poll = ?, last_status = ?, last_success = ?, failures = 0,"
                " next_poll = ?, etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified),"
                " title = CASE WHEN ? != '' THEN ? ELSE title END, items = items + ? WHERE id = ?",
                (now, status[:200], now, next_poll, etag, last_modified, title or "", (title or "")[:200], new_items,
                 feed_id),
            )

    def feed_failed(self, feed_id: int, now: float, error: str, *, next_poll: float, disable_after: int) -> Feed | None:
        """Record a failed poll; the feed is disabled once it failed ``disable_after`` times in a row."""
        with self._tx() as c:
            c.execute(
                "UPDATE feeds SET polls = polls + 1, last_poll = ?, last_status = 'error', last_error = ?,"
                " last_error_at = ?, failures = failures + 1, next_poll = ?,"
                " disabled = CASE WHEN failures + 1 >= ? THEN 1 ELSE disabled END WHERE id = ?",
                (now, error[:500], now, next_poll, disable_after, feed_id),
            )
            row = c.execute("SELECT * FROM feeds WHERE id = ?", (feed_id,)).fetchone()
            return _feed(row) if row else None

    def enable_feed(self, feed_id: int, now: float | None = None) -> None:
        with self._tx() as c:
            c.execute("UPDATE feeds SET disabled = 0, failures = 0, next_poll = ? WHERE id = ?",
                      (time.time() if now is None else now, feed_id))

    def seen_items(self, keys: Iterable[str]) -> dict[str, str | None]:
        """Which of these item keys were seen before, and the article each became."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, str | None] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = self._read(f"SELECT item_key, article_id FROM seen_items WHERE item_key IN ({','.join('?' * len(chunk))})",
                              tuple(chunk))
            out.update((r[0], r[1]) for r in rows)
        return out

    def mark_seen(self, keys: Iterable[str], article_id: str | None, feed_id: int | None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        rows = [(k, article_id, feed_id, now) for k in dict.fromkeys(keys)]
        if rows:
            with self._tx() as c:
                c.executemany("INSERT OR IGNORE INTO seen_items(item_key, article_id, feed_id, first_seen) VALUES (?, ?, ?, ?)",
                              rows)

    def shared_articles(self) -> list[tuple[str, int]]:
        """(article id, guild id) for every article a second guild's source also brought (0: a global one)."""
        return [(r[0], r[1]) for r in self._read("SELECT article_id, guild_id FROM article_guilds")]

    def share_article(self, article_id: str, guild_id: int) -> None:
        """Record that a guild's feed also carries an article another source added first."""
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO article_guilds(article_id, guild_id) VALUES (?, ?)", (article_id, guild_id))
