"""The store on both engines (SQLite and PostgreSQL): schema, subscriptions, the claim -> send ->
record protocol, feed leases, shards, fetched articles.

Every test taking ``db`` or ``store`` runs twice: on a SQLite file and on a real PostgreSQL server
(its own schema; see tests/pg_fixtures.py, which skips those with the reason when no server answers).
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from bot.store import Schedule, ScheduleError, Store, StoreError
from bot.store import schema as S
from bot.store.db import SCHEMA_VERSION, redact_url, shard_of
from tests.pg_fixtures import store_target  # noqa: F401 - fixture

T0 = datetime(2025, 3, 1, 7, 0, tzinfo=timezone.utc).timestamp()  # 07:00 UTC


@pytest.fixture
def db(store_target):
    """Where the store lives: a SQLite file path, or a PostgreSQL URL with a schema of its own."""
    return store_target


@pytest.fixture
def sqlite_db(tmp_path):
    return tmp_path / "data" / "precis.sqlite3"


def _execute(store, sql, params=None):
    """Raw SQL on the store's own database (either engine), in its own transaction."""
    with store._tx() as c:
        return c.execute(sa.text(sql), params or {})


@pytest.fixture
def store(db):
    s = Store(db, lease_seconds=60)
    yield s
    s.close()


# ------------------------------------------------------------------ schedules


@pytest.mark.parametrize(
    ("text", "minutes"), [("08:30", 510), ("8:05", 485), ("00:00", 0), ("23:59 UTC", 1439), (" 12:00z ", 720)]
)
def test_daily_schedule_parses(text, minutes):
    s = Schedule.daily(text)
    assert (s.kind, s.minutes) == ("daily", minutes)
    assert Schedule.parse(s.to_text()) == s


@pytest.mark.parametrize("text", ["24:00", "12:60", "noon", "", "12", "1:2:3"])
def test_bad_times_are_refused_with_a_reason(text):
    with pytest.raises(ScheduleError, match="time"):
        Schedule.daily(text)


@pytest.mark.parametrize("minutes", [0, 4, 7 * 24 * 60 + 1])
def test_interval_bounds(minutes):
    with pytest.raises(ScheduleError, match="interval"):
        Schedule.every(minutes)


def test_next_due_daily_and_interval():
    daily = Schedule.daily("08:30")
    assert daily.next_after(T0) == T0 + 90 * 60  # later today
    assert daily.next_after(T0 + 90 * 60) == T0 + 90 * 60 + 86400  # exactly due -> tomorrow
    every = Schedule.every(60)
    assert every.next_after(T0, anchor=T0) == T0 + 3600
    # late ticks do not drift: the slots stay on the anchor's grid
    assert every.next_after(T0 + 3600 + 17, anchor=T0) == T0 + 7200
    assert every.describe() == "every hour" and daily.describe() == "daily at 08:30 UTC"


# ------------------------------------------------------------------ schema


def test_schema_versioned_wal_and_busy_timeout(sqlite_db):
    store = Store(sqlite_db, lease_seconds=60)
    assert store.schema_version == SCHEMA_VERSION and store.schema_revision == "0004"
    con = sqlite3.connect(sqlite_db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"subscriptions", "posts", "articles", "alembic_version"} <= tables
    con.close()
    assert store._raw().execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    store.close()


def test_a_newer_schema_is_refused(sqlite_db):
    store = Store(sqlite_db)
    store._raw().execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(StoreError, match="newer"):
        Store(sqlite_db)


