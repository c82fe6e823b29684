"""Fetching, extraction and feeds against a real web server on 127.0.0.1 (tests/fakes/web.py),
and httpx.MockTransport where no server is needed."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot.config import Settings
from bot.sources.extract import extract_article
from bot.sources.feeds import (
    BACKOFF_BASE_S,
    DISABLE_AFTER,
    FeedError,
    FeedItem,
    backoff_seconds,
    item_keys,
    normalise_link,
    parse_feed,
)
from bot.sources.fetch import FetchConfig, Fetcher, FetchError, decode_body, is_public_address
from bot.sources.service import Sources
from bot.store import GLOBAL_GUILD, Store
from tests.fakes.web import WebServer, article_html, rss, story

REPO = Path(__file__).resolve().parent.parent


def settings(tmp_path: Path, **kw) -> Settings:
    kw.setdefault("data_dir", tmp_path / "data")
    kw.setdefault("fetch_allow_private", True)
    return Settings(_env_file=None, **kw)


def fetcher(**kw) -> Fetcher:
    kw.setdefault("allow_private", True)
    kw.setdefault("host_pause", 0.0)
    kw.setdefault("timeout", 3.0)
    resolver = kw.pop("resolver", None)
    transport = kw.pop("transport", None)
    f = Fetcher(FetchConfig(**kw), transport=transport)
    if resolver is not None:
        f.resolver = resolver
    return f


@pytest.fixture
async def site():
    async with WebServer() as server:
        yield server


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.sqlite3")
    yield s
    s.close()


def serve_story(server: WebServer, n: int, path: str | None = None) -> tuple[str, str, list[str]]:
    title, paras = story(n)
    path = path or f"/news/{n}.html"
    server.static(path, article_html(title, paras))
    return server.url(path), title, paras


def feed_items(server: WebServer, ns: list[int]) -> list[dict]:
    items = []
    for n in ns:
        url, title, paras = serve_story(server, n)
        items.append({"title": title, "link": url, "guid": f"story-{n}", "description": paras[0],
                      "pubDate": f"Mon, 0{1 + n % 8} Dec 2026 08:00:00 GMT"})
    return items


# ------------------------------------------------------------------ the batch CLI contract


async def run_cli(*args: str, cwd: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FETCH_", "DATA_DIR", "FEED"))}
    env.update(FETCH_ALLOW_PRIVATE="true", PYTHONPATH=str(REPO), LOG_LEVEL="INFO")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "fetch", *args, "--json", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def test_fetch_cli_prints_a_page_and_a_feed_then_only_what_is_new(site, tmp_path):
    page_url, page_title, page_paras = serve_story(site, 7, "/page.html")
    state = {"items": feed_items(site, [0, 1, 2]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    data = tmp_path / "state"
    args = ["--url", page_url, "--url", site.url("/missing.html"), "--feed", site.url("/feed.xml"),
            "--data-dir", str(data)]

    first = await run_cli(*args, cwd=tmp_path)
    assert len(first) == 5
    page, missing, *items = first
    assert page["source"] == "page" and page["feed"] is None and page["url"] == page_url
    assert page["title"] == page_title and page_paras[1] in page["text"] and "Most read" not in page["text"]
    assert set(page) == {"url", "title", "date", "text", "source", "feed"}
    assert missing == {"url": site.url("/missing.html"), "error": "HTTP 404: not found"}
    assert [i["title"] for i in items] == [it["title"] for it in state["items"]]
    for item, src in zip(items, state["items"]):
        assert item["source"] == "feed" and item["feed"] == site.url("/feed.xml") and item["url"] == src["link"]
        assert item["date"].startswith("2026-12-0") and "officials said" in item["text"]
    ua = site.hits_to("/feed.xml")[0].headers["User-Agent"]
    assert ua.startswith("Precis/") and "bot" in ua

    second = await run_cli(*args, cwd=tmp_path)
    assert second == [{"url": site.url("/missing.html"), "error": "HTTP 404: not found"}]  # nothing new
    feed_hits = site.hits_to("/feed.xml")
    assert [h.status for h in feed_hits] == [200, 304]
    assert feed_hits[1].headers["If-None-Match"] == '"v1"' and "If-Modified-Since" in feed_hits[1].headers
    assert len(site.hits_to("/page.html")) == 1  # a page already printed is not fetched again

    state["items"] = feed_items(site, [3]) + state["items"]
    state["etag"] = "v2"
    third = await run_cli("--feed", site.url("/feed.xml"), "--data-dir", str(data), cwd=tmp_path)
    assert [i["title"] for i in third] == [story(3)[0]]


# ------------------------------------------------------------------ fetching: bad input


@pytest.mark.parametrize(("status", "message"), [
    (404, "HTTP 404: not found"),
    (410, "HTTP 410: gone"),
    (429, "HTTP 429: too many requests"),
    (500, "HTTP 500: server error"),
    (503, "HTTP 503: server error"),
])
async def test_http_errors_are_clear(site, status, message):
    site.static("/s", "nope", status=status, headers={"Retry-After": "120"} if status == 429 else None)
    with pytest.raises(FetchError) as e:
        await fetcher().fetch(site.url("/s"))
    assert str(e.value).startswith(message) and e.value.status == status and e.value.kind == "http"
    if status == 429:
        assert e.value.retry_after == "120" and "retry after 120" in str(e.value)


async def test_a_20_mb_page_stops_at_the_size_cap(site):
    site.stream("/huge", b"<p>" + b"x" * 65533 + b"</p>", 20 * 16)  # 20 MB, no Content-Length (chunked)
    site.static("/huge-declared", b"x" * (6 * 2**20), headers={})
    f = fetcher(max_bytes=2 * 2**20)
    with pytest.raises(FetchError, match="too large: more than 2.0 MB") as e:
        await f.fetch(site.url("/huge"))
    assert e.value.kind == "too-large"
    with pytest.raises(FetchError, match=r"too large: 6\.0 MB"):
        await f.fetch(site.url("/huge-declared"))
    # and a gzip bomb is capped on the decoded size
    site.static("/bomb", b"\0" * (8 * 2**20), gzip_body=True)
    with pytest.raises(FetchError, match="too large"):
        await f.fetch(site.url("/bomb"))


async def test_a_trickling_server_hits_the_total_timeout(site):
    site.stream("/trickle", b"x", 100, every=0.2)  # one byte every 0.2 s: each read is quick, the whole is not
    t = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 1\.5 s") as e:
        await fetcher(timeout=1.5).fetch(site.url("/trickle"))
    assert e.value.kind == "timeout" and time.monotonic() - t < 4


async def test_redirects_are_followed_to_five_and_loops_stop(site):
    for i in range(7):
        site.static(f"/r{i}", "", status=302, headers={"Location": f"/r{i + 1}"})
    site.static("/r7", article_html(*story(1)))
    site.static("/loop-a", "", status=301, headers={"Location": site.url("/loop-b")})
    site.static("/loop-b", "", status=301, headers={"Location": "/loop-a"})
    ok = await fetcher().fetch(site.url("/r2"))
    assert ok.url == site.url("/r7") and len(ok.hops) == 6  # five redirects
    with pytest.raises(FetchError, match="more than 5 redirects") as e:
        await fetcher().fetch(site.url("/r0"))
    assert e.value.kind == "redirects"
    with pytest.raises(FetchError, match="redirect loop"):
        await fetcher().fetch(site.url("/loop-a"))


async def test_gzip_and_charsets_from_headers_or_the_page(site):
    words = "Café crème, déjà vu, naïve façade, über Größe, señor niño. " * 20
    site.static("/gz", article_html("Zürich café reopens", [words]), gzip_body=True)
    body_1252 = article_html("Zürich café reopens", [words], charset="windows-1252").encode("cp1252")
    site.static("/lying", body_1252, "text/html; charset=utf-8")  # header says UTF-8: it is not
    site.static("/nocharset", article_html("Zürich café reopens", [words], charset=None).encode("cp1252"), "text/html")
    site.static("/latin", body_1252, "text/html; charset=windows-1252")
    f = fetcher()
    for path in ("/gz", "/lying", "/nocharset", "/latin"):
        res = await f.fetch(site.url(path))
        text = res.text()
        assert "Café crème, déjà vu" in text and "\ufffd" not in text, path
    assert site.hits_to("/gz")[0].headers["Accept-Encoding"].startswith("gzip")
    text = "Un café crème, déjà vu, à la façade. " * 5
    assert decode_body(text.encode("cp1252"), "no-such-charset")[0] == text  # an unknown name: detected instead


def test_only_http_and_https(tmp_path):
    f = fetcher()
    for url, msg in [("ftp://example.com/x", "only http and https"), ("file:///etc/passwd", "only http and https"),
                     ("javascript:alert(1)", "only http and https"), ("http://", "no host")]:
        with pytest.raises(FetchError, match=msg):
            asyncio.run(f.fetch(url))


# ------------------------------------------------------------------ private addresses


def test_public_address_classification():
    for ip in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "::1", "fe80::1",
               "224.0.0.1", "0.0.0.0", "100.64.0.1", "::ffff:127.0.0.1", "fc00::1", "240.0.0.1"):
        assert not is_public_address(ip), ip
    for ip in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert is_public_address(ip), ip


async def test_private_addresses_are_refused_unless_allowed(site):
    site.static("/admin", "router admin page")
    strict = fetcher(allow_private=False)
    for url in (site.url("/admin"), f"http://localhost:{site.port}/admin", "http://169.254.169.254/latest/meta-data/",
                f"http://[::1]:{site.port}/admin"):
        with pytest.raises(FetchError, match="refused: .* private, local or reserved") as e:
            await strict.fetch(url)
        assert e.value.kind == "refused"
    assert site.hits == []  # nothing was sent
    assert (await fetcher(allow_private=True).fetch(site.url("/admin"))).content == b"router admin page"


class PublicNameTransport(httpx.AsyncBaseTransport):
    """'news.example' is a public site that redirects to the local server; anything else goes to the network
    (here only 127.0.0.1)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[httpx.Request] = []
        self.real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers["host"] == "news.example":
            assert request.url.host == "93.184.216.34"  # connects to the address that was checked
            return httpx.Response(302, headers={"Location": self.target})
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


