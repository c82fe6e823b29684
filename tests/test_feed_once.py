"""One request per feed URL per interval when servers add a URL others follow, and what the new
server gets (review of issue 31's fan-out):

* a ``/feed add`` while a feed tick holds the URL's lease (taken, its read not begun) must not make
  the tick read the URL a second time in the interval, in this process or another;
* a server that starts following a URL whose validators are kept per URL gets the feed's current
  items when the next read answers 304 (or while a read is in flight);
* an item's page, read because a filter needs its text, is read once per item per read of the
  feed, not again for each server that follows the URL later.

Feeds and pages are served on 127.0.0.1 (tests/fakes/web.py records every request); the stores are
SQLite and PostgreSQL (tests/pg_fixtures.py)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from aiohttp import web

from bot.sources import service
from bot.sources.feeds import normalise_link
from bot.sources.service import Sources
from bot.store import Store
from bot.store import schema as S
from tests.fakes.web import WebServer, rss, story
from tests.pg_fixtures import pg_url, store_target  # noqa: F401 - fixtures
from tests.test_sources import feed_items, fetcher

from tests.test_feed_fanout import BRIDGE_Q, BRIDGE_Q2, CYCLE, T0, TRAM, site  # noqa: F401 - fixtures

A, B, C, D = 31 << 22, 32 << 22, 33 << 22, 34 << 22


def _settings():
    from bot.config import Settings

    return Settings(_env_file=None, fetch_allow_private=True)


async def _anywhere(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]  # slow.test and the like: other host names for the same local server


def _set_next_poll(store: Store, url: str, when: float) -> None:
    with store._tx() as c:  # noqa: SLF001 - the test places the URL's schedule
        c.execute(S.feed_urls.update().where(S.feed_urls.c.url == url).values(next_poll=when))


def _blocking_feed(site: WebServer, path: str) -> asyncio.Event:
    """A feed on ``path`` that answers (with no items) only once the returned event is set."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(body=rss([]).encode(), content_type="application/rss+xml")

    site.route(path, handler)
    return release


# ------------------------------------------------------------------ item 1: a /feed add during a tick


