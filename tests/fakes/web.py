"""A small web server on 127.0.0.1 for the fetch and feed tests (aiohttp).

Routes are plain async handlers keyed by path; every request is recorded
(method, path, the headers that matter here, the status answered), so a test
can check what the bot sent: its User-Agent, its conditional headers.
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass
from email.utils import formatdate
from typing import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None

    def line(self) -> str:
        cond = " ".join(f"{k}: {v}" for k, v in self.headers.items() if k.lower().startswith("if-"))
        return f"{self.method} {self.path} -> {self.status}" + (f"  [{cond}]" if cond else "")


class WebServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: list[Hit] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --------------------------------------------------------------- routes
    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def static(self, path: str, body: bytes | str, content_type: str = "text/html; charset=utf-8", *,
               status: int = 200, headers: dict[str, str] | None = None, gzip_body: bool = False) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body

        async def handler(request: web.Request) -> web.StreamResponse:
            h = {"Content-Type": content_type, **(headers or {})}
            payload = data
            if gzip_body:
                payload = gzip.compress(data)
                h["Content-Encoding"] = "gzip"
            return web.Response(body=payload, status=status, headers=h)

        self.route(path, handler)

    def stream(self, path: str, chunk: bytes, count: int, *, every: float = 0.0,
               content_type: str = "text/html") -> None:
        """``count`` chunks with no Content-Length, ``every`` seconds apart: a huge body, or a trickle."""

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": content_type})
            await resp.prepare(request)
            try:
                for _ in range(count):
                    await resp.write(chunk)
                    if every:
                        await asyncio.sleep(every)
            except (ConnectionResetError, RuntimeError):  # the client gave up, as it should
                pass
            return resp

        self.route(path, handler)

    def conditional(self, path: str, get_body: Callable[[], tuple[str, bytes]],
                    content_type: str = "application/rss+xml; charset=utf-8") -> None:
        """A resource with an ETag (``get_body() -> (etag, body)``): 304 when the client's matches."""

        async def handler(request: web.Request) -> web.StreamResponse:
            etag, body = get_body()
            tag = f'"{etag}"'
            headers = {"ETag": tag, "Last-Modified": formatdate(1_700_000_000, usegmt=True)}
            if request.headers.get("If-None-Match") == tag:
                return web.Response(status=304, headers=headers)
            return web.Response(body=body, headers={"Content-Type": content_type, **headers})

        self.route(path, handler)

    # --------------------------------------------------------------- serving
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits_to(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        keep = {k: v for k, v in request.headers.items()
                if k.lower() in ("user-agent", "if-none-match", "if-modified-since", "accept-encoding", "host")}
        hit = Hit(request.method, request.path_qs, keep)
        self.hits.append(hit)
        handler = self.routes.get(request.path)
        if handler is None:
            hit.status = 404
            return web.Response(status=404, text="not found")
        try:
            resp = await handler(request)
        except (ConnectionResetError, asyncio.CancelledError):
            hit.status = -1
            raise
        hit.status = resp.status
        return resp

    async def __aenter__(self) -> WebServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# ------------------------------------------------------------------ content


def article_html(title: str, paragraphs: list[str], *, charset: str | None = "utf-8", extra_head: str = "") -> str:
    meta = f'<meta charset="{charset}">' if charset else ""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html><head>{meta}<title>{title} | The Daily Example</title>
<meta property="og:title" content="{title}">
<meta name="author" content="Sam Writer">
<meta property="article:published_time" content="2026-11-30T08:00:00Z">{extra_head}
</head><body>
<header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav></header>
<main><article><h1>{title}</h1>
{body}
</article></main>
<aside><h3>Most read</h3><ul><li><a href="/x">Something else entirely</a></li></ul></aside>
<footer><p>Copyright The Daily Example. All rights reserved.</p></footer>
</body></html>"""


def story(n: int) -> tuple[str, list[str]]:
    """A distinct, plausible news story (title, paragraphs) for item ``n``."""
    places = ["Lisbon", "Osaka", "Nairobi", "Quito", "Tallinn", "Perth", "Accra", "Bergen"]
    things = ["tram line", "harbour bridge", "water plant", "library", "solar farm", "ferry terminal", "hospital wing",
              "cycle lane"]
    p, t = places[n % len(places)], things[(n * 3) % len(things)]
    title = f"{p} opens its new {t} after {n + 2} years of work"
    paras = [
        f"The city of {p} opened its new {t} on Monday, {n + 2} years after construction began, officials said.",
        f"The project cost {n + 11} million euros and was paid for by the regional government and a European fund.",
        f"Residents of {p} had waited a long time, and several hundred of them came to see the {t} on its first day.",
        f"The mayor said the {t} would serve the city for decades and thanked the workers who built it.",
    ]
    return title, paras


def rss(items: list[dict], title: str = "The Daily Example") -> str:
    """An RSS 2.0 document; each item dict may hold guid, link, title, description, pubDate."""
    out = []
    for it in items:
        parts = []
        for key in ("title", "link", "guid", "description", "pubDate"):
            if it.get(key) is not None:
                val = it[key]
                if key == "description":
                    val = f"<![CDATA[{val}]]>"
                attr = ' isPermaLink="false"' if key == "guid" and not str(val).startswith("http") else ""
                parts.append(f"<{key}{attr}>{val}</{key}>")
        out.append("<item>" + "".join(parts) + "</item>")
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{title}</title>'
            f"<link>http://example.invalid/</link><description>news</description>{''.join(out)}</channel></rss>")
