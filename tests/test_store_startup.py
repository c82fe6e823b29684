"""Opening the store: an existing SQLite DATA_DIR from before Alembic is adopted in place, and a
PostgreSQL server that is unreachable at start-up is waited for in the background."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import threading
import time

import pytest

from bot.store import ReconnectingStore, Schedule, Store, StoreUnavailable
from bot.store import db as store_db
from tests.pg_fixtures import pg_url  # noqa: F401 - fixture


def _legacy_v4_file(path):
    """A DATA_DIR database as Precis wrote it before this change: PRAGMA user_version 4, no Alembic."""
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path, isolation_level=None)
    for script in store_db._MIGRATIONS:
        for stmt in script.split(";"):
            if stmt.strip():
                con.execute(stmt)
    con.execute("INSERT INTO articles(article_id, title, first_seen) VALUES ('a', 'A', 1), ('b', 'B', 2), ('c', 'C', 3)")
    con.execute("INSERT INTO subscriptions(guild_id, channel_id, schedule, created_by, created_at, last_cursor, next_due,"
                " ping_role_id) VALUES (7, 70, 'every:5', 1, 1, 2, 5, 99)")
    con.execute("INSERT INTO posts(subscription_id, digest_key, kind, from_cursor, to_cursor, article_ids, state, nonce,"
                " created_at, sent_at, message_id, shown) VALUES (1, '1-2', 'digest', 0, 2, '[\"a\", \"b\"]', 'sent', 'n',"
                " 1, 1, 555, '[]')")
    con.execute("INSERT INTO feeds(guild_id, url, added_at, next_poll, items, etag, include_terms, last_success)"
                " VALUES (7, 'http://a.example/rss', 1, 1, 5, 'W/\"e1\"', '[\"rates\"]', 1)")
    con.execute("INSERT INTO seen_items(item_key, article_id, feed_id, first_seen) VALUES ('guid:x', 'a', 1, 1)")
    con.execute("PRAGMA user_version = 4")
    con.close()


def test_a_v4_data_dir_is_adopted_in_place_and_keeps_subscriptions_cursors_and_feeds(tmp_path):
    path = tmp_path / "data" / "precis.sqlite3"
    _legacy_v4_file(path)
    store = Store(path)
    assert store.schema_version == 4 and store.schema_revision == "0004"  # stamped 0001, upgraded to 0004
    [sub] = store.subscriptions(7)
    assert (sub.channel_id, sub.last_cursor, sub.ping_role_id, sub.schedule) == (70, 2, 99, Schedule.every(5))
    assert store.last_sent(sub.id).message_id == 555 and store.max_cursor() == 3
    [feed] = store.feeds(7)
    assert (feed.url, feed.items, feed.etag, feed.include, feed.primed) == ("http://a.example/rss", 5, 'W/"e1"',
                                                                         ("rates",), True)
    assert store.seen_items(["guid:x", "guid:y"]) == {"guid:x": "a"}
    assert store.feed_lease(feed.id) == (None, 0)  # the new column, with its default
    # and it works as before: the next digest covers what came after the cursor
    post = store.claim(sub.id, 10, "me")
    assert post.article_ids == ("c",) and post.digest_key == "3-3"
    store.close()
    again = Store(path)  # opening it again changes nothing
    assert again.schema_revision == "0004" and again.subscriptions(7)[0].last_cursor == 2
    again.close()


class Forwarder:
    """A TCP port that forwards to the PostgreSQL server once opened (before: connection refused)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer):
        r2, w2 = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, w2), self._pipe(r2, writer))

    def open(self) -> None:
        async def start():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)

    def close(self) -> None:
        async def stop():
            if self.server is not None:
                self.server.close()
            # the open connections' tasks end here, not with the loop (a pending task destroyed with the
            # loop is reported as an unraisable error, which failed this test now and then)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_an_unreachable_database_at_start_up_is_retried_and_said_so(pg_url, caplog):  # noqa: F811
    from sqlalchemy.engine import make_url

    real = make_url(pg_url)
    fwd = Forwarder(real.port or 5432)
    url = pg_url.replace(f":{real.port or 5432}/", f":{fwd.port}/", 1)
    caplog.set_level(logging.INFO, logger="bot.store")
    opened = []
    store = ReconnectingStore(url, retry_every=0.2, on_open=opened.append)
    try:
        assert not store.ready and "unreachable" in store.describe() and str(fwd.port) in store.describe()
        assert any("unreachable at start-up" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)
        with pytest.raises(StoreUnavailable, match="try again shortly"):
            store.subscriptions()
        time.sleep(0.5)  # a few retries fail
        assert store.attempts >= 2 and not store.ready
        fwd.open()  # the server is back
        assert store.wait_ready(15)
        assert opened and store.subscriptions() == []
        store.subscribe(1, 2, Schedule.every(60), None)
        assert [s.channel_id for s in store.subscriptions()] == [2]
        assert any("reachable after" in r.getMessage() for r in caplog.records)
        assert "unreachable" not in store.describe()
    finally:
        store.close()
        fwd.close()
