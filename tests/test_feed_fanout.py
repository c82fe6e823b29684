"""One fetch per distinct feed URL per interval, however many servers follow it (issue 31, item 1):
each server's copy gets the items its own filter passes; the URL's state (validators, back-off,
errors, the poll lease) is one row; rows from before the change keep working. Feeds are served on
127.0.0.1 (tests/fakes/web.py records every request); PostgreSQL from tests/pg_fixtures.py."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from aiohttp import web

from bot.handlers.core import Handlers
from bot.sources.service import Sources
from bot.store import Store
from bot.store import db as store_db
from tests.fakes.web import WebServer, rss, story
from tests.pg_fixtures import pg_url, store_target  # noqa: F401 - fixtures
from tests.test_sources import feed_items, fetcher, settings

BRIDGE, NO_BRIDGE, EVERYTHING, LATE = 21 << 22, 22 << 22, 23 << 22, 24 << 22
T0 = 1_760_000_000.0
TRAM, BRIDGE_Q, CYCLE, BRIDGE_Q2 = story(0)[0], story(3)[0], story(5)[0], story(11)[0]  # 3 and 11: harbour bridges


@pytest.fixture
async def site():
    async with WebServer() as server:
        yield server


def visible_titles(app, guild: int) -> set[str]:
    arts = app.snapshot.index.articles
    return {arts[r].title for r in app.visible_rows(app.snapshot, guild)}


async def test_a_feed_three_servers_follow_is_fetched_once_per_interval_each_getting_what_its_filter_passes(
        site, app_factory):
    app = app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    clock = {"t": T0}
    sources = Sources(app.settings, store, app=app, fetcher=fetcher(), clock=lambda: clock["t"])
    state = {"items": feed_items(site, [0, 3]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    url = site.url("/feed.xml")
    feed_hits = lambda: [h.status for h in site.hits_to("/feed.xml")]  # noqa: E731

    # three servers add the same URL, each with its own filter: one request between them
    a, created, ra = await asyncio.to_thread(sources.add_feed, BRIDGE, url, 1, include="bridge")
    assert created and [n.title for n in ra.new] == [BRIDGE_Q] and ra.filtered == 1
    b, _, rb = await asyncio.to_thread(sources.add_feed, NO_BRIDGE, url, 2, exclude="bridge")
    c, _, rc = await asyncio.to_thread(sources.add_feed, EVERYTHING, url, 3)
    assert feed_hits() == [200]  # the later two were given the items of that read, not a new request
    assert [n.title for n in rb.new] == [TRAM] and rb.filtered == 1  # kept out by BRIDGE's filter, not by its own
    # story 3's page was fetched once, for BRIDGE, and shared; story 0's page was read for BRIDGE's include
    # filter (which needs the page's text), which kept it out: the page was kept, and NO_BRIDGE's copy made
    # its article from it (not a second request for the page)
    assert len(site.hits_to("/news/3.html")) == 1 and len(site.hits_to("/news/0.html")) == 1
    assert rc.new == [] and rc.shared == 2  # both were articles already: shared with this server
    assert all(store.feed(f.id).primed for f in (a, b, c))
    reply = Handlers(app, sources).feed_add(url, EVERYTHING)
    assert reply.title == "Feed already followed"

    interval = app.settings.feed_interval_minutes * 60
    clock["t"] += interval * 1.2  # interval 1: two new items
    state.update(items=feed_items(site, [5, 11]) + state["items"], etag="v2")
    results = await sources.poll_due(clock["t"])
    assert feed_hits() == [200, 200]
    by_feed = {r.feed_id: r for r in results}
    assert sorted(by_feed) == sorted([a.id, b.id, c.id])
    assert [n.title for n in by_feed[a.id].new] == [BRIDGE_Q2]
    assert [n.title for n in by_feed[b.id].new] == [CYCLE]
    assert sorted(n.title for n in by_feed[c.id].new) == sorted([CYCLE, BRIDGE_Q2])
    assert len(site.hits_to("/news/11.html")) == 1 and len(site.hits_to("/news/5.html")) == 1
    assert await sources.poll_due(clock["t"] + 60) == []  # not due again within the interval

    clock["t"] += interval * 1.2  # interval 2: nothing new -> one conditional request, 304
    results = await sources.poll_due(clock["t"])
    assert feed_hits() == [200, 200, 304] and {r.status for r in results} == {"not-modified"} and len(results) == 3
    assert site.hits_to("/feed.xml")[-1].headers.get("If-None-Match") == '"v2"'

    assert visible_titles(app, BRIDGE) >= {BRIDGE_Q, BRIDGE_Q2}
    assert not visible_titles(app, BRIDGE) & {TRAM, CYCLE}
    assert visible_titles(app, NO_BRIDGE) >= {TRAM, CYCLE} and not visible_titles(app, NO_BRIDGE) & {BRIDGE_Q, BRIDGE_Q2}
    assert visible_titles(app, EVERYTHING) >= {TRAM, CYCLE, BRIDGE_Q, BRIDGE_Q2}
    for title in (TRAM, CYCLE, BRIDGE_Q, BRIDGE_Q2):
        assert sum(x.title == title for x in app.corpus) == 1  # one article each, shared where it passes

    # /feed list: each server still sees its own copy, its filter, its item count, the URL's status
    h = Handlers(app, sources)
    assert [f.id for f in store.feeds(BRIDGE)] == [a.id]
    listing = {g: h.feed_list(g).text for g in (BRIDGE, NO_BRIDGE, EVERYTHING)}
    assert "items: 2" in listing[BRIDGE] and "filter: include: bridge" in listing[BRIDGE]
    assert "items: 2" in listing[NO_BRIDGE] and "filter: exclude: bridge" in listing[NO_BRIDGE]
    assert "items: 4" in listing[EVERYTHING] and "filter:" not in listing[EVERYTHING]
    assert all("status: ok (not modified (304))" in t for t in listing.values())

    # a fourth server adds it when the last read is older than the interval: one (conditional) request,
    # and it gets the items kept from the last full read that its filter passes
    clock["t"] += interval * 1.2
    d, _, rd = await asyncio.to_thread(sources.add_feed, LATE, url, 4, exclude="bridge, cycle lane")
    assert feed_hits() == [200, 200, 304, 304]
    assert rd.status == "ok" and rd.shared == 1 and rd.filtered == 3
    assert visible_titles(app, LATE) & {TRAM, CYCLE, BRIDGE_Q, BRIDGE_Q2} == {TRAM}

    # /feed remove of one server's copy leaves the others, still fetched once per interval
    assert "Feed removed" in h.feed_remove(str(a.id), BRIDGE).title
    assert store.feeds(BRIDGE) == [] and len(store.feeds(url=url)) == 3
    clock["t"] += interval * 1.2
    state.update(items=feed_items(site, [6]) + state["items"], etag="v3")
    results = await sources.poll_due(clock["t"])
    assert feed_hits()[-1] == 200 and len(feed_hits()) == 5
    assert sorted(r.feed_id for r in results) == sorted([b.id, c.id, d.id])
    store.close()


async def test_two_processes_polling_at_once_fetch_the_url_once(site, store_target):  # noqa: F811
    """Two Sources (two owners, two stores: two processes) tick at the same moment, each interval:
    one of them fetches the URL, for all three servers; the other polls nothing."""
    hits: list[float] = []
    state = {"items": feed_items(site, [0, 3]), "etag": "v1"}

    async def slow_feed(request: web.Request) -> web.StreamResponse:
        hits.append(time.monotonic())
        await asyncio.sleep(0.3)  # the other process ticks while this request is in flight
        if request.headers.get("If-None-Match") == state["etag"]:
            return web.Response(status=304)
        return web.Response(body=rss(state["items"]).encode(), content_type="application/rss+xml",
                            headers={"ETag": state["etag"]})

    site.route("/feed.xml", slow_feed)
    url = site.url("/feed.xml")
    s1_store, s2_store = Store(store_target), Store(store_target)
    clock = {"t": T0}
    sset = _plain_settings()
    s1 = Sources(sset, s1_store, fetcher=fetcher(), clock=lambda: clock["t"])
    s2 = Sources(sset, s2_store, fetcher=fetcher(), clock=lambda: clock["t"])
    assert s1.owner != s2.owner
    feeds = {}
    for guild, inc, exc in ((BRIDGE, ("bridge",), ()), (NO_BRIDGE, (), ("bridge",)), (EVERYTHING, (), ())):
        feeds[guild], _ = s1_store.add_feed(guild, url, None, T0, include=inc, exclude=exc)
    interval = sset.feed_interval_minutes * 60
    expected = {0: {BRIDGE: [BRIDGE_Q], NO_BRIDGE: [TRAM], EVERYTHING: sorted([TRAM, BRIDGE_Q])},
                1: {BRIDGE: [BRIDGE_Q2], NO_BRIDGE: [CYCLE], EVERYTHING: sorted([CYCLE, BRIDGE_Q2])},
                2: {BRIDGE: [], NO_BRIDGE: [], EVERYTHING: []}}
    for n in range(3):
        if n == 1:
            state.update(items=feed_items(site, [5, 11]) + state["items"], etag="v2")
        r1, r2 = await asyncio.gather(s1.poll_due(clock["t"]), s2.poll_due(clock["t"]))
        assert len(hits) == n + 1, (n, r1, r2)  # one request per interval between the two
        assert (len(r1), len(r2)) in ((3, 0), (0, 3)), (r1, r2)  # one process polled it, for all three copies
        got = {r.feed_id: sorted(x.title for x in r.new) for r in r1 + r2}
        assert got == {feeds[g].id: want for g, want in expected[n].items()}, n
        clock["t"] += interval * 1.2
    assert [f.polls for f in s2_store.feeds(url=url)] == [3, 3, 3]  # one URL state, shown on every copy
    assert {f.etag for f in s2_store.feeds(url=url)} == {"v2"}
    s1_store.close()
    s2_store.close()


async def test_an_explicit_poll_while_another_process_holds_the_url_makes_no_request(site, store_target):  # noqa: F811
    release = asyncio.Event()
    hits = []

    async def feed(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        await release.wait()
        return web.Response(body=rss(feed_items(site, [0])).encode(), content_type="application/rss+xml")

    site.route("/feed.xml", feed)
    url = site.url("/feed.xml")
    st1, st2 = Store(store_target), Store(store_target)
    sset = _plain_settings()
    s1, s2 = Sources(sset, st1, fetcher=fetcher()), Sources(sset, st2, fetcher=fetcher())
    f1, _ = st1.add_feed(BRIDGE, url)
    f2, _ = st1.add_feed(NO_BRIDGE, url)
    first = asyncio.ensure_future(s1.poll(f1))
    while not hits:
        await asyncio.sleep(0.02)
    assert await s2.poll(st2.feed(f2.id)) is None  # the other server's copy: the same URL, leased by s1
    assert st2.feed_lease(f2.id)[0] == s1.owner
    release.set()
    r = await first
    assert r.feed_id == f1.id and len(hits) == 1 and st2.feed_lease(f2.id) == (None, 0)
    assert st2.feed(f2.id).primed and st2.feed(f2.id).last_status == "1 new of 1 item(s)"
    st1.close()
    st2.close()


def _store_at_0002(target) -> None:
    """A database as Precis wrote it before this change (revision 0002): one feeds row per server."""
    from alembic import command

    if store_db.is_postgres_url(target):
        engine = sa.create_engine(store_db._pg_url(target))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(f"sqlite:///{target}")
    with engine.begin() as c:
        command.upgrade(store_db._alembic_config(c), "0002")
    engine.dispose()


async def test_rows_from_before_the_change_are_migrated_in_place_and_keep_working(site, store_target):  # noqa: F811
    _store_at_0002(store_target)
    url = site.url("/feed.xml")
    if store_db.is_postgres_url(store_target):
        engine = sa.create_engine(store_db._pg_url(store_target))
    else:
        engine = sa.create_engine(f"sqlite:///{store_target}")
    with engine.begin() as c:  # three servers' copies, each polled on its own, their state apart
        c.execute(sa.text(
            "INSERT INTO feeds(id, guild_id, url, title, added_at, etag, polls, last_poll, last_status, last_success,"
            " failures, next_poll, items, include_terms, exclude_terms) VALUES"
            " (1, :a, :u, 'Old title', 1, 'e-old', 4, :t1, '1 new of 2 item(s)', :t1, 0, :n1, 2, '[\"bridge\"]', '[]'),"
            " (2, :b, :u, 'The Daily Example', 1, 'e-new', 5, :t2, '2 new of 2 item(s)', :t2, 0, :n2, 3, '[]', '[]'),"
            " (3, :c, :u, '', 1, 'e-new', 5, :t2, 'error', :t0, 2, :n3, 1, '[]', '[\"bridge\"]')"),
            {"a": BRIDGE, "b": EVERYTHING, "c": NO_BRIDGE, "u": url, "t0": T0 - 5000, "t1": T0 - 1000,
             "t2": T0 - 500, "n1": T0 - 10, "n2": T0 + 400, "n3": T0 + 100})
        # the old item (story 0) BRIDGE's copy kept out, and that became an article for another copy
        c.execute(sa.text("INSERT INTO seen_items(item_key, article_id, feed_id, first_seen) VALUES"
                          " ('guid:story-0', 'wold0', 2, 1), ('filtered:1:guid:story-0', NULL, 1, 1)"))
    engine.dispose()

    store = Store(store_target)
    assert store.schema_revision == "0004"
    [a], [b], [c] = store.feeds(BRIDGE), store.feeds(EVERYTHING), store.feeds(NO_BRIDGE)
    assert (a.id, a.items, a.include, a.primed) == (1, 2, ("bridge",), True)
    assert (c.id, c.items, c.exclude, c.primed, c.last_status) == (3, 1, ("bridge",), True, "error")
    for f in (a, b, c):  # one URL state: the newest poll, the fewest failures, the earliest next poll
        assert (f.polls, f.last_success, f.failures, f.next_poll, f.title) == (5, T0 - 500, 0, T0 - 10,
                                                                              "The Daily Example")
        assert f.etag is None  # the copies had different validators: the first request reads it in full
    assert b.last_status == "2 new of 2 item(s)"  # each copy keeps its own status line

    site.static("/feed.xml", rss(feed_items(site, [0, 3, 5])), "application/rss+xml")
    sources = Sources(_plain_settings(), store, fetcher=fetcher(), clock=lambda: T0)
    results = {r.feed_id: r for r in await sources.poll_due(T0)}
    [hit] = site.hits_to("/feed.xml")
    assert "If-None-Match" not in hit.headers
    assert {fid: sorted(n.title for n in r.new) for fid, r in results.items()} == {
        1: [BRIDGE_Q], 2: sorted([BRIDGE_Q, CYCLE]), 3: [CYCLE]}
    assert [n.title for n in results[2].new] and not any(n.title == TRAM for r in results.values() for n in r.new)
    assert ("wold0", NO_BRIDGE) in store.shared_articles()  # the old item, already an article, reaches C too
    assert ("wold0", BRIDGE) not in store.shared_articles()  # BRIDGE's copy kept it out before
    assert [store.feed(i).items for i in (1, 2, 3)] == [3, 5, 2]
    assert await sources.poll_due(T0 + 1) == []  # the URL's next poll is an interval away
    store.close()


def _plain_settings():
    """Settings for Sources with no app (no corpus: nothing is written to DATA_DIR)."""
    from bot.config import Settings

    return Settings(_env_file=None, fetch_allow_private=True)


# ------------------------------------------------------------------ the schedule


def test_per_host_leasing_takes_the_most_overdue_urls_of_each_host(store_target):  # noqa: F811
    store = Store(store_target)
    for i in range(5):
        store.add_feed(1, f"http://busy.example/{i}.xml", now=T0 + i)
    for i in range(2):
        store.add_feed(1, f"http://quiet.example/{i}.xml", now=T0 + 10 + i)
    store.add_feed(2, "http://busy.example/0.xml", now=T0)  # a second server's copy: the same URL
    got = store.lease_feeds(T0 + 100, "p1", per_host=2)
    assert sorted({f.url for f in got}) == ["http://busy.example/0.xml", "http://busy.example/1.xml",
                                            "http://quiet.example/0.xml", "http://quiet.example/1.xml"]
    assert sorted(f.guild_id for f in got if f.url.endswith("busy.example/0.xml")) == [1, 2]  # every copy
    got2 = store.lease_feeds(T0 + 100, "p2", per_host=2)
    assert sorted(f.url for f in got2) == ["http://busy.example/2.xml", "http://busy.example/3.xml"]
    store.close()


async def test_a_copy_removed_mid_tick_does_not_leave_its_url_leased(app_factory):
    app = app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    sources = Sources(app.settings, store, app=app, fetcher=fetcher(), clock=lambda: T0 + 100)
    url = "http://shared.example/feed.xml"
    first, _ = store.add_feed(1, url, now=T0)
    second, _ = store.add_feed(2, url, now=T0)
    assert {f.id for f in store.lease_feeds(T0 + 100, sources.owner)} == {first.id, second.id}  # the tick's lease
    store.remove_feed(1, first.id)  # the first server unfollows before the tick reaches the URL
    assert await sources._poll_url(url, first.id) is None  # noqa: SLF001 - the tick's own step
    owner, until = store.feed_lease(second.id)
    assert owner is None and until == 0  # free for the next tick, not held for the 10-minute lease
    store.close()


async def test_an_item_every_server_already_sees_costs_no_store_write_when_the_feed_is_read_again(site, app_factory):
    """A feed read again (a new item beside the old ones) shares only the new item: the old one, already
    shared with the second server, was written to the store again for every server that follows the
    URL at every read (benchmarks/feed_scale.py: share_article was half the store's time at 3,000
    subscriptions)."""
    app = app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    clock = {"t": T0}
    sources = Sources(app.settings, store, app=app, fetcher=fetcher(), clock=lambda: clock["t"])
    state = {"items": feed_items(site, [0]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    url = site.url("/feed.xml")
    store.add_feed(BRIDGE, url, now=T0)
    store.add_feed(NO_BRIDGE, url, now=T0)
    writes: list[tuple[str, int]] = []
    batches: list[int] = []
    share = store.share_articles
    store.share_articles = lambda pairs: (writes.extend(pairs), batches.append(len(pairs)), share(pairs))[2]
    assert len(await sources.poll_due(T0)) == 2
    assert len(writes) == 1  # story 0: owned by one server, shared with the other
    state["items"], state["etag"] = feed_items(site, [1]) + state["items"], "v2"
    clock["t"] = T0 + 3600
    assert len(await sources.poll_due(T0 + 3600)) == 2
    assert len(writes) == 2 and len(site.hits_to("/feed.xml")) == 2  # story 1's share only
    assert batches == [1, 1]  # one store transaction per read of the feed
    assert {a for a, _ in writes} == {a.id for a in app.corpus.articles if a.guild_id in (BRIDGE, NO_BRIDGE)}
    for a in app.corpus.articles:
        if a.guild_id in (BRIDGE, NO_BRIDGE):
            assert app.scopes.can_see(a, BRIDGE) and app.scopes.can_see(a, NO_BRIDGE)
    assert {g for _, g in store.shared_articles()} <= {BRIDGE, NO_BRIDGE}
    store.close()


def test_a_server_adding_a_url_disabled_by_its_failures_starts_it_again(store_target):  # noqa: F811
    store = Store(store_target)
    url = "http://broken.example/feed.xml"
    feed, _ = store.add_feed(1, url, now=T0)
    for i in range(12):  # the URL fails until it is disabled
        store.feed_failed(feed.id, T0 + i, "HTTP 500", next_poll=T0 + i + 1, disable_after=12)
    assert store.feed(feed.id).disabled
    store.remove_feed(1, feed.id)
    again, created = store.add_feed(2, url, now=T0 + 100)  # another server follows it later
    assert created and not again.disabled and again.failures == 0
    assert [f.id for f in store.due_feeds(T0 + 100)] == [again.id]  # polled at the next tick, not never
    store.close()


async def test_a_host_with_many_feeds_is_visited_in_full_over_ticks_and_left_urls_are_handed_back(site, tmp_path):
    """Slow answers: a tick polls what fits in its budget, hands the rest back at once (no lease held),
    and the next tick takes those first; every URL is fetched exactly once."""
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.25)
        return web.Response(body=rss([]).encode(), content_type="application/rss+xml")

    store = Store(tmp_path / "s.sqlite3")
    urls = []
    for i in range(6):
        site.route(f"/f{i}.xml", slow)
        urls.append(site.url(f"/f{i}.xml"))
        store.add_feed(1, urls[-1], now=T0 + i)
    sources = Sources(settings(tmp_path), store, fetcher=fetcher(host_pause=0.01), clock=lambda: T0 + 50)
    polled: list[str] = []
    for _ in range(6):
        got = await sources.poll_due(T0 + 50, budget_s=0.4)
        polled += [r.url for r in got]
        assert all(store.feed_lease(f.id) == (None, 0) for f in store.feeds())  # nothing left held
        if len(polled) == len(urls):
            break
    assert len(polled) == 6 and sorted(polled) == sorted(urls)  # each once
    assert polled == urls  # most overdue first, tick after tick
    assert len([h for h in site.hits if h.path.startswith("/f")]) == 6
    store.close()


async def test_a_new_item_reaches_every_follower_in_one_store_transaction(site, app_factory):
    """A URL followed by five servers: its new item is owned by one and shared with the four others in
    one write (benchmarks/feed_scale.py: a transaction per follower was half the store's time)."""
    app = app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    sources = Sources(app.settings, store, app=app, fetcher=fetcher(), clock=lambda: T0)
    site.conditional("/feed.xml", lambda: ("v1", rss(feed_items(site, [0])).encode()))
    guilds = [(20 + i) << 22 for i in range(5)]
    for g in guilds:
        store.add_feed(g, site.url("/feed.xml"), now=T0)
    batches: list[list] = []
    share = store.share_articles
    store.share_articles = lambda pairs: (batches.append(list(pairs)), share(pairs))[1]
    assert len(await sources.poll_due(T0)) == 5 and len(site.hits_to("/feed.xml")) == 1
    assert len(batches) == 1 and len(batches[0]) == 4
    art = next(a for a in app.corpus.articles if a.guild_id in guilds)
    assert all(app.scopes.can_see(art, g) for g in guilds)
    assert {g for a, g in store.shared_articles() if a == art.id} == set(guilds) - {art.guild_id}
    store.close()