async def test_a_redirect_from_a_public_name_to_127_0_0_1_is_refused(site, caplog):
    site.static("/secret", "the admin's router")

    async def resolver(host, port):
        return {"news.example": ["93.184.216.34"]}.get(host) or ["127.0.0.1"]

    transport = PublicNameTransport(site.url("/secret"))
    strict = fetcher(allow_private=False, resolver=resolver, transport=transport)
    with caplog.at_level(logging.WARNING, logger="bot.sources.fetch"):
        with pytest.raises(FetchError) as e:
            await strict.fetch("http://news.example/story")
    assert e.value.kind == "refused" and "127.0.0.1" in str(e.value)
    assert "reached by a redirect from http://news.example/story" in str(e.value)
    assert site.hits == [] and len(transport.requests) == 1
    assert any("refused" in r.message and "/secret" in r.message for r in caplog.records)
    # the same chain with FETCH_ALLOW_PRIVATE reaches the local server: the refusal above was the check
    allowed = fetcher(allow_private=True, resolver=resolver, transport=PublicNameTransport(site.url("/secret")))
    res = await allowed.fetch("http://news.example/story")
    assert res.content == b"the admin's router" and [h.path for h in site.hits] == ["/secret"]


def test_fetch_allow_private_is_off_by_default(tmp_path):
    s = Settings(_env_file=None, data_dir=tmp_path)
    assert s.fetch_allow_private is False and FetchConfig.from_settings(s).allow_private is False