async def test_a_feed_add_while_the_tick_holds_the_url_makes_one_request_in_the_interval(
        site, store_target, monkeypatch):  # noqa: F811
    """The tick has leased the URL (due) but waits for its poll slot behind a slow feed on another host;
    a server adds the URL meanwhile: its add reads the URL (the new item reaches every follower) and
    the tick, when its turn comes, does not read it again."""
    monkeypatch.setattr(service, "MAX_CONCURRENT_POLLS", 1)  # the slow feed holds the tick's only slot
    release = _blocking_feed(site, "/slow.xml")
    state = {"items": feed_items(site, [0]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    url, slow_url = site.url("/feed.xml"), f"http://slow.test:{site.port}/slow.xml"
    store = Store(store_target)
    clock = {"t": T0}
    sources = Sources(_settings(), store, fetcher=fetcher(resolver=_anywhere), clock=lambda: clock["t"])
    a, _ = store.add_feed(A, url, now=T0)
    assert len(await sources.poll_due(T0)) == 1 and len(site.hits_to("/feed.xml")) == 1
    store.add_feed(C, slow_url, now=T0)  # never read: the most overdue URL of the next tick

    interval = sources.settings.feed_interval_minutes * 60
    clock["t"] = T0 + 1.2 * interval  # the URL is due
    state.update(items=feed_items(site, [3]) + state["items"], etag="v2")
    tick = asyncio.ensure_future(sources.poll_due(clock["t"]))
    while not site.hits_to("/slow.xml"):
        await asyncio.sleep(0.01)
    assert store.feed_lease(a.id)[0] == sources.owner  # leased by the tick, its read not begun

    b, created, rb = await asyncio.to_thread(sources.add_feed, B, url, 2)
    assert created and rb.status == "ok"
    assert [n.title for n in rb.new] == [BRIDGE_Q] and rb.shared == 1  # the new item, and the old one
    assert len(site.hits_to("/feed.xml")) == 2  # the add read it
    release.set()
    results = await tick
    assert len(site.hits_to("/feed.xml")) == 2, [h.line() for h in site.hits]  # the tick did not read it again
    assert [h.status for h in site.hits_to("/slow.xml")] == [200]
    assert {r.url for r in results} == {slow_url}
    assert store.feed(a.id).items == 2 and store.feed(b.id).items == 2  # A got the new item from the add's read
    assert store.feed_lease(a.id) == (None, 0) and store.feed(a.id).next_poll > clock["t"]
    store.close()


async def test_a_feed_add_whose_items_come_from_the_last_read_does_not_let_a_url_be_read_twice(
        site, store_target, monkeypatch):  # noqa: F811
    """Two processes. Process 1's tick has leased the URL (due, within the jitter, so its last read is
    still within the interval) and waits for a poll slot; a server's add in process 1 gets the items
    of the last read (no request) and ends the lease; process 2's tick then reads the URL. When
    process 1's tick reaches the URL it must not read it again."""
    monkeypatch.setattr(service, "MAX_CONCURRENT_POLLS", 1)
    release = _blocking_feed(site, "/slow.xml")
    state = {"items": feed_items(site, [0]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    url, slow_url = site.url("/feed.xml"), f"http://slow.test:{site.port}/slow.xml"
    st1, st2 = Store(store_target), Store(store_target)
    clock = {"t": T0}
    s1 = Sources(_settings(), st1, fetcher=fetcher(resolver=_anywhere), clock=lambda: clock["t"])
    s2 = Sources(_settings(), st2, fetcher=fetcher(resolver=_anywhere), clock=lambda: clock["t"])
    a, _ = st1.add_feed(A, url, now=T0)
    assert len(await s1.poll_due(T0)) == 1
    st1.add_feed(C, slow_url, now=T0)
    interval = s1.settings.feed_interval_minutes * 60
    _set_next_poll(st1, url, T0 + 0.9 * interval)  # the jitter's earliest
    clock["t"] = T0 + 0.95 * interval  # due, and its last read is within the interval

    tick1 = asyncio.ensure_future(s1.poll_due(clock["t"]))
    while not site.hits_to("/slow.xml"):
        await asyncio.sleep(0.01)
    b, _, rb = await asyncio.to_thread(s1.add_feed, B, url, 2)
    assert rb.shared == 1 and len(site.hits_to("/feed.xml")) == 1  # from the last read's items, no request
    r2 = await s2.poll_due(clock["t"])  # process 2's tick: the URL is due and free
    assert [r.feed_id for r in r2] == sorted([a.id, b.id]) and len(site.hits_to("/feed.xml")) == 2
    release.set()
    await tick1
    assert len(site.hits_to("/feed.xml")) == 2, [h.line() for h in site.hits]  # not a third time
    assert st1.feed_lease(a.id) == (None, 0)
    st1.close()
    st2.close()


# ------------------------------------------------------------------ item 2: 304 and a new server


async def test_a_server_following_a_url_others_follow_gets_its_items_when_the_next_read_is_a_304(
        site, store_target):  # noqa: F811
    """The URL's validators are kept per URL: the tick's read after B (and a global copy, as the FEEDS
    setting adds it, with no read of its own) started to follow it is a 304; they still get the
    feed's current items, each through its own filter."""
    state = {"items": feed_items(site, [0, 3]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    url = site.url("/feed.xml")
    store = Store(store_target)
    clock = {"t": T0}
    sources = Sources(_settings(), store, fetcher=fetcher(), clock=lambda: clock["t"])
    a, _ = store.add_feed(A, url, now=T0)
    assert len(await sources.poll_due(T0)) == 1
    interval = sources.settings.feed_interval_minutes * 60
    clock["t"] = T0 + 1.2 * interval
    b, _ = store.add_feed(B, url, now=clock["t"], exclude=["bridge"])
    g, _ = store.add_feed(0, url, now=clock["t"])
    results = {r.feed_id: r for r in await sources.poll_due(clock["t"])}
    assert [h.status for h in site.hits_to("/feed.xml")] == [200, 304]
    assert results[a.id].status == "not-modified"
    assert (results[b.id].shared, results[b.id].filtered) == (1, 1) and results[g.id].shared == 2
    assert store.feed(b.id).primed and store.feed(b.id).items == 1 and store.feed(g.id).items == 2
    shared = set(store.shared_articles())
    assert len([1 for _, gid in shared if gid == B]) == 1  # story 0 only; story 3 is kept out by its filter
    store.close()


@pytest.mark.parametrize("where", ["same process", "other process"])
async def test_a_server_added_while_a_read_of_the_url_is_in_flight_gets_the_items_without_another_request(
        site, store_target, where):  # noqa: F811
    """The tick's read (a 304) began before B's copy existed; B's add waits for it and then gets the
    items kept from the last full read."""
    gate = asyncio.Event()
    arrived = []

    async def slow_304(request: web.Request) -> web.StreamResponse:
        arrived.append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == '"v1"':
            await gate.wait()
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=rss(feed_items(site, [0, 3])).encode(), content_type="application/rss+xml",
                            headers={"ETag": '"v1"'})

    site.route("/feed.xml", slow_304)
    url = site.url("/feed.xml")
    st1 = Store(store_target)
    st2 = st1 if where == "same process" else Store(store_target)
    clock = {"t": T0}
    s1 = Sources(_settings(), st1, fetcher=fetcher(), clock=lambda: clock["t"])
    s2 = s1 if where == "same process" else Sources(_settings(), st2, fetcher=fetcher(), clock=lambda: clock["t"])
    st1.add_feed(A, url, now=T0)
    assert len(await s1.poll_due(T0)) == 1
    clock["t"] = T0 + 1.2 * s1.settings.feed_interval_minutes * 60
    tick = asyncio.ensure_future(s1.poll_due(clock["t"]))
    while len(arrived) < 2:
        await asyncio.sleep(0.01)
    add = asyncio.ensure_future(asyncio.to_thread(s2.add_feed, B, url, 2, include="bridge"))
    while not st1.feeds(B):  # B's copy exists while the read is in flight
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # and its add is waiting for that read
    gate.set()
    await tick
    b, _, rb = await add
    assert rb.status == "ok" and (rb.shared, rb.filtered) == (1, 1)
    assert len(arrived) == 2  # no request for B
    assert st2.feed(b.id).primed and st2.feed(b.id).items == 1
    st1.close()
    if st2 is not st1:
        st2.close()


# ------------------------------------------------------------------ item 3: a page a filter needs


async def test_a_page_read_for_a_filter_is_read_once_per_item_however_many_servers_follow_later(
        site, store_target):  # noqa: F811
    """A's include filter needs each item's page (the feed's own text does not say 'bridge'): the pages
    are read at the feed's read. Servers that follow the URL later (from the kept items within the
    interval, after a 304, in another process) get what their filters pass without reading any page
    again: an article is made from the page already read."""
    items = feed_items(site, [0, 3])
    for it in items:
        it["description"] = "Read the full story on our site."  # the filters must look at the page
    site.conditional("/feed.xml", lambda: ("v1", rss(items).encode()))
    url = site.url("/feed.xml")
    st1, st2 = Store(store_target), Store(store_target)
    clock = {"t": T0}
    s1 = Sources(_settings(), st1, fetcher=fetcher(), clock=lambda: clock["t"])
    s2 = Sources(_settings(), st2, fetcher=fetcher(), clock=lambda: clock["t"])
    pages = lambda: {p: len(site.hits_to(p)) for p in ("/news/0.html", "/news/3.html")}  # noqa: E731

    a, _, ra = await asyncio.to_thread(s1.add_feed, A, url, 1, include="bridge")
    assert [n.title for n in ra.new] == [BRIDGE_Q] and ra.filtered == 1
    assert pages() == {"/news/0.html": 1, "/news/3.html": 1}
    keys = {n: "link:" + normalise_link(site.url(f"/news/{n}.html")) for n in (0, 3)}  # kept under the link
    assert list(st1.kept_pages([keys[0], keys[3], "guid:story-0"], now=T0)) == [keys[0]]  # no article: kept
    b, _, rb = await asyncio.to_thread(s1.add_feed, B, url, 2, include="bridge, harbour")  # kept items, no request
    assert rb.shared == 1 and rb.filtered == 1
    c, _, rc = await asyncio.to_thread(s2.add_feed, C, url, 3, include="tram")  # another process
    assert [n.title for n in rc.new] == [TRAM] and rc.filtered == 1
    assert pages() == {"/news/0.html": 1, "/news/3.html": 1}, [h.line() for h in site.hits]
    assert len(site.hits_to("/feed.xml")) == 1
    art = next(n for n in rc.new if n.title == TRAM)
    assert art.url == site.url("/news/0.html") and "tram" in art.text.lower()  # made from the page read for A
    assert st2.kept_pages([keys[0]], now=T0) == {}  # an article now: the page is not kept any more

    clock["t"] += 1.2 * s1.settings.feed_interval_minutes * 60
    d, _, rd = await asyncio.to_thread(s2.add_feed, D, url, 4, exclude="bridge")  # a 304, then the kept items
    assert [h.status for h in site.hits_to("/feed.xml")] == [200, 304]
    assert rd.shared == 1 and rd.filtered == 1
    assert pages() == {"/news/0.html": 1, "/news/3.html": 1}
    st1.close()
    st2.close()


async def test_a_kept_page_goes_only_to_an_item_with_its_link_not_to_another_sites_item_with_its_guid(
        site, store_target):  # noqa: F811
    """Guids name items within a feed: two sites may both number theirs "1". A's page, kept for its
    filter, must not become B's article (another page, another guild's feed): B's own page is read."""
    i1, i2 = feed_items(site, [0])[0], feed_items(site, [5])[0]
    for it in (i1, i2):
        it["guid"], it["description"] = "1", "Read more on our site."
    site.conditional("/f1.xml", lambda: ("v1", rss([i1]).encode()))
    site.conditional("/f2.xml", lambda: ("v1", rss([i2], title="Another site").encode()))
    store = Store(store_target)
    s = Sources(_settings(), store, fetcher=fetcher())
    _, _, ra = await asyncio.to_thread(s.add_feed, A, site.url("/f1.xml"), 1, include="zzzz")
    assert ra.filtered == 1 and len(site.hits_to("/news/0.html")) == 1  # read for the filter, kept
    _, _, rb = await asyncio.to_thread(s.add_feed, B, site.url("/f2.xml"), 2)
    assert [(n.url, n.title) for n in rb.new] == [(i2["link"], i2["title"])]
    assert len(site.hits_to("/news/5.html")) == 1  # its own page
    assert store.kept_pages(["guid:1"]) == {}
    store.close()


async def test_a_page_with_no_text_is_not_kept_for_another_feed_linking_to_it(site, store_target):  # noqa: F811
    """A page that gave no text: the item's article is the feed's own text. That text is A's feed's,
    not the page's, so it is not kept: B's feed, linking to the same page, gets its own text."""
    site.static("/empty.html", "<html><head><title>x</title></head><body><p>Menu</p></body></html>")
    link = site.url("/empty.html")
    text_a = "Harbour officials said on Monday that the old ferry pier will close for repairs in spring."
    text_b = "The city council approved a new budget for the tram network after a long debate on Tuesday."
    ia = {"title": "Pier closes", "link": link, "guid": "a-1", "description": text_a}
    ib = {"title": "Budget passes", "link": link, "guid": "b-1", "description": text_b}
    site.conditional("/fa.xml", lambda: ("v1", rss([ia]).encode()))
    site.conditional("/fb.xml", lambda: ("v1", rss([ib], title="Another site").encode()))
    store = Store(store_target)
    s = Sources(_settings(), store, fetcher=fetcher())
    _, _, ra = await asyncio.to_thread(s.add_feed, A, site.url("/fa.xml"), 1, include="zzzz")
    assert ra.filtered == 1
    _, _, rb = await asyncio.to_thread(s.add_feed, B, site.url("/fb.xml"), 2)
    assert len(rb.new) == 1 and "tram" in rb.new[0].text and "pier" not in rb.new[0].text.lower()
    store.close()


def test_kept_pages_last_a_week(store_target):  # noqa: F811
    store = Store(store_target)
    page = ("http://news.example/a", {"title": "A", "text": "Some text."})
    store.keep_pages({"link:a": page}, now=T0)
    assert store.kept_pages(["link:a", "link:b"], now=T0) == {"link:a": page}
    # a week later, nothing kept since (no prune ran): the old page is not handed out
    assert store.kept_pages(["link:a"], now=T0 + 8 * 86400) == {}
    store.keep_pages({"link:b": page}, now=T0 + 8 * 86400)  # a keep drops the old one
    assert list(store.kept_pages(["link:a", "link:b"], now=T0 + 8 * 86400)) == ["link:b"]
    store.close()


async def test_the_feed_tick_prunes_old_kept_pages_and_hosts_idle_for_a_day(store_target):  # noqa: F811
    store = Store(store_target)
    page = ("http://news.example/a", {"title": "A", "text": "Some text."})
    store.keep_pages({"link:old": page}, now=T0)
    store.keep_pages({"link:new": page}, now=T0 + 7.5 * 86400)
    for host in ("idle.test", "recent.test", "held.test"):
        assert store.claim_host(host, "p1", hold=30.0) is None
    store.free_host("idle.test", "p1", pause=1.0)
    store.free_host("recent.test", "p1", pause=1.0)
    with store._tx() as c:  # noqa: SLF001 - idle.test's last request was two days ago
        c.execute(S.feed_hosts.update().where(S.feed_hosts.c.host == "idle.test")
                  .values(free_at=S.feed_hosts.c.free_at - 2 * 86400))
    sources = Sources(_settings(), store, fetcher=fetcher(), clock=lambda: T0 + 8 * 86400)
    assert await sources.poll_due() == []  # no feed due: the prune still runs
    with store._tx() as c:  # noqa: SLF001
        pages = sorted(r[0] for r in c.execute(sa.select(S.feed_pages.c.item_key)))
        hosts = sorted(r[0] for r in c.execute(sa.select(S.feed_hosts.c.host)))
    assert pages == ["link:new"] and hosts == ["held.test", "recent.test"]
    assert store.claim_host("idle.test", "p2", hold=30.0) is None  # asked again: a new row
    store.close()