def test_a_newer_alembic_revision_is_refused(db, store):
    _execute(store, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    store.close()
    with pytest.raises(StoreError, match="newer"):
        Store(db)


def test_the_migrated_schema_has_every_column_the_queries_use(db, store):
    """The Alembic revisions and bot/store/schema.py describe the same tables."""
    with store._tx(write=False) as c:
        insp = sa.inspect(c)
        for name in S.TABLES:
            assert {col["name"] for col in insp.get_columns(name)} == set(S.metadata.tables[name].c.keys()), name


def test_the_database_is_described_without_its_password():
    url = "postgresql://precis:s3cret@db.example:5432/precis"
    assert "s3cret" not in redact_url(url) and "db.example:5432/precis" in redact_url(url)


def test_state_survives_reopening(db, store):
    store.register_articles([("a", "A"), ("b", "B")], T0)
    store.subscribe(1, 10, Schedule.daily("08:00"), 99, T0)
    store.close()
    again = Store(db)
    assert again.max_cursor() == 2
    [sub] = again.subscriptions()
    assert (sub.guild_id, sub.channel_id, sub.created_by, sub.last_cursor) == (1, 10, 99, 2)
    again.close()


# ------------------------------------------------------------------ articles and subscriptions


def test_articles_get_a_stable_seq_in_first_seen_order(store):
    assert store.register_articles([("a", "A"), ("b", "B")], T0) == 2
    assert store.register_articles([("b", "B"), ("c", "C"), ("a", "A")], T0) == 1
    assert store.articles_after(0) == [("a", 1), ("b", 2), ("c", 3)]
    assert store.articles_after(2) == [("c", 3)]


def test_subscribe_starts_at_the_watermark_and_resubscribe_keeps_it(store):
    store.register_articles([("a", "A")], T0)
    sub, created = store.subscribe(1, 10, Schedule.daily("08:00"), 5, T0)
    assert created and sub.last_cursor == 1 and sub.next_due == T0 + 3600
    store.register_articles([("b", "B")], T0)
    again, created = store.subscribe(1, 10, Schedule.every(30), 6, T0 + 60)
    assert not created and again.id == sub.id and again.last_cursor == 1
    assert again.schedule == Schedule.every(30) and again.next_due == T0 + 60 + 1800
    with pytest.raises(StoreError, match="another server"):
        store.subscribe(2, 10, Schedule.every(30), 6, T0)


def test_unsubscribe_removes_the_subscription_and_its_posts(store):
    store.register_articles([("a", "A")], T0)
    sub, _ = store.subscribe(1, 10, Schedule.every(5), None, T0)
    store.register_articles([("b", "B")], T0)
    post = store.claim(sub.id, T0 + 300, "me")
    assert post is not None
    assert store.unsubscribe(1, 10) and not store.unsubscribe(1, 10)
    assert store.subscriptions() == [] and store.posts() == []


# ------------------------------------------------------------------ the protocol


def _subscribed(store, every=5):
    store.register_articles([("old", "Old")], T0)
    sub, _ = store.subscribe(1, 10, Schedule.every(every), None, T0)
    return sub


def test_not_due_or_nothing_new_claims_nothing(store):
    sub = _subscribed(store)
    assert store.claim(sub.id, T0 + 10, "me") is None  # not due yet
    assert store.claim(sub.id, T0 + 300, "me") is None  # due, nothing new
    assert store.subscription(sub.id).next_due == T0 + 600  # moved on to the next slot
    assert store.posts() == []


def test_empty_note_is_one_post_per_slot(store):
    sub = _subscribed(store)
    post = store.claim(sub.id, T0 + 300, "me", empty_note=True)
    assert post.kind == "empty" and post.article_ids == () and post.digest_key == f"empty@{int(T0 + 300)}"
    assert store.mark_sent(post.id, 1, T0 + 301)
    assert store.claim(sub.id, T0 + 302, "me", empty_note=True) is None


def test_claim_fixes_what_a_digest_covers_and_record_moves_the_cursor(store):
    sub = _subscribed(store)
    store.register_articles([("n1", "N1"), ("n2", "N2")], T0 + 1)
    post = store.claim(sub.id, T0 + 300, "me")
    assert post.state == "pending" and post.article_ids == ("n1", "n2")
    assert (post.from_cursor, post.to_cursor, post.digest_key) == (1, 3, "2-3")
    assert post.lease_owner == "me" and post.lease_until == T0 + 360 and not post.recovering
    # an article arriving while the post is in flight is left for the next digest
    store.register_articles([("n3", "N3")], T0 + 301)
    assert store.claim(sub.id, T0 + 302, "other") is None  # leased: being sent
    assert store.mark_sent(post.id, 555, T0 + 303)
    assert not store.mark_sent(post.id, 556, T0 + 304)  # recorded once
    sub = store.subscription(sub.id)
    assert sub.last_cursor == 3 and sub.last_post_at == T0 + 303 and sub.next_due == T0 + 600
    assert store.last_sent(sub.id).message_id == 555
    nxt = store.claim(sub.id, T0 + 600, "me")
    assert nxt.article_ids == ("n3",) and nxt.digest_key == "4-4"


def test_an_expired_lease_hands_the_same_post_back_for_recovery(store):
    sub = _subscribed(store)
    store.register_articles([("n1", "N1")], T0 + 1)
    first = store.claim(sub.id, T0 + 300, "crashed")
    store.register_articles([("n2", "N2")], T0 + 301)
    assert [s.id for s in store.due(T0 + 330)] == [sub.id]  # still due: the post is not recorded
    assert store.claim(sub.id, T0 + 330, "me") is None  # lease still running
    again = store.claim(sub.id, T0 + 361, "me")
    assert again.id == first.id and again.nonce == first.nonce and again.article_ids == ("n1",)
    assert again.attempts == 2 and again.recovering and again.lease_owner == "me"
    assert not store.holds_lease(first.id, "crashed", T0 + 362)
    assert store.holds_lease(first.id, "me", T0 + 362)


def test_release_lets_a_failed_post_be_retried_later(store):
    sub = _subscribed(store)
    store.register_articles([("n1", "N1")], T0 + 1)
    post = store.claim(sub.id, T0 + 300, "me")
    store.release(post.id, "me", T0 + 400, "boom")
    assert store.claim(sub.id, T0 + 399, "me") is None
    again = store.claim(sub.id, T0 + 400, "me")
    assert again.id == post.id and again.last_error == "boom"


def test_one_pending_post_per_subscription_and_unique_digest_keys(store):
    sub = _subscribed(store)
    store.register_articles([("n1", "N1")], T0 + 1)
    post = store.claim(sub.id, T0 + 300, "me")
    insert = ("INSERT INTO posts(subscription_id, digest_key, kind, from_cursor, to_cursor, article_ids, state, nonce,"
              " created_at) VALUES (:sid, :key, 'digest', 0, 0, '[]', :state, 'n', 0)")
    with pytest.raises(sa.exc.IntegrityError):
        _execute(store, insert, {"sid": sub.id, "key": "x", "state": "pending"})
    store.mark_sent(post.id, 1, T0 + 301)
    with pytest.raises(sa.exc.IntegrityError):
        _execute(store, insert, {"sid": sub.id, "key": post.digest_key, "state": "sent"})


def test_two_processes_claiming_at_once_get_one_post(db, store):
    sub = _subscribed(store)
    store.register_articles([(f"n{i}", "N") for i in range(5)], T0 + 1)
    stores = [Store(db) for _ in range(4)]
    claims, barrier = [], threading.Barrier(len(stores))

    def go(s, name):
        barrier.wait()
        claims.append(s.claim(sub.id, T0 + 300, name))

    threads = [threading.Thread(target=go, args=(s, f"p{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [c for c in claims if c is not None]
    assert len(got) == 1 and len(store.posts()) == 1
    for s in stores:
        s.close()


def test_articles_registered_while_digests_are_claimed_are_each_covered_once(db):
    """Writers register articles (one per transaction) while a claimer posts digests as fast as it
    can: every article ends up in exactly one post, none skipped. On PostgreSQL this rests on seq
    numbers committing in order (an advisory lock): a cursor must never pass a seq still being written."""
    store = Store(db, lease_seconds=60)
    store.register_articles([("old", "Old")], T0)
    sub, _ = store.subscribe(1, 10, Schedule.every(5), None, T0)
    writers = [Store(db) for _ in range(3)]
    stop = threading.Event()
    written: list[str] = []

    def write(s, w):
        for i in range(60):
            s.register_articles([(f"w{w}-{i}", "T")], T0 + 1)
            written.append(f"w{w}-{i}")

    def claim_loop():
        now = T0 + 300
        while not stop.is_set():
            post = store.claim(sub.id, now, "me")
            if post is not None:
                store.mark_sent(post.id, 1, now)
            store.set_next_due(sub.id, now)
            now += 1
            if not store.is_postgres:  # a breath between ticks: SQLite's lock is not fair, a hot loop starves writers
                stop.wait(0.002)

    claimer = threading.Thread(target=claim_loop)
    claimer.start()
    threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    claimer.join()
    last = store.claim(sub.id, T0 + 10**6, "me")
    if last is not None:
        store.mark_sent(last.id, 1, T0 + 10**6)
    covered = [a for p in store.posts(sub.id) for a in p.article_ids]
    assert len(covered) == len(set(covered))  # none twice
    assert set(covered) == set(written) and len(written) == 180  # none skipped
    for s in writers:
        s.close()
    store.close()
