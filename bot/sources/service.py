"""Feeds and pasted links become articles: polling, deduplication, ingestion.

:class:`Sources` ties the fetcher, the extractor, the feed parser and the
SQLite store together. Plain Python (asyncio for the network, no Discord);
the bot, the console and the batch CLI all use it.

* A poll sends a conditional request (the feed's ETag / Last-Modified); a
  304 costs nothing. New items (no identity key seen before, in any feed) have
  their page fetched and extracted; the feed's own text is the fallback.
* A failing poll backs off 5 min x 2^n and the feed is disabled after
  :data:`~bot.sources.feeds.DISABLE_AFTER` failures in a row; the error is
  kept for ``/feed list`` and logged with the feed and its guild. One feed's
  failure never stops another's poll.
* The first successful poll of a new feed adds its items to the corpus but
  registers them with ``announce = 0``: digests announce only what arrives
  afterwards.
* Articles get ``guild_id`` (None: global) and are appended to
  ``DATA_DIR/fetched/articles.jsonl``, which :meth:`Precis.load` reads with
  the corpus after a restart. With PostgreSQL (``DATABASE_URL``) they are kept
  in the store instead, where every process finds them:
  :meth:`Sources.sync_fetched` adds the ones other processes fetched (the bot
  calls it every few seconds; it reads only what came after the last one seen).
* Each feed is polled by one process at a time: a poll first takes the feed's
  lease in the store (:meth:`Store.lease_feeds`); recording the poll ends it.
* **One request per URL.** A ``feeds`` row is one server's copy of a URL (its
  filters, its item count); the URL (validators, back-off, errors, the lease,
  the items last read) is one ``feed_urls`` row. A poll fetches the URL once and
  gives its items to every copy through that copy's own filter
  (:meth:`Sources._deliver`). A server that adds a URL others follow gets the
  items kept from the last read when that read is within the interval (no
  request); otherwise its add polls the URL (for every copy), and a tick that
  had already leased the URL does not read it again (it compares the URL's poll
  count with the one it leased).
* A page read only to apply filters, for an item no copy's filter passes, is
  kept in the store (``feed_pages``): a server that follows the feed later is
  judged on it (and gets its article from it) without a second request.
* With PostgreSQL the fetcher's per-host turns (one request at a time, then the
  pause) are claimed in the store (:class:`StoreTurns`), so they hold across
  processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from ..corpus.article import Article
from ..jsonl import dumps_line
from ..store import GLOBAL_GUILD, Feed, Store, StoreError
from ..store.db import url_host
from .extract import MIN_WORDS, Extracted, extract_article, word_count
from .feeds import (
    DISABLE_AFTER,
    FEED_ACCEPT,
    FeedError,
    FeedItem,
    article_id_for,
    backoff_seconds,
    item_keys,
    next_poll_after,
    normalise_link,
    page_key,
    parse_feed,
    retry_after_seconds,
)
from .fetch import FetchConfig, FetchError, Fetcher, HostGate
from .filters import FeedFilter, FilterError, parse_terms

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2000
MAX_CONCURRENT_POLLS = 4  # polls at once (one per host: the fetcher lets one request at a time go to a host)
POLL_BUDGET_S = 45.0  # one feed tick polls for about this long; what is left goes to the next tick
FROM_SETTINGS = 0  # added_by of the feeds that come from the FEEDS setting
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
SHARES_EVERY_S = 30.0  # PostgreSQL: how often other processes' guild shares are read again
PRUNE_EVERY_S = 3600.0  # how often a process drops old kept pages and idle hosts (Store.prune_feed_state)


class SourceError(ValueError):
    """A link or feed that cannot be used; the message is for the user."""


@dataclass(frozen=True)
class FetchedItem:
    """One article a page or a feed gave (what ``python -m bot fetch`` prints)."""

    url: str
    title: str
    date: str | None
    text: str
    source: Literal["page", "feed"]
    feed: str | None
    article: Article | None = None
    method: str = "trafilatura"
    note: str | None = None
    key: str = ""

    def to_json(self) -> dict:
        return {"url": self.url, "title": self.title, "date": self.date, "text": self.text,
                "source": self.source, "feed": self.feed}


@dataclass
class PollResult:
    feed_id: int
    url: str
    status: Literal["ok", "not-modified", "error"]
    new: list[FetchedItem] = field(default_factory=list)
    items: int = 0  # items in the feed
    error: str | None = None
    failed_items: list[tuple[str, str]] = field(default_factory=list)  # (url, error) of pages that failed
    lost: list[tuple[str, str]] = field(default_factory=list)  # of those, the ones left with no article (retried)
    filtered: int = 0  # new items the feed's filters kept out
    shared: int = 0  # items already fetched (for another server, or by another feed) that reach this server now


@dataclass
class _Outcome:
    """What one read of a URL gave one server's copy of it."""

    new: list[FetchedItem] = field(default_factory=list)
    shared: int = 0
    kept_out: list[list[str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)

    @property
    def added(self) -> int:
        return len(self.new) + self.shared

    def line(self, n_items: int) -> str:
        """The copy's status line (/feed list)."""
        if not n_items:
            return "the feed has no items"
        status = f"{self.added} new of {n_items} item(s)"
        if self.failed:
            status += f"; {len(self.failed)} page(s) failed ({self.failed[0][1][:80]})"
        if self.lost:
            status += f", {len(self.lost)} to retry"
        if self.kept_out:
            status += f"; {len(self.kept_out)} filtered out"
        return status

    def result(self, feed: Feed, n_items: int) -> PollResult:
        return PollResult(feed.id, feed.url, "ok", self.new, n_items, None, self.failed, self.lost,
                          len(self.kept_out), self.shared)


# seen_items key prefix of an item one server's copy of a feed kept out by its filter: 'filtered:<feed id>:<item key>'
# (a feeds row id: one server's copy of one URL; ids are never reused, so a copy removed and added again starts clean)
FILTERED = "filtered:"


def filtered_key(feed_id: int, key: str) -> str:
    return f"{FILTERED}{feed_id}:{key}"


def feed_filter(feed: Feed) -> FeedFilter:
    return FeedFilter(tuple(feed.include), tuple(feed.exclude))


def parse_filters(include: str | None, exclude: str | None) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Option text -> terms (None: not given, so unchanged); :class:`SourceError` saying what is wrong."""
    try:
        inc = None if include is None else parse_terms(include, "include")
        exc = None if exclude is None else parse_terms(exclude, "exclude")
    except FilterError as err:
        raise SourceError(str(err)) from None
    return inc, exc


def check_url(url: str | None) -> str:
    """A link a user gave, cleaned, or :class:`SourceError` saying what is wrong with it."""
    url = (url or "").strip().strip("<>").strip()
    if not url:
        raise SourceError("Give a link (http:// or https://).")
    if len(url) > MAX_URL_CHARS:
        raise SourceError(f"That link is too long (at most {MAX_URL_CHARS} characters).")
    if "://" not in url:
        url = "https://" + url
    if not normalise_link(url):
        raise SourceError(f"{url[:100]!r} is not an http(s) link.")
    return url


def run_sync(coro):
    """Run a coroutine to its end from synchronous code (worker threads, the console, the CLI)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="precis-fetch")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class StoreTurns:
    """The fetcher's per-host turns shared through the store (``feed_hosts``; see
    :meth:`Store.claim_host`): with several processes on one PostgreSQL, one request at a time per host
    and the pause after it hold across all of them. ``hold``: how long a turn outlives a process that
    died holding it (the fetch's time limit, the pause and a margin)."""

    def __init__(self, store: Store, holder: str, *, hold: float, pause: float) -> None:
        self.store, self.holder, self.hold, self.pause = store, holder, float(hold), float(pause)

    def claim(self, host: str) -> float | None:
        return self.store.claim_host(host, self.holder, self.hold)

    def free(self, host: str) -> None:
        self.store.free_host(host, self.holder, self.pause)


