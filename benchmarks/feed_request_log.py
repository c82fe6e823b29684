"""The requests one feed poll after another sends: 200, then 304 (conditional), then 200 with one new item.

    python benchmarks/feed_request_log.py

Serves a three-item RSS feed (with ETag and Last-Modified) and its article
pages from a local web server on 127.0.0.1, polls it three times through the
bot's own ``Sources.poll`` (a fresh SQLite state in a temporary folder), adds
one item before the third poll, and prints every request the server saw, with
the headers that matter, and what each poll reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def story_page(n: int) -> str:
    return (f"<html><head><meta charset='utf-8'><title>Story {n}</title></head><body><article><h1>Story {n}</h1>"
            + "".join(f"<p>Paragraph {i} of story {n}: the council met on Monday and voted on the plan, "
                      f"officials said.</p>" for i in range(4)) + "</article></body></html>")


def rss(ns: list[int], base: str) -> str:
    items = "".join(f"<item><title>Story {n}</title><link>{base}/story/{n}</link><guid isPermaLink='false'>s{n}</guid>"
                    f"<description>Story {n} in short.</description></item>" for n in ns)
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>Demo feed</title>{items}</channel></rss>"


async def main() -> int:
    from aiohttp import web

    from bot.config import Settings
    from bot.sources.fetch import FetchConfig, Fetcher
    from bot.sources.service import Sources
    from bot.store import GLOBAL_GUILD, Store

    state = {"items": [1, 2, 3], "etag": '"v1"', "modified": formatdate(1_764_576_000, usegmt=True)}
    log: list[str] = []
    base = ""

    async def feed(request):
        cond = {k: v for k, v in request.headers.items() if k in ("If-None-Match", "If-Modified-Since")}
        headers = {"ETag": state["etag"], "Last-Modified": state["modified"]}
        if request.headers.get("If-None-Match") == state["etag"]:
            resp = web.Response(status=304, headers=headers)
        else:
            resp = web.Response(text=rss(state["items"], base), content_type="application/rss+xml", headers=headers)
        log.append(f"GET {request.path} -> {resp.status}  {cond or '(unconditional)'}  "
                   f"User-Agent: {request.headers.get('User-Agent')}")
        return resp

    async def page(request):
        log.append(f"GET {request.path} -> 200")
        return web.Response(text=story_page(int(request.match_info["n"])), content_type="text/html")

    app = web.Application()
    app.router.add_get("/feed.xml", feed)
    app.router.add_get("/story/{n}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), fetch_allow_private=True,
                            fetch_contact="https://example.org/precis-bot")
        store = Store(settings.db_path)
        config = dataclasses.replace(FetchConfig.from_settings(settings), host_pause=0.0)
        sources = Sources(settings, store, fetcher=Fetcher(config))
        f, _ = store.add_feed(GLOBAL_GUILD, base + "/feed.xml")
        for poll in (1, 2, 3):
            if poll == 3:
                state.update(items=[4, 1, 2, 3], etag='"v2"', modified=formatdate(1_764_579_600, usegmt=True))
                log.append("(the feed gains one item, story 4)")
            log.append(f"-- poll {poll}")
            r = await sources.poll(store.feed(f.id))
            log.append(f"   poll {poll}: {r.status}, new: {[n.title for n in r.new]}, "
                       f"stored ETag {store.feed(f.id).etag}")
        store.close()
    await runner.cleanup()
    print("\n".join(log).replace(base, ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
