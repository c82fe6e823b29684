"""Feeds past one process: each feed polled by one process at a time (a lease in the store), and
feed articles reaching every process (with PostgreSQL they live in the store), each guild's its own.

Against a real PostgreSQL (tests/pg_fixtures.py); the lease rules also on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.sources.service import Sources
from bot.store import Store
from tests.fakes.web import WebServer, rss
from tests.pg_fixtures import pg_url, store_target  # noqa: F401 - fixtures
from tests.test_sources import feed_items, fetcher

REPO = Path(__file__).resolve().parent.parent
GUILD_A, GUILD_B = 11 << 22, 12 << 22
T0 = 1_740_812_400.0


@pytest.fixture
def target(store_target):
    return store_target


@pytest.fixture
async def site():
    async with WebServer() as server:
        yield server


def test_a_feed_lease_has_one_holder_until_the_poll_is_recorded_or_it_runs_out(target):
    a, b = Store(target, feed_lease_seconds=60), Store(target, feed_lease_seconds=60)
    feed, _ = a.add_feed(GUILD_A, "http://feeds.example/a.xml", now=T0)
    [got] = a.lease_feeds(T0, "p1")
    assert got.id == feed.id and a.feed_lease(feed.id) == ("p1", T0 + 60)
    assert b.lease_feeds(T0 + 1, "p2") == []  # held by p1
    assert b.lease_feeds(T0 + 1, "p2", feed_ids=[feed.id]) == []  # asked for by id too
    assert a.lease_feeds(T0 + 2, "p1") == []  # not listed again while it polls it ...
    assert [f.id for f in a.lease_feeds(T0 + 2, "p1", feed_ids=[feed.id])] == [feed.id]  # ... but may renew it
    a.feed_polled(feed.id, T0 + 3, status="ok", next_poll=T0 + 900)
    assert a.feed_lease(feed.id) == (None, 0)
    assert b.lease_feeds(T0 + 4, "p2") == []  # released, but not due until T0 + 900
    [again] = b.lease_feeds(T0 + 900, "p2")
    assert again.polls == 1
    # p2 dies while polling: after the lease runs out the feed is p1's to poll
    assert a.lease_feeds(T0 + 959, "p1") == []
    assert [f.id for f in a.lease_feeds(T0 + 961, "p1")] == [feed.id]
    a.feed_failed(feed.id, T0 + 962, "boom", next_poll=T0 + 1200, disable_after=3)
    assert a.feed_lease(feed.id) == (None, 0) and a.feed(feed.id).failures == 1
    a.close()
    b.close()


LEASER = """
import json, sys, time
sys.path.insert(0, {repo!r})
from bot.store import Store
store = Store({url!r})
while time.time() < {start}:
    time.sleep(0.001)
got = []
for _ in range(10):  # each process keeps asking, as its feed tick would
    got += [f.id for f in store.lease_feeds({now}, sys.argv[1], limit=7)]
print(json.dumps(got))
"""


def test_two_processes_taking_due_feeds_at_once_never_take_the_same_one(pg_url):  # noqa: F811
    store = Store(pg_url)
    ids = {store.add_feed(GUILD_A, f"http://feeds.example/{i}.xml", now=T0)[0].id for i in range(40)}
    script = LEASER.format(repo=str(REPO), url=pg_url, start=time.time() + 3, now=T0 + 1)
    procs = [subprocess.Popen([sys.executable, "-c", script, f"p{i}"], stdout=subprocess.PIPE, text=True)
             for i in range(2)]
    got = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(got), got  # both took some
    assert not set(got[0]) & set(got[1])  # never the same feed
    assert len(got[0]) + len(got[1]) == len(ids) and set(got[0]) | set(got[1]) == ids  # each once
    store.close()


async def test_two_processes_poll_a_guilds_feed_once_per_interval_and_its_article_stays_that_guilds(
        site, pg_url, app_factory):  # noqa: F811
    """Two bot processes (two apps, two stores) on one PostgreSQL: each feed tick of both polls the
    feed once between them; the new article joins the other process's corpus through the store, and
    answers there in guild A, never in guild B."""
    app1 = app_factory(database_url=pg_url)
    app2 = app_factory(database_url=pg_url)
    store1, store2 = Store(pg_url), Store(pg_url)
    s1 = Sources(app1.settings, store1, app=app1, fetcher=fetcher())
    s2 = Sources(app2.settings, store2, app=app2, fetcher=fetcher())
    state = {"items": feed_items(site, [0]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    feed, _, first = await asyncio.to_thread(s1.add_feed, GUILD_A, site.url("/feed.xml"))
    assert first.status == "ok" and len(site.hits_to("/feed.xml")) == 1
    interval = app1.settings.feed_interval_minutes * 60
    for n in range(1, 4):  # three intervals: both processes tick at once, each time
        state["items"] = feed_items(site, [n]) + state["items"]
        state["etag"] = f"v{n + 1}"
        when = time.time() + n * interval * 1.2
        r1, r2 = await asyncio.gather(s1.poll_due(when), s2.poll_due(when))
        assert len(r1) + len(r2) == 1, (r1, r2)  # one of them polled it
        assert len(site.hits_to("/feed.xml")) == 1 + n  # one request per interval
        s1.clock = s2.clock = (lambda w=when: w)
    # what either process fetched is in the other's corpus within a sync
    s1.sync_fetched()
    s2.sync_fetched()
    ids1 = {a.id for a in app1.corpus.articles if a.guild_id == GUILD_A}
    ids2 = {a.id for a in app2.corpus.articles if a.guild_id == GUILD_A}
    assert len(ids1) == 4 and ids1 == ids2
    from bot.handlers.core import Handlers
    from tests.fakes.web import story

    title = story(3)[0]  # Quito's new harbour bridge, fetched by whichever process polled last
    for app in (app1, app2):
        arts = app.snapshot.index.articles
        assert title in {arts[r].title for r in app.visible_rows(app.snapshot, GUILD_A)}
        assert title not in {arts[r].title for r in app.visible_rows(app.snapshot, GUILD_B)}
        h = Handlers(app)
        in_a = h.ask("How much did the harbour bridge in Quito cost?", guild_id=GUILD_A)
        assert in_a.ok and title in {s.title for s in in_a.supporting}, in_a.text
        in_b = h.ask("How much did the harbour bridge in Quito cost?", guild_id=GUILD_B)
        assert title not in {s.title for s in in_b.supporting}
    # guild B's feed also carries the article (recorded by process 1): process 2 learns it too
    art = next(a for a in app1.corpus.articles if a.title == title)
    s1._share(art.id, GUILD_B)
    assert s2.sync_shares() == 1 and s2.sync_shares() == 0
    rows_b = app2.visible_rows(app2.snapshot, GUILD_B)
    assert title in {app2.snapshot.index.articles[r].title for r in rows_b}
    store1.close()
    store2.close()