class Sources:
    def __init__(self, settings, store: Store, *, app=None, fetcher: Fetcher | None = None,
                 follow_links: bool = True, clock=time.time) -> None:
        self.settings = settings
        self.store = store
        self.app = app
        self.fetcher = fetcher or Fetcher(FetchConfig.from_settings(settings))
        self.follow_links = follow_links
        self.clock = clock
        self._write_lock = threading.Lock()
        self._polling: set[int] = set()
        self._poll_lock = threading.Lock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"  # holder of feed leases
        self._fetched_seq = 0  # the last fetched article read from the store (PostgreSQL)
        self._cache_start = 0  # INDEX_URL: the fetched articles up to this seq are read from the index, not held
        if app is not None and getattr(app, "shared_index", None) is not None and getattr(store, "is_postgres", False):
            # INDEX_URL: the index holds the archive; this process's memory holds only the newest CACHE_ARTICLES
            try:
                self._fetched_seq = self._cache_start = store.fetched_seq_keeping(settings.cache_articles)
            except Exception as exc:  # noqa: BLE001 - not reachable yet: read them all, the cache cap trims them
                log.warning("feeds: where the newest %d articles start in the database is unknown yet (%s)",
                            settings.cache_articles, exc)
        self._fetched_lock = threading.Lock()
        self._shares_at = time.monotonic()  # shares were loaded just now (reload_shares, below)
        self._prune_at = 0.0  # the first tick prunes (poll_due)
        self.on_poll = None  # told each poll's PollResult (the bot's metrics)
        gate = getattr(self.fetcher, "gate", None)
        if getattr(store, "is_postgres", False) and isinstance(gate, HostGate) and gate.shared is None:
            # several processes on one database: a host's turn (one request, then the pause) is theirs together
            timeout = float(getattr(getattr(self.fetcher, "config", None), "timeout", 20.0))
            gate.shared = StoreTurns(store, self.owner, hold=timeout + gate.pause + 5.0, pause=gate.pause)
        self.reload_shares()

    def reload_shares(self) -> None:
        """Which guilds' feeds and links also brought an article (kept across restarts, and shared by
        every process with PostgreSQL). Later, when the database is not reachable yet."""
        if self.app is None:
            return
        try:
            self.app.scopes.load(self.store.shared_articles())
        except StoreError as exc:
            log.warning("feeds: guild shares not loaded yet (%s)", exc)

    def _share(self, article_id: str, guild_id: int | None) -> None:
        """A guild's source (0/None: a global one) brought an article another source added first: it may see it."""
        self.store.share_article(article_id, guild_id or 0)
        if self.app is not None:
            self.app.scopes.share(article_id, guild_id or 0)

    # ------------------------------------------------------------ feeds
    def sync_global_feeds(self) -> None:
        """The FEEDS setting -> the global feeds (added, or removed when no longer listed)."""
        wanted = []
        for u in self.settings.feed_urls:
            try:
                wanted.append(check_url(u))
            except SourceError as exc:
                log.error("feeds: FEEDS entry %r skipped: %s", u[:200], exc)
        have = {f.url: f for f in self.store.feeds(GLOBAL_GUILD)}
        for url in wanted:
            if url not in have:
                self.store.add_feed(GLOBAL_GUILD, url, FROM_SETTINGS, self.clock())
                log.info("feeds: added %s from FEEDS", url)
        for url, f in have.items():
            if url not in wanted and f.added_by == FROM_SETTINGS:
                self.store.remove_feed(GLOBAL_GUILD, f.id)
                log.info("feeds: removed %s (no longer in FEEDS)", url)

    def add_feed(self, guild_id: int, url: str, user_id: int | None = None, *, include: str | None = None,
                 exclude: str | None = None) -> tuple[Feed, bool, PollResult]:
        """Add a feed (or enable a disabled one again) and poll it once; returns (feed, added, first poll).
        ``include`` / ``exclude``: its filters, comma-separated words or phrases (see :mod:`.filters`).
        :class:`SourceError` when a new one gives no feed (it is not kept then) or a filter is bad."""
        url = check_url(url)
        inc, exc = parse_filters(include, exclude)
        existing = next((f for f in self.store.feeds(guild_id) if f.url == url), None)
        if existing is not None and not existing.disabled:
            return existing, False, PollResult(existing.id, url, "ok", items=existing.items)
        feed, created = self.store.add_feed(guild_id, url, user_id, self.clock(), include=inc or (), exclude=exc or ())
        if not created:  # it was disabled after repeated failures: adding it again retries it
            if inc is not None or exc is not None:
                feed = self.store.set_feed_filters(guild_id, feed.id, include=inc, exclude=exc) or feed
            self.store.enable_feed(feed.id, self.clock())
            feed = self.store.feed(feed.id) or feed
            log.info("feeds: %s (guild %s) enabled again", url, guild_id)
        # One request per URL: a URL other servers follow, read in full within the interval, is not
        # requested again; this server gets the items kept from that read, through its own filter.
        result = run_sync(self.poll(feed))
        if result is None:  # another process is polling it this moment: its poll is the first one
            result = self._await_other_poll(feed)
            now_feed = self.store.feed(feed.id)
            if now_feed is not None and not now_feed.primed and result.status != "error":
                # that poll began before this copy existed: give it the items that poll kept
                result = run_sync(self.poll(now_feed)) or result
        if result.status == "error" and created and not (self.store.feed(feed.id) or feed).primed:
            self.store.remove_feed(guild_id, feed.id)
            raise SourceError(f"That link did not give a feed I can read: {result.error}")
        return self.store.feed(feed.id) or feed, True, result

    def find_feed(self, guild_id: int, which: str) -> Feed:
        """One of a guild's feeds by its id or its link; :class:`SourceError` when there is none."""
        which = (which or "").strip()
        feeds = self.store.feeds(guild_id)
        found = next((f for f in feeds if str(f.id) == which), None)
        if found is None:
            norm = normalise_link(which) or which
            found = next((f for f in feeds if f.url == which or normalise_link(f.url) == norm), None)
        if found is None:
            raise SourceError("No such feed here. /feed list shows this server's feeds.")
        return found

    def remove_feed(self, guild_id: int, which: str) -> Feed:
        found = self.find_feed(guild_id, which)
        return self.store.remove_feed(guild_id, found.id) or found

    def edit_feed(self, guild_id: int, which: str, *, include: str | None = None,
                  exclude: str | None = None) -> Feed:
        """Change a feed's filters: None leaves one as it is, empty (or ``-``) clears it.
        The new filters apply to items that arrive from now on; items filtered out before stay out."""
        found = self.find_feed(guild_id, which)
        inc, exc = parse_filters(include, exclude)
        if inc is None and exc is None:
            raise SourceError("Give include: or exclude: (comma-separated words or phrases; - clears one).")
        return self.store.set_feed_filters(guild_id, found.id, include=inc, exclude=exc) or found

    def _await_other_poll(self, feed: Feed, wait: float | None = None) -> PollResult:
        """Another process holds the feed's lease: wait for its poll to be recorded, and tell that."""
        deadline = time.monotonic() + (wait if wait is not None else 2 * self.settings.fetch_timeout_seconds + 10)
        while time.monotonic() < deadline:
            owner, _ = self.store.feed_lease(feed.id)
            if owner is None:
                break
            time.sleep(0.2)
        now = self.store.feed(feed.id) or feed
        if now.last_status == "error":
            return PollResult(feed.id, feed.url, "error", items=now.items, error=now.last_error)
        return PollResult(feed.id, feed.url, "ok", items=now.items)

    async def poll_due(self, now: float | None = None, *, budget_s: float = POLL_BUDGET_S) -> list[PollResult]:
        """Poll every URL whose time has come and no other process is polling (this process takes each
        one's lease first): one fetch per URL for every server that follows it; one result per server's
        copy. Each host's URLs are polled one after another (the fetcher lets one request at a time go
        to a host, with a pause), the hosts side by side (:data:`MAX_CONCURRENT_POLLS` polls at once).
        At most as many URLs per host are leased as its pause lets this tick poll in ``budget_s``; a
        URL not begun when the budget is spent is handed back, and the next tick (here or in another
        process) takes it first (most overdue first): a host with hundreds of feeds is still visited in
        full every interval, and never holds the other hosts up."""
        now = self.clock() if now is None else now
        pause = float(getattr(getattr(self.fetcher, "config", None), "host_pause", 1.0) or 0.0)
        per_host = max(1, int(budget_s / max(pause, 0.05)))
        due = self.store.lease_feeds(now, self.owner, per_host=per_host)
        # after the lease (what this tick polls is settled first), and off the event loop: a DELETE of a backlog
        try:
            await asyncio.to_thread(self._prune, now)
        except asyncio.CancelledError:  # a clean stop meanwhile: hand this tick's leases back at once
            self.hand_back(list(dict.fromkeys(f.url for f in due)))
            raise
        if not due:
            return []
        by_url: dict[str, list[Feed]] = {}
        for f in due:
            by_url.setdefault(f.url, []).append(f)
        by_host: dict[str, list[str]] = {}
        for url in by_url:
            by_host.setdefault(url_host(url), []).append(url)
        sem = asyncio.Semaphore(MAX_CONCURRENT_POLLS)
        started: set[str] = set()
        results: list[PollResult] = []
        t0 = time.monotonic()

        async def host_queue(urls: list[str]) -> None:
            for url in urls:
                if time.monotonic() - t0 > budget_s:
                    return  # the rest are handed back below
                async with sem:
                    started.add(url)
                    head = by_url[url][0]  # (cut short: hands back)
                    results.extend(await self._poll_url(url, head.id, leased_polls=head.polls) or ())

        try:
            await asyncio.gather(*(host_queue(urls) for urls in by_host.values()))
        except asyncio.CancelledError:  # a clean stop (SIGTERM): the leases of polls not begun go back too
            self.hand_back([url for url in by_url if url not in started])
            raise
        left = [url for url in by_url if url not in started]
        if left:
            log.info("feeds: %d URL(s) left for the next tick (this tick's %.0f s were spent)", len(left), budget_s)
            self.hand_back(left)
        return results

    def _prune(self, now: float) -> None:
        """At most every :data:`PRUNE_EVERY_S`: drop kept pages past their week and hosts idle for a day
        (:meth:`Store.prune_feed_state`); nothing else removes them."""
        if time.monotonic() < self._prune_at:
            return
        self._prune_at = time.monotonic() + PRUNE_EVERY_S
        try:
            pages, hosts = self.store.prune_feed_state(now)
        except StoreError as exc:  # the next tick after PRUNE_EVERY_S tries again
            log.warning("feeds: old kept pages and idle hosts could not be pruned (%s)", exc)
            return
        if pages or hosts:
            log.info("feeds: pruned %d kept page(s) past their week and %d idle host(s)", pages, hosts)

    def hand_back(self, urls: list[str]) -> None:
        """Release this process's poll leases on these URLs (a poll cut short by a stop, or not begun):
        another process polls them at its next tick, not after the lease runs out. A URL already recorded
        holds no lease of ours, so releasing it changes nothing. By URL, not by a server's copy: a copy
        removed meanwhile must not leave its URL leased."""
        for url in urls:
            try:
                self.store.release_url(url, self.owner)
            except Exception as exc:  # noqa: BLE001 - the lease runs out on its own
                log.warning("feed %s: could not hand back its lease: %s", url, exc)
        if urls:
            log.info("feeds: handed back %d poll lease(s)", len(urls))

    async def poll(self, feed: Feed) -> PollResult | None:
        """Poll one feed now: one fetch of its URL, whose items reach every server that follows it
        (each through its own filters); returns this feed's result (None: another process, or another
        task here, is polling that URL). A copy that never got the URL's items (just added), of a URL
        read in full within the interval, gets the items kept from that read, with no request.
        Never raises: a failure is recorded on the URL and returned."""
        results = await self._poll_url(feed.url, feed.id)
        if results is None:
            return None
        return next((r for r in results if r.feed_id == feed.id), results[0] if results else None)

    async def _poll_url(self, url: str, feed_id: int, leased_polls: int | None = None) -> list[PollResult] | None:
        """Lease (or renew) the URL of ``feed_id`` and poll it for every copy; one result per copy.
        ``leased_polls``: the URL's poll count when a tick leased it. A poll recorded since (a server's
        ``/feed add`` here read it, or, after that add ended the lease with the kept items, another
        process did) means it was read this interval: it is not requested again, only copies that
        never got its items are given the kept ones."""
        with self._poll_lock:
            if url in self._polling:
                return None
            self._polling.add(url)
        subs: list[Feed] = []
        try:
            subs = self.store.lease_feeds(self.clock(), self.owner, feed_ids=[feed_id])
            if not subs:  # another process is polling it now, or this server's copy was removed meanwhile
                self.store.release_url(url, self.owner)  # ours from this tick's lease: free it for the others
                log.info("feed %s: another process is polling it, or its copy is gone; skipped", url)
                return None
            read = leased_polls is None or subs[0].polls == leased_polls
            if not read:
                log.info("feed %s: read since this tick took it (a server's add, or another process); not read again",
                         url)
            results, fetched = await self._poll_subs(subs, read=read)
            if fetched and results:
                self._counted(results[0])  # one poll counted per request
            return results
        except asyncio.CancelledError:  # a clean stop: the next tick (here or in another process) polls it
            self.hand_back([url])
            raise
        except Exception as exc:  # noqa: BLE001 - one broken feed must not stop the others
            log.exception("feed %s: poll failed unexpectedly", url)
            subs = subs or [f for f in [self.store.feed(feed_id)] if f is not None]
            failed = self._failed(subs, f"internal error: {exc.__class__.__name__}: {exc}"[:300], None) if subs else []
            if failed:
                self._counted(failed[0])
            return failed
        finally:
            with self._poll_lock:
                self._polling.discard(url)

    def _counted(self, result: PollResult) -> PollResult:
        if self.on_poll is not None:
            try:
                self.on_poll(result)
            except Exception:  # noqa: BLE001 - counting never fails a poll
                log.debug("feeds: counting a poll failed", exc_info=True)
        return result

    def _fresh(self, head: Feed) -> bool:
        """The URL was read without error within the feed interval (its kept items are current)."""
        return (head.last_success is not None and not head.failures and not head.disabled
                and self.clock() - head.last_success < self.settings.feed_interval_minutes * 60.0)

    def _cached(self, url: str) -> tuple[str, list[FeedItem]] | None:
        raw, _ = self.store.feed_cache(url)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return data.get("title") or "", [FeedItem(**i) for i in data.get("items") or []]
        except (ValueError, TypeError) as exc:
            log.warning("feed %s: its kept items are unreadable (%s); reading it again", url, exc)
            return None

    async def _poll_subs(self, subs: list[Feed], read: bool = True) -> tuple[list[PollResult], bool]:
        """One poll of one URL for its copies (all leased): (one result per copy, whether a request was made).
        ``read=False``: no request whatever happens (the URL was read this interval); the lease ends.

        * A copy never primed (just added) of a URL read in full within the interval gets the items
          kept from that read; no request, the other copies are left alone.
        * Otherwise one conditional request (unconditional when a copy is new and no items are kept).
          200: the items go to every copy. 304: the copies already primed have them; new copies get
          the kept ones.
        """
        head = subs[0]
        url = head.url
        fresh = [s for s in subs if not s.primed]
        cached = self._cached(url) if fresh else None
        if fresh and cached is not None and self._fresh(head):
            title, items = cached
            outcome = await self._deliver(url, items, fresh)
            self.store.url_polled(url, self.clock(), status="", next_poll=None, fetched=False,
                                  delivered={s.id: (outcome[s.id].line(len(items)), outcome[s.id].added) for s in fresh})
            log.info("feed %s: %d new server(s) given the %d item(s) read %s; no request", url, len(fresh), len(items),
                     "within the interval")
            return [outcome[s.id].result(s, len(items)) for s in fresh], False
        if not read:
            self.store.release_url(url, self.owner)
            return [], False

        now = self.clock()
        conditional = not fresh or cached is not None
        try:
            res = await self.fetcher.fetch(url, etag=head.etag if conditional else None,
                                           last_modified=head.last_modified if conditional else None, accept=FEED_ACCEPT)
        except FetchError as exc:
            return self._failed(subs, str(exc), retry_after_seconds(exc.retry_after, now)), True
        next_poll = next_poll_after(self.clock(), self.settings.feed_interval_minutes)
        if res.not_modified:
            delivered = {s.id: ("not modified (304)", 0) for s in subs if s.primed}
            results = [PollResult(s.id, url, "not-modified", items=s.items) for s in subs if s.primed]
            if fresh and cached is not None:
                title, items = cached
                outcome = await self._deliver(url, items, fresh)
                delivered.update({s.id: (outcome[s.id].line(len(items)), outcome[s.id].added) for s in fresh})
                results += [outcome[s.id].result(s, len(items)) for s in fresh]
            self.store.url_polled(url, self.clock(), status="not modified (304)", next_poll=next_poll,
                                  etag=res.etag or head.etag, last_modified=res.last_modified or head.last_modified,
                                  delivered=delivered)
            log.info("feed %s: not modified", url)
            return results, True
        try:
            parsed = parse_feed(res.content, res.headers, res.url)
        except FeedError as exc:
            return self._failed(subs, str(exc), None), True
        if parsed.warning:
            log.warning("feed %s: %s", url, parsed.warning)
        outcome = await self._deliver(url, list(parsed.items), subs)
        lost = next(iter(outcome.values())).lost if outcome else []
        # A page that failed with no feed text to fall back on is tried again next time:
        # keep no validators, so the next poll reads the feed in full.
        keep_validators = not lost
        n = len(parsed.items)
        now = self.clock()
        self.store.url_polled(
            url, now, status=outcome[head.id].line(n), next_poll=next_poll_after(now, self.settings.feed_interval_minutes),
            etag=res.etag if keep_validators else None, last_modified=res.last_modified if keep_validators else None,
            title=parsed.title, items_json=json.dumps({"title": parsed.title,
                                                       "items": [dataclasses.asdict(i) for i in parsed.items]}),
            delivered={s.id: (outcome[s.id].line(n), outcome[s.id].added) for s in subs},
        )
        first = outcome[head.id]
        for u, err in first.failed:
            log.warning("feed %s: item %s: %s", url, u, err)
        for s in subs:
            o = outcome[s.id]
            log.info("feed %s (guild %s): %s (%d added to the corpus%s; %s)", url, s.guild_id, o.line(n), len(o.new),
                     f", {o.shared} already fetched" if o.shared else "",
                     "announced in digests" if s.primed else "first poll, not announced")
        return [outcome[s.id].result(s, n) for s in subs], True

    async def _deliver(self, url: str, items: list[FeedItem], subs: list[Feed]) -> dict[int, _Outcome]:
        """The items of one read of ``url`` -> each copy in ``subs``: through its own filter, once.

        ``seen_items`` keys: an item's own keys (``guid:``, ``link:``, ``td:``) are global: the item
        became this article (or nothing), whichever feed or server brought it, so it is fetched and
        added once. ``filtered:<feed id>:<key>``: this copy's filter kept it out; it never comes back
        to that copy, while another copy (another server, its own feed id) whose filter passes it gets
        it: a new item becomes an article owned by a passing copy's guild (global when a global copy
        passes it) and is shared with every other passing copy's guild; an item already an article
        (brought earlier, for another server or by another feed) is shared with each copy whose filter
        passes it."""
        keys = item_keys(items)
        flat = [k for ks in keys for k in ks]
        seen = self.store.seen_items(flat + [filtered_key(s.id, k) for s in subs for k in flat])
        filt = {s.id: feed_filter(s) for s in subs}
        out = {s.id: _Outcome() for s in subs}
        kept: dict[int, set[str]] = {s.id: set() for s in subs}
        done: set[str] = set()
        made: list[tuple[FetchedItem, list[Feed], list[str], bool]] = []  # new articles: (item, its copies, keys, announce)
        repeat_keys: list[tuple[list[str], str | None]] = []
        shares: list[tuple[str, Feed]] = []
        failed: list[tuple[str, str]] = []
        lost: list[tuple[str, str]] = []
        kept_pages: dict[str, tuple[str, Extracted]] | None = None  # pages read before (feed_pages), looked up once
        to_keep: dict[str, tuple[str, dict]] = {}  # pages read now for items no copy's filter passes
        used_pages: list[str] = []  # kept pages that became articles now

        def keep_out(s: Feed, ks: list[str]) -> None:
            out[s.id].kept_out.append(ks)
            kept[s.id].update(ks)

        for item, ks in zip(items, keys):
            if done.intersection(ks):  # the same item twice in this feed: decided at its first
                for s in subs:
                    if kept[s.id].intersection(ks):
                        out[s.id].kept_out.append(ks)
                continue
            done.update(ks)
            open_subs = [s for s in subs if not any(filtered_key(s.id, k) in seen for k in ks)]
            if not open_subs:
                continue  # every copy's filter kept it out before: it never comes back
            known = [k for k in ks if k in seen]
            if known:
                aid = next((seen[k] for k in known if seen[k]), None)
                for s in open_subs:
                    if filt[s.id] and aid and not self._passes_known(filt[s.id], item, aid):
                        keep_out(s, ks)  # another source brought it; this copy's filter does not let it in
                    elif aid:
                        shares.append((aid, s))
                repeat_keys.append((ks, aid))
                continue
            wanting = []
            for s in open_subs:
                if filt[s.id] and filt[s.id].excluded(item.title, item.text):  # no need to fetch its page for it
                    keep_out(s, ks)
                else:
                    wanting.append(s)
            if not wanting:
                continue
            if kept_pages is None:
                kept_pages = self._kept_pages(keys, seen)
            # pages are kept under the item's link only: a guid (or title and date) names an item within
            # its feed, and another site's item may carry the same one ("1"); the link is the page read
            link_key = next((k for k in ks if k.startswith("link:")), None)
            page_key_ = link_key if link_key in kept_pages else None
            if page_key_ is not None:  # read at an earlier read of this feed (or of another), for a filter
                page_url, ex = kept_pages[page_key_]
                err, read_now = None, False
            else:
                ex, page_url, err = await self._extract_item(item, url)
                read_now = bool(item.link and self.follow_links and err is None and ex is not None)
            if err:
                failed.append((item.link or item.title, err))
            passing = [s for s in wanting
                       if ex is None or not filt[s.id] or filt[s.id].passes(item.title, item.text, ex.title, ex.text)]
            for s in wanting:
                if s not in passing:
                    keep_out(s, ks)
            if not passing:
                # a server that follows the feed later gets this page, not another request; a page that gave
                # no text is not kept (its stand-in is this feed's own text, not the page's)
                if read_now and link_key is not None and ex.method != "feed":
                    to_keep[link_key] = (page_url, dataclasses.asdict(ex))
                continue
            owner = None if any(not s.guild_id for s in passing) else passing[0].guild_id
            got = self._build_item(item, ks[0], ex, page_url, url, owner) if ex is not None else None
            if got is not None:
                made.append((got, passing, ks, any(s.primed for s in passing)))
                if page_key_ is not None:
                    used_pages.append(page_key_)
            elif err and item.link:  # the page could not be fetched and the feed has no text: retry next poll
                lost.append((item.link, err))
            else:  # nothing to make an article of, now or later
                repeat_keys.append((ks, None))

        groups: dict[tuple[int | None, bool], list[Article]] = {}
        for got, passing, ks, announce in made:
            groups.setdefault((got.article.guild_id, announce), []).append(got.article)
        for (owner, announce), arts in groups.items():
            added = await asyncio.to_thread(self._ingest, arts, announce, owner)
            self._share_duplicates(arts, added, owner)
        now = self.clock()
        to_share: list[tuple[str, int | None]] = []  # written in one transaction below
        for got, passing, ks, _ in made:
            self.store.mark_seen(ks, got.article.id, passing[0].id, now)
            for s in passing:
                out[s.id].new.append(got)
                if (s.guild_id or None) != got.article.guild_id:
                    to_share.append((self._loaded_id(got.article), s.guild_id or None))
        for ks, aid in repeat_keys:
            self.store.mark_seen(ks, aid, subs[0].id, now)  # an old item's other keys (its link, say)
        for aid, s in shares:
            to_share.append((aid, s.guild_id or None))
            if not s.primed:  # a new copy's backlog: these reach its server now
                out[s.id].shared += 1
        self._share_many(to_share)
        for s in subs:  # seen for this copy only: another copy (another server's) may still carry it
            for ks in out[s.id].kept_out:
                self.store.mark_seen([filtered_key(s.id, k) for k in ks], None, s.id, now)
            out[s.id].failed, out[s.id].lost = failed, lost
        try:
            if to_keep:
                self.store.keep_pages(to_keep, now)
            if used_pages:
                self.store.drop_pages(used_pages)
        except StoreError as exc:  # only a saving: a later follower reads the page again
            log.warning("feed %s: the pages read for its filters could not be kept (%s)", url, exc)
        return out

    def _kept_pages(self, keys: list[list[str]], seen: dict[str, str | None]) -> dict[str, tuple[str, Extracted]]:
        """The pages kept (:meth:`Store.keep_pages`) for the items of this read that are no article yet
        (under their ``link:`` keys, the only ones pages are kept under)."""
        if not self.follow_links:
            return {}
        out = {}
        for key, (page_url, record) in self.store.kept_pages(
                (k for ks in keys if not any(k in seen for k in ks) for k in ks if k.startswith("link:")),
                now=self.clock()).items():
            try:
                out[key] = (page_url, Extracted(**record))
            except TypeError:  # written by another version: read the page again
                continue
        return out

    def _loaded_id(self, article: Article) -> str:
        """The id ``article`` has in the corpus (the same text may be loaded under another id)."""
        found = None
        if self.app is not None:
            found = self.app.corpus.get(article.id) or self.app.corpus.same_as(article)
        return found.id if found is not None else article.id

    def _passes_known(self, filt: FeedFilter, item: FeedItem, article_id: str) -> bool:
        """An item another source already brought: does it pass this feed's filter?"""
        art = self.app.corpus.get(article_id) if self.app is not None else None
        return filt.passes(item.title, item.text, art.title if art else None, art.text if art else None)

    async def _extract_item(self, item: FeedItem, feed_url: str) -> tuple[Extracted | None, str, str | None]:
        """(the text of a new feed item: its page extracted, else the feed's own text; its URL; the page's error)."""
        err = None
        ex: Extracted | None = None
        url = item.link or feed_url
        if item.link and self.follow_links:
            try:
                res = await self.fetcher.fetch(item.link, accept=PAGE_ACCEPT)
                url = res.url
                html = res.text()
                ex = await asyncio.to_thread(extract_article, html, res.url, feed_title=item.title,
                                             feed_text=item.text, feed_date=item.date)
            except FetchError as exc:
                err = str(exc)
        if ex is None or not ex.text:
            if word_count(item.text) < MIN_WORDS and not item.title:
                return None, url, err
            text = item.text if word_count(item.text) >= MIN_WORDS else item.title
            note = "the page could not be fetched; the feed's text is used" if err else \
                ("the item has no link; the feed's text is used" if not item.link else (ex.note if ex else None))
            ex = Extracted(item.title, text, item.date, None, "feed", False, note)
        return ex, url, err

    def _build_item(self, item: FeedItem, key: str, ex: Extracted, url: str, feed_url: str,
                    guild: int | None) -> FetchedItem | None:
        title = ex.title or item.title or url
        art = Article.build(id=article_id_for(key), title=title, text=ex.text, date=ex.date, url=url,
                            source=f"feed {feed_url}", guild_id=guild)
        if not art.sentences:
            return None
        return FetchedItem(url, title, ex.date, ex.text, "feed", feed_url, art, ex.method, ex.note, key)

    def _failed(self, subs: list[Feed], error: str, retry_after: float | None) -> list[PollResult]:
        head = subs[0]
        now = self.clock()
        failures = head.failures + 1
        wait = backoff_seconds(failures, retry_after)
        self.store.url_failed(head.url, now, error, next_poll=now + wait, disable_after=DISABLE_AFTER)
        where = f"{head.url} ({len(subs)} server copies)" if len(subs) > 1 else f"{head.url} (guild {head.guild_id})"
        if failures >= DISABLE_AFTER:
            log.error("feed %s: %s; disabled after %d failures in a row (add it again with /feed add)",
                      where, error, failures)
        else:
            log.warning("feed %s: %s; failure %d in a row, next try in %.0f min", where, error, failures, wait / 60)
        return [PollResult(s.id, s.url, "error", error=error, items=s.items) for s in subs]

    # ------------------------------------------------------------ pages
    async def fetch_page(self, url: str, guild_id: int | None = None, *, skip_seen: bool = False) -> FetchedItem | None:
        """Fetch and extract one page and add it to the guild's corpus (the global one for None).
        A page seen before is not fetched again: its article is returned (None with ``skip_seen``)."""
        url = check_url(url)
        key = page_key(url)
        guild = guild_id or None
        known = self.store.seen_items([key]).get(key, False)
        if known is not False:
            if skip_seen:
                return None
            art = self.app.corpus.get(known) if (self.app is not None and known) else None
            if art is not None:
                self._share_if_needed(art.id, guild)
                return FetchedItem(art.url or url, art.title, art.date, art.text, "page", None, art, "known", None, key)
        res = await self.fetcher.fetch(url, accept=PAGE_ACCEPT)
        ex = await asyncio.to_thread(extract_article, res.text(), res.url)
        if not ex.text:
            raise SourceError(f"I found no article text at {url[:200]}.")
        art = Article.build(id=article_id_for(key), title=ex.title or res.url, text=ex.text, date=ex.date,
                            url=res.url, source=f"page {url}", guild_id=guild)
        if not art.sentences:
            raise SourceError(f"I found no article text at {url[:200]}.")
        added = await asyncio.to_thread(self._ingest, [art], True, guild)
        self._share_duplicates([art], added, guild)
        keys = [key] + ([page_key(res.url)] if page_key(res.url) != key else [])
        self.store.mark_seen(keys, art.id, None, self.clock())
        if self.app is not None:
            art = self.app.corpus.same_as(art) or art  # the same text may already be loaded under another id
        return FetchedItem(res.url, art.title, ex.date, ex.text, "page", None, art, ex.method, ex.note, key)

    def fetch_page_sync(self, url: str, guild_id: int | None = None) -> FetchedItem:
        return run_sync(self.fetch_page(url, guild_id))

    def _share_if_needed(self, article_id: str, guild: int | None) -> None:
        self._share_many([(article_id, guild)])

    def _share_many(self, pairs: list[tuple[str, int | None]]) -> None:
        """Record the (article, guild) shares a guild does not see yet, in one store transaction."""
        todo: list[tuple[str, int]] = []
        for article_id, guild in pairs:
            found = self.app.corpus.get(article_id) if self.app is not None else None
            if found is None:
                if self.app is None and guild:  # no corpus at hand (python -m bot fetch): record the guild's share
                    todo.append((article_id, guild))
                continue
            # A guild that sees it already (shared before, here or by a process whose share was read) needs
            # no store write: a known item in every read of a feed would cost one per server that follows it.
            if found.guild_id is not None and found.guild_id != guild and not self.app.scopes.can_see(found, guild):
                todo.append((article_id, guild or 0))
        todo = list(dict.fromkeys(todo))
        if not todo:
            return
        self.store.share_articles(todo)
        if self.app is not None:
            for article_id, guild in todo:
                self.app.scopes.share(article_id, guild)

    def _share_duplicates(self, offered: list[Article], added: list[Article], guild: int | None) -> None:
        """Articles the corpus already held (same id or same text, brought by another guild): share them."""
        if self.app is None:
            return
        new = {a.id for a in added}
        for a in offered:
            if a.id in new:
                continue
            found = self.app.corpus.same_as(a)
            if found is not None:
                self._share_if_needed(found.id, guild)

    # ------------------------------------------------------------ ingestion
    def _ingest(self, articles: list[Article], announce: bool, guild_id: int | None) -> list[Article]:
        """Into the corpus (and the index), registered for digests, kept on disk for restarts."""
        if self.app is None or not articles:
            return list(articles)

        def on_added(added: list[Article]) -> None:
            # Under the corpus lock: the digest runner's own sync cannot register them first.
            self.store.register_articles(((a.id, a.title) for a in added), self.clock(),
                                         announce=announce, guild_id=guild_id)
            self._persist(added)

        return self.app.add_articles(articles, on_added=on_added)

    def _persist(self, articles: list[Article]) -> None:
        path = self.settings.fetched_path
        lines, records = [], []
        for a in articles:
            rec = {"id": a.id, "title": a.title, "text": "\n".join(a.sentences), "date": a.date, "url": a.url,
                   "arrived": a.arrived}
            if a.guild_id:
                rec["guild_id"] = a.guild_id
            records.append(rec)
            lines.append(dumps_line(rec) + "\n")
        if getattr(self.store, "is_postgres", False):  # in the store: every process loads them
            try:
                self.store.add_fetched(records, self.clock())
            except Exception as exc:  # noqa: BLE001 - the articles stay loaded here; others miss them
                log.error("feeds: could not keep %d fetched article(s) in the database (%s); they stay loaded "
                          "in this process until a restart", len(articles), exc)
            return
        try:
            with self._write_lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as f:
                    f.write("".join(lines))
                    f.flush()
        except OSError as exc:
            log.error("feeds: could not keep %d fetched article(s) in %s (%s); they stay loaded until a restart",
                      len(articles), path, exc)

    # ------------------------------------------------------------ other processes' articles
    def sync_shares(self) -> int:
        """PostgreSQL: the guild shares other processes recorded (an article a second guild's feed or
        link also brought); returns how many were new here. :meth:`sync_fetched` calls it every
        :data:`SHARES_EVERY_S` seconds."""
        self._shares_at = time.monotonic()
        if self.app is None:
            return 0
        return sum(1 for aid, g in self.store.shared_articles() if self.app.scopes.share(aid, g or 0))

    def backfill_index(self, batch: int = 500) -> int:
        """INDEX_URL: write to the index the feed and link articles the database kept before this process's
        cache (``CACHE_ARTICLES``) that the index lacks: a bot that sets INDEX_URL on an existing database,
        or articles written while the index was unreachable. Their vectors are read from the shared store
        where they are (embedded otherwise). Returns how many were written. Safe in several processes at
        once (an article is written once); start-up runs it in the background."""
        app = self.app
        si = getattr(app, "shared_index", None)
        if si is None or not getattr(self.store, "is_postgres", False) or self._cache_start <= 0:
            return 0
        from ..corpus.loader import _jsonl_article

        pg = si.search()
        if pg is None:
            return 0
        missing = [seq for seq, aid in self.store.fetched_keys(self._cache_start) if pg.row_of(aid) is None]
        written = 0
        for i in range(0, len(missing), batch):
            arts = []
            for seq, rec in self.store.fetched_records(missing[i:i + batch]):
                try:
                    arts.append(_jsonl_article(rec, f"database fetched_articles #{seq}"))
                except (ValueError, TypeError) as exc:
                    log.warning("index: fetched article #%d in the database skipped: %s", seq, exc)
            written += app.index_archived(arts)
        if missing:
            log.info("index: %d older article(s) from the database written to the index (%d were missing)",
                     written, len(missing))
        return written

    def sync_fetched(self, shares: bool = False) -> int:
        """PostgreSQL: add the feed and link articles other processes fetched since the last call
        (only those: the store is read after the last ``seq`` seen), each with its guild. Returns how
        many joined the corpus. A no-op with SQLite (one process; the file is loaded at start).
        ``shares``: read the guild shares too now (a notification said one came), not only every
        :data:`SHARES_EVERY_S`."""
        if self.app is None or not getattr(self.store, "is_postgres", False):
            return 0
        from ..corpus.loader import _jsonl_article

        if shares or time.monotonic() - self._shares_at >= SHARES_EVERY_S:
            self.sync_shares()

        with self._fetched_lock:
            added = 0
            while True:
                batch = self.store.fetched_after(self._fetched_seq)
                if not batch:
                    return added
                arts = []
                for seq, rec in batch:
                    try:
                        arts.append(_jsonl_article(rec, f"database fetched_articles #{seq}"))
                    except (ValueError, TypeError) as exc:
                        log.warning("feeds: fetched article #%d in the database skipped: %s", seq, exc)
                self._fetched_seq = batch[-1][0]
                if arts:
                    got = self.app.add_articles(arts)
                    added += len(got)
                    if got:
                        log.info("feeds: %d article(s) from other processes joined the corpus", len(got))
