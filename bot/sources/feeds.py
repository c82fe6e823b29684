"""RSS/Atom feeds: parsing fetched bytes (feedparser), item identity, back-off.

Plain synchronous Python, no I/O; :mod:`bot.sources.service` does the polling.

Identity (after MonitoRSS): an item is its ``guid``, else its normalised link
(scheme and host lower-cased, default port, ``utm_*`` parameters and the
fragment dropped), else a hash of its title and date. A kind of id that
repeats inside one feed (every item with the same guid, or the same link to
the front page) says nothing, so it is not used for that feed. Every key an
item has (guid *and* link) is remembered, so the same story carried by two
feeds with different guids is still one item.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

BACKOFF_BASE_S = 5 * 60.0  # 5 min x 2^n after the n-th failure in a row (MonitoRSS)
BACKOFF_MAX_S = 24 * 3600.0
DISABLE_AFTER = 11  # failures in a row, then the feed is disabled until re-added
JITTER = 0.1  # polls spread by +-10% of the interval
FEED_ACCEPT = "application/rss+xml,application/atom+xml,application/feed+json;q=0.9,application/xml;q=0.9,text/xml;q=0.8,*/*;q=0.5"


class FeedError(ValueError):
    """The bytes are not a usable feed; the message says why."""


@dataclass(frozen=True)
class FeedItem:
    guid: str | None
    link: str | None
    title: str
    date: str | None  # ISO 8601 UTC
    summary: str  # plain text
    content: str  # plain text of the fullest content the item carries (may equal the summary)

    @property
    def text(self) -> str:
        return self.content if len(self.content) >= len(self.summary) else self.summary


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    items: tuple[FeedItem, ...]
    warning: str | None = None  # a problem feedparser recovered from


# ------------------------------------------------------------------ identity


def normalise_link(url: str | None, base: str | None = None) -> str | None:
    """The link without tracking parameters (utm_*) or fragment, scheme and host lower-cased."""
    if not url or not url.strip():
        return None
    url = urljoin(base, url.strip()) if base else url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        netloc = f"[{host}]" + ("" if netloc == host else netloc[len(host):])
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not k.lower().startswith("utm_")])
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _td_key(item: FeedItem) -> str:
    return "td:" + hashlib.sha1(f"{' '.join(item.title.split()).lower()}\n{item.date or ''}".encode()).hexdigest()


def item_keys(items: list[FeedItem] | tuple[FeedItem, ...]) -> list[list[str]]:
    """The identity keys of each item, the primary one first (see the module docstring)."""
    guids = Counter(i.guid for i in items if i.guid)
    links = Counter(normalise_link(i.link) for i in items if normalise_link(i.link))
    out = []
    for item in items:
        keys = []
        if item.guid and guids[item.guid] == 1:
            keys.append("guid:" + item.guid)
        link = normalise_link(item.link)
        if link and links[link] == 1:
            keys.append("link:" + link)
        if not keys:
            keys.append(_td_key(item))
        out.append(keys)
    return out


def page_key(url: str) -> str:
    """The key a pasted page is remembered by (the same as a feed item linking to it)."""
    return "link:" + (normalise_link(url) or url)


def article_id_for(key: str) -> str:
    """A stable article id for an item key (the same item -> the same id after a restart)."""
    return "w" + hashlib.sha1(key.encode()).hexdigest()[:11]


# ------------------------------------------------------------------ parsing

_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html)", re.IGNORECASE | re.DOTALL)
_ALTERNATE = re.compile(
    r"""<link[^>]+type=["']application/(?:rss|atom)\+xml["'][^>]*>""", re.IGNORECASE)
_HREF = re.compile(r"""href=["']([^"']+)["']""", re.IGNORECASE)


def _iso(struct) -> str | None:
    if not struct:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(struct)))
    except (TypeError, ValueError, OverflowError):
        return None


def _plain(html: str | None) -> str:
    from .extract import html_to_text

    return html_to_text(html or "")


def parse_feed(content: bytes, headers: dict[str, str] | None = None, url: str | None = None) -> ParsedFeed:
    """Parse fetched bytes as RSS/Atom; :class:`FeedError` when they are not a feed."""
    import feedparser

    if not content.strip():
        raise FeedError("the feed is empty (no bytes)")
    if _HTML_START.match(content[:2048]):
        head = content[:65536].decode("utf-8", "replace")
        alt = _ALTERNATE.search(head)
        hint = ""
        if alt:
            href = _HREF.search(alt.group(0))
            if href:
                hint = f"; the page names its feed: {urljoin(url or '', href.group(1))}"
        raise FeedError("not a feed: the server sent an HTML page" + hint)
    d = feedparser.parse(content, response_headers={k: v for k, v in (headers or {}).items()
                                                      if k in ("content-type", "content-location")})
    problem = None
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        problem = f"{exc.__class__.__name__}: {exc}"[:200] if exc else "malformed"
    if not d.get("version") and not d.entries:
        raise FeedError(f"not a feed: malformed XML ({problem})" if problem else "not a feed (no RSS or Atom found)")
    if problem and not any(e.get("title") or e.get("link") or e.get("summary") for e in d.entries):
        raise FeedError(f"not a feed: malformed XML ({problem})")  # feedparser recovered nothing usable
    items = []
    for e in d.entries:
        link = e.get("link") or None
        if not link:
            link = next((l.get("href") for l in e.get("links") or [] if l.get("href")), None)
        if link and url:
            link = urljoin(url, link)
        summary = _plain(e.get("summary"))
        contents = [_plain(c.get("value")) for c in e.get("content") or []]
        content_text = max(contents, key=len) if contents else summary
        title = " ".join((e.get("title") or "").split())
        guid = (e.get("id") or "").strip() or None
        date = _iso(e.get("published_parsed") or e.get("updated_parsed"))
        if not (title or summary or content_text or link):
            continue
        items.append(FeedItem(guid, link, title, date, summary, content_text))
    warning = f"the feed is malformed but was read ({problem})" if problem else None
    return ParsedFeed(" ".join((d.feed.get("title") or "").split()), tuple(items), warning)


# ------------------------------------------------------------------ schedule


def backoff_seconds(failures: int, retry_after: float | None = None) -> float:
    """The wait after the ``failures``-th failure in a row: 5 min x 2^(n-1), at most a day,
    never shorter than the server's own Retry-After."""
    wait = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return max(wait, min(retry_after or 0.0, BACKOFF_MAX_S))


def next_poll_after(now: float, interval_minutes: float, rng: random.Random | None = None) -> float:
    """The next regular poll: the interval, jittered so feeds do not all poll at once."""
    r = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return now + interval_minutes * 60.0 * r


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) in seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