# ------------------------------------------------------------------ MockTransport unit cases


def test_conditional_headers_and_user_agent_with_contact(tmp_path):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304)

    s = settings(tmp_path, fetch_contact="admin@news.example")
    f = Fetcher(FetchConfig.from_settings(s), transport=httpx.MockTransport(handler))
    res = asyncio.run(f.fetch("http://93.184.216.34/feed", etag='"abc"', last_modified="Tue, 01 Dec 2026 08:00:00 GMT"))
    assert res.not_modified
    [req] = seen
    assert req.headers["If-None-Match"] == '"abc"' and req.headers["If-Modified-Since"].startswith("Tue")
    assert req.headers["User-Agent"].startswith("Precis/") and "+admin@news.example" in req.headers["User-Agent"]


def test_one_request_at_a_time_per_host_with_a_pause():
    times: list[tuple[str, float, float]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        start = time.monotonic()
        await asyncio.sleep(0.05)
        times.append((request.url.host, start, time.monotonic()))
        return httpx.Response(200, text="ok")

    f = fetcher(transport=httpx.MockTransport(handler), host_pause=0.2)

    async def go():
        await asyncio.gather(*(f.fetch(f"http://93.184.216.34/{i}") for i in range(3)),
                             f.fetch("http://8.8.8.8/other"))

    asyncio.run(go())
    same = sorted((s, e) for h, s, e in times if h == "93.184.216.34")
    assert len(same) == 3
    for (s1, e1), (s2, _) in zip(same, same[1:]):
        assert s2 >= e1 + 0.18  # one at a time, paused between
    other = next(s for h, s, _ in times if h == "8.8.8.8")
    assert other < same[1][0]  # another host is not held up


# ------------------------------------------------------------------ identity and parsing


def test_normalised_links_drop_tracking_and_fragments():
    assert normalise_link("HTTPS://News.Example:443/a/b?utm_source=x&id=3&UTM_medium=y#top") == "https://news.example/a/b?id=3"
    assert normalise_link("http://news.example:8080") == "http://news.example:8080/"
    assert normalise_link("mailto:x@y") is None and normalise_link("") is None


def test_item_identity_guid_then_link_then_title_and_date():
    a = FeedItem("g1", "http://n.example/a?utm_source=rss", "A", None, "", "")
    b = FeedItem(None, "http://n.example/b#c", "B", None, "", "")
    c = FeedItem(None, None, "C", "2026-12-01T00:00:00Z", "", "")
    assert item_keys([a, b, c]) == [["guid:g1", "link:http://n.example/a"], ["link:http://n.example/b"],
                                    [item_keys([c])[0][0]]]
    assert item_keys([c])[0][0].startswith("td:")
    # a guid (or link) that repeats inside the feed identifies nothing: the next kind is used
    same_guid = [FeedItem("x", f"http://n.example/{i}", f"T{i}", None, "", "") for i in range(3)]
    assert [k[0] for k in item_keys(same_guid)] == [f"link:http://n.example/{i}" for i in range(3)]
    home = [FeedItem(None, "http://n.example/", f"T{i}", f"2026-12-0{i + 1}", "", "") for i in range(3)]
    assert all(k[0].startswith("td:") for k in item_keys(home)) and len({k[0] for k in item_keys(home)}) == 3


def test_parse_feed_errors_are_clear():
    with pytest.raises(FeedError, match="not a feed: malformed XML"):
        parse_feed(b"<rss><channel><item><title>Broken</titl></item>")
    html = b'<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" href="/rss.xml"></head></html>'
    with pytest.raises(FeedError, match=r"HTML page; the page names its feed: http://n.example/rss.xml"):
        parse_feed(html, url="http://n.example/news")
    with pytest.raises(FeedError, match="empty"):
        parse_feed(b"  ")
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
      <entry><id>urn:1</id><title>One</title><link href="/one"/><updated>2026-12-01T10:00:00Z</updated>
      <content type="html">&lt;p&gt;Full text here.&lt;/p&gt;</content></entry></feed>"""
    parsed = parse_feed(atom, url="http://n.example/atom")
    [item] = parsed.items
    assert (item.guid, item.link, item.date, item.text) == ("urn:1", "http://n.example/one", "2026-12-01T10:00:00Z",
                                                            "Full text here.")


def test_backoff_doubles_from_five_minutes():
    assert [backoff_seconds(n) for n in (1, 2, 3, 4)] == [300, 600, 1200, 2400]
    assert backoff_seconds(30) == 24 * 3600 and backoff_seconds(1, retry_after=3600) == 3600


# ------------------------------------------------------------------ feeds: bad input never blocks


async def test_every_bad_feed_is_a_clear_line_in_the_log_and_in_feed_list(site, tmp_path, store, caplog):
    from bot.handlers.core import Handlers

    good = feed_items(site, [0, 1])
    site.static("/good.xml", rss(good), "application/rss+xml")
    site.static("/malformed.xml", "<?xml version='1.0'?><rss><channel><item><title>Oops</titl>", "application/rss+xml")
    site.static("/html.xml", article_html(*story(5)), "text/html")
    for code in (404, 410, 429, 500, 503):
        site.static(f"/status{code}.xml", "x", status=code)
    site.static("/loop.xml", "", status=302, headers={"Location": "/loop.xml"})

    site.stream("/huge.xml", b"<!--" + b"x" * 65529 + b"-->", 320, content_type="application/rss+xml")
    site.stream("/trickle.xml", b" ", 100, every=0.2, content_type="application/rss+xml")
    nolinks = [{"guid": f"nl-{i}", "title": story(10 + i)[0], "description": " ".join(story(10 + i)[1])}
               for i in range(2)]
    site.static("/nolinks.xml", rss(nolinks), "application/rss+xml")
    wrong_charset = rss([{"guid": "cs-1", "title": "Zürich café reopens", "description": "Café crème déjà vu. " * 10}])
    site.static("/charset.xml", wrong_charset.encode("utf-8"), "application/rss+xml; charset=iso-8859-1")

    expected = {
        "/malformed.xml": "not a feed: malformed XML",
        "/html.xml": "not a feed: the server sent an HTML page",
        "/status404.xml": "HTTP 404: not found",
        "/status410.xml": "HTTP 410: gone",
        "/status429.xml": "HTTP 429: too many requests",
        "/status500.xml": "HTTP 500: server error",
        "/status503.xml": "HTTP 503: server error",
        "/loop.xml": "redirect loop",
        "/huge.xml": "too large",
        "/trickle.xml": "timed out",
    }
    s = settings(tmp_path)
    sources = Sources(s, store, fetcher=fetcher(timeout=1.5, max_bytes=2 * 2**20))
    for path in ["/good.xml", *expected, "/nolinks.xml", "/charset.xml"]:
        store.add_feed(GLOBAL_GUILD, site.url(path))
    with caplog.at_level(logging.INFO, logger="bot.sources"):
        results = {r.url: r for r in await sources.poll_due()}
    assert len(results) == 13
    ok = results[site.url("/good.xml")]
    assert ok.status == "ok" and [n.title for n in ok.new] == [g["title"] for g in good]
    for path, message in expected.items():
        r = results[site.url(path)]
        assert r.status == "error" and message in r.error, (path, r.error)
        assert any(site.url(path) in rec.message and message in rec.message for rec in caplog.records), path
    nl = results[site.url("/nolinks.xml")]
    assert nl.status == "ok" and [n.title for n in nl.new] == [i["title"] for i in nolinks]
    assert all(n.url == site.url("/nolinks.xml") and "officials said" in n.text for n in nl.new)
    cs = results[site.url("/charset.xml")]
    assert cs.status == "ok" and "Café crème déjà vu" in cs.new[0].text  # the XML's own declaration wins

    listing = Handlers(app=None, sources=sources).feed_list(GLOBAL_GUILD).text
    blocks = {b.splitlines()[1].strip(): b for b in ("\n" + listing).split("\n[")[1:]}
    for path, message in expected.items():
        block = blocks[site.url(path)]
        assert "status: failing (1 in a row)" in block and message in block, path
    good_block = blocks[site.url("/good.xml")]
    assert "status: ok (2 new of 2 item(s))" in good_block and "items: 2" in good_block and "last error" not in good_block


async def test_failing_feed_backs_off_and_is_disabled_after_eleven_failures(tmp_path, store):
    clock = {"t": 1_000_000.0}

    def handler(request):
        return httpx.Response(500)

    sources = Sources(settings(tmp_path), store, fetcher=fetcher(transport=httpx.MockTransport(handler)),
                      clock=lambda: clock["t"])
    feed, _ = store.add_feed(GLOBAL_GUILD, "http://93.184.216.34/feed.xml", now=clock["t"])
    waits = []
    for n in range(1, DISABLE_AFTER + 1):
        [r] = await sources.poll_due(clock["t"])
        assert r.status == "error"
        f = store.feed(feed.id)
        waits.append(f.next_poll - clock["t"])
        assert f.failures == n and f.disabled == (n == DISABLE_AFTER)
        clock["t"] = f.next_poll
    assert waits[:4] == [BACKOFF_BASE_S, 2 * BACKOFF_BASE_S, 4 * BACKOFF_BASE_S, 8 * BACKOFF_BASE_S]
    assert await sources.poll_due(clock["t"] + 10**7) == []  # disabled: not polled again
    from bot.handlers.core import feed_lines

    assert "DISABLED after 11 failures" in feed_lines(store.feed(feed.id))
    assert "HTTP 500" in feed_lines(store.feed(feed.id))


async def test_an_item_is_never_added_twice(site, tmp_path, store):
    items = feed_items(site, [0, 1])
    site.static("/a.xml", rss(items), "application/rss+xml")
    # another feed carries story 1 under its own guid, with tracking parameters on the link
    copy = dict(items[1], guid="other-guid", link=items[1]["link"] + "?utm_source=feed-b#comments")
    state = {"b": [copy]}
    site.conditional("/b.xml", lambda: (str(len(state["b"])), rss(state["b"]).encode()))
    sources = Sources(settings(tmp_path), store, fetcher=fetcher())
    a, _ = store.add_feed(GLOBAL_GUILD, site.url("/a.xml"))
    b, _ = store.add_feed(7, site.url("/b.xml"))
    ra = await sources.poll(a)
    rb = await sources.poll(b)
    assert len(ra.new) == 2 and rb.new == [] and rb.status == "ok"
    # feed b drops the item, then brings it back: still not new
    state["b"] = []
    assert (await sources.poll(store.feed(b.id))).new == []
    state["b"] = [copy, *feed_items(site, [2])]
    rb = await sources.poll(store.feed(b.id))
    assert [n.title for n in rb.new] == [story(2)[0]]
    # removed and re-added, feed a brings nothing back either
    store.remove_feed(GLOBAL_GUILD, a.id)
    a2, created = store.add_feed(GLOBAL_GUILD, site.url("/a.xml"))
    assert created and (await sources.poll(a2)).new == []


# ------------------------------------------------------------------ extraction


def test_extraction_keeps_the_article_and_drops_the_page_furniture():
    title, paras = story(4)
    ex = extract_article(article_html(title, paras), "http://n.example/story")
    assert ex.title == title and ex.method == "trafilatura" and ex.author == "Sam Writer"
    assert ex.date == "2026-11-30"
    assert all(p in ex.text for p in paras) and "Most read" not in ex.text and "Copyright" not in ex.text


def test_a_paywall_stub_keeps_the_feed_text_and_says_so():
    title, paras = story(4)
    stub = article_html(title, ["Subscribe to continue reading this article."])
    feed_text = " ".join(paras)
    ex = extract_article(stub, "http://n.example/story", feed_title=title, feed_text=feed_text)
    assert ex.stub and ex.text == feed_text and "paywall or consent" in ex.note
    # a page with no text at all falls back to the feed's own content
    empty = extract_article("<html><body><nav>Home</nav></body></html>", None, feed_title=title, feed_text=feed_text)
    assert empty.method == "feed" and empty.text == feed_text and not empty.stub


def test_readability_fallback_when_trafilatura_finds_nothing(monkeypatch):
    import bot.sources.extract as ex_mod

    monkeypatch.setattr(ex_mod, "trafilatura_extract", lambda html, url=None: None)
    title, paras = story(2)
    ex = extract_article(article_html(title, paras), "http://n.example/s")
    assert ex.method == "readability" and paras[1] in ex.text


# ------------------------------------------------------------------ into the corpus and the digests

GUILD, OTHER_GUILD = 1, 2


async def test_the_first_poll_announces_nothing_and_later_items_reach_only_the_guilds_digest(site, fast_app_factory):
    from bot.engines.digest import DigestRunner
    from bot.store import Schedule
    from tests.test_digest import ChannelSender

    app = fast_app_factory()
    store = Store(app.settings.db_path)
    runner = DigestRunner(app, store, owner="test")
    runner.sync_articles()
    t0 = time.time()
    sub, _ = store.subscribe(GUILD, 10, Schedule.every(5), 42, now=t0)
    other, _ = store.subscribe(OTHER_GUILD, 20, Schedule.every(5), 42, now=t0)
    state = {"items": feed_items(site, [0, 1, 2]), "etag": "v1"}
    site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
    sources = Sources(app.settings, store, app=app, fetcher=fetcher())
    feed, _ = store.add_feed(GUILD, site.url("/feed.xml"))
    before = len(app.corpus)

    first = await sources.poll(feed)
    assert len(first.new) == 3 and len(app.corpus) == before + 3
    for n in first.new:
        art = app.corpus.get(n.article.id)
        assert art.guild_id == GUILD and art.url == n.url and app.article_row(art.id) is not None
    sender = ChannelSender()
    runner.tick(t0 + 301, sender)
    assert sender.messages == []  # the first poll announces nothing

    assert (await sources.poll(store.feed(feed.id))).status == "not-modified"
    state["items"] = feed_items(site, [3]) + state["items"]
    state["etag"] = "v2"
    third = await sources.poll(store.feed(feed.id))
    [new] = third.new
    assert new.title == story(3)[0]
    runner.tick(t0 + 602, sender)
    [msg] = sender.messages
    assert msg["channel"] == sub.channel_id and msg["articles"] == (new.article.id,)
    assert store.posts(other.id) == []  # the other guild is not told of this guild's feed
    assert [h.status for h in site.hits_to("/feed.xml")] == [200, 304, 200]
    f = store.feed(feed.id)
    assert (f.items, f.failures, f.last_error, f.title) == (4, 0, None, "The Daily Example")

    # after a restart the fetched articles load again, still the guild's, and are not announced again
    store.close()
    app2 = fast_app_factory()
    store2 = Store(app2.settings.db_path)
    runner2 = DigestRunner(app2, store2, owner="after-restart")
    fetched = [a for a in app2.corpus if a.guild_id == GUILD]
    assert sorted(a.id for a in fetched) == sorted(n.article.id for n in first.new + third.new)
    sender2 = ChannelSender()
    runner2.tick(t0 + 903, sender2)
    assert sender2.messages == []
    store2.close()


# ------------------------------------------------------------------ settings and the console


def test_feed_settings(tmp_path):
    from pydantic import ValidationError

    s = settings(tmp_path, feeds=" http://a.example/rss, https://b.example/atom ,, http://a.example/rss")
    assert s.feed_urls == ["http://a.example/rss", "https://b.example/atom"] and s.feed_interval_minutes == 15
    with pytest.raises(ValidationError):
        settings(tmp_path, feed_interval_minutes=4)


def test_the_feeds_setting_adds_and_removes_only_its_own_global_feeds(tmp_path, store, caplog):
    by_hand, _ = store.add_feed(GLOBAL_GUILD, "http://hand.example/rss")  # the console's or the CLI's
    Sources(settings(tmp_path, feeds="http://a.example/rss,ftp://nope.example/x"), store).sync_global_feeds()
    assert sorted(f.url for f in store.feeds(GLOBAL_GUILD)) == ["http://a.example/rss", "http://hand.example/rss"]
    assert any("FEEDS entry 'ftp://nope.example/x' skipped" in r.message for r in caplog.records)
    Sources(settings(tmp_path, feeds="http://b.example/rss"), store).sync_global_feeds()
    assert sorted(f.url for f in store.feeds(GLOBAL_GUILD)) == ["http://b.example/rss", "http://hand.example/rss"]


async def test_console_feed_commands_and_summary_of_a_link(site, fast_app_factory):
    from bot.adapters.console import handle_line
    from bot.handlers.core import Handlers

    app = fast_app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    handlers = Handlers(app, Sources(app.settings, store, app=app, fetcher=fetcher()))
    site.static("/feed.xml", rss(feed_items(site, [0, 1])), "application/rss+xml")
    url, title, _ = serve_story(site, 6, "/page.html")

    def say(line: str) -> str:
        return handle_line(handlers, line)  # the console is synchronous: run it off the server's loop

    out = await asyncio.to_thread(say, f"/feed add url:{site.url('/feed.xml')}")
    assert out.startswith("Feed added") and "2 item(s) added" in out
    out = await asyncio.to_thread(say, f"/feed add {site.url('/feed.xml')}")
    assert out.startswith("Feed already followed")
    out = await asyncio.to_thread(say, "/feed list")
    assert "status: ok (2 new of 2 item(s))" in out and site.url("/feed.xml") in out
    out = await asyncio.to_thread(say, f"/summary url:{url} length:2")
    assert out.startswith(f"Summary (extractive): {title}") and "Supporting sentences:" in out
    assert any(a.url == url and a.guild_id is None for a in app.corpus)  # the console's articles are global
    assert (await asyncio.to_thread(say, "/feed remove feed:1")).startswith("Feed removed")
    assert (await asyncio.to_thread(say, "/feed remove feed:1")).startswith("Error: No such feed here")
    assert (await asyncio.to_thread(say, "/feed frobnicate")).startswith("Usage: /feed takes add, edit, remove or list")
    assert (await asyncio.to_thread(say, "/summary url:ftp://x.example/a")).startswith("Error: I could not use that link")
    store.close()


async def test_the_same_page_twice_is_one_article_and_a_disabled_feed_can_be_added_again(site, fast_app_factory):
    app = fast_app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    sources = Sources(app.settings, store, app=app, fetcher=fetcher())
    url, title, paras = serve_story(site, 2, "/a.html")
    site.static("/mirror.html", article_html(title, paras))  # the same story at another address
    first = await sources.fetch_page(url, GUILD)
    again = await sources.fetch_page(url + "?utm_source=chat#top", GUILD)  # the same link, tracked: not fetched
    mirror = await sources.fetch_page(site.url("/mirror.html"), GUILD)
    assert first.article.id == again.article.id == mirror.article.id
    assert len(site.hits_to("/a.html")) == 1 and sum(a.url == url for a in app.corpus) == 1

    feed, _ = store.add_feed(GUILD, site.url("/feed.xml"))  # 404 for now
    for _ in range(DISABLE_AFTER):
        await sources.poll(store.feed(feed.id))
    assert store.feed(feed.id).disabled
    site.static("/feed.xml", rss(feed_items(site, [3])), "application/rss+xml")
    again, added, result = await asyncio.to_thread(sources.add_feed, GUILD, site.url("/feed.xml"))
    assert added and not again.disabled and again.failures == 0 and [n.title for n in result.new] == [story(3)[0]]
    assert "HTTP 404" in again.last_error  # the last error stays visible
    store.close()
