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
"""

from __future__ import annotations

import asyncio
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
from .fetch import FetchConfig, FetchError, Fetcher
from .filters import FeedFilter, FilterError, parse_terms

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2000
MAX_CONCURRENT_POLLS = 4
FROM_SETTINGS = 0  # added_by of the feeds that come from the FEEDS setting
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
SHARES_EVERY_S = 30.0  # PostgreSQL: how often other processes' guild shares are read again


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


FILTERED = "filtered:"  # seen_items key prefix of an item one feed's filter kept out: 'filtered:<feed id>:<item key>'


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
        self._fetched_lock = threading.Lock()
        self._shares_at = time.monotonic()  # shares were loaded just now (reload_shares, below)
        self.on_poll = None  # told each poll's PollResult (the bot's metrics)
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
        result = run_sync(self.poll(feed))
        if result is None:  # another process is polling it this moment: its poll is the first one
            result = self._await_other_poll(feed)
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

    async def poll_due(self, now: float | None = None) -> list[PollResult]:
        """Poll every feed whose time has come and no other process is polling (this process takes
        each one's lease first), a few at a time (one at a time per host)."""
        now = self.clock() if now is None else now
        due = self.store.lease_feeds(now, self.owner)
        if not due:
            return []
        sem = asyncio.Semaphore(MAX_CONCURRENT_POLLS)

        started: set[int] = set()

        async def one(feed: Feed) -> PollResult | None:
            async with sem:
                started.add(feed.id)
                return await self.poll(feed)  # a poll cut short hands its own lease back

        try:
            results = await asyncio.gather(*(one(f) for f in due))
        except asyncio.CancelledError:  # a clean stop (SIGTERM): the leases of polls not begun go back too
            self.hand_back([f.id for f in due if f.id not in started])
            raise
        return [r for r in results if r is not None]

    def hand_back(self, feed_ids: list[int]) -> None:
        """Release this process's poll leases on these feeds (a poll cut short by a stop): another
        process polls them at its next tick, not after the lease runs out. A feed already recorded
        holds no lease of ours, so releasing it changes nothing."""
        for fid in feed_ids:
            try:
                self.store.release_feed(fid, self.owner)
            except Exception as exc:  # noqa: BLE001 - the lease runs out on its own
                log.warning("feed %s: could not hand back its lease: %s", fid, exc)
        if feed_ids:
            log.info("feeds: handed back %d poll lease(s)", len(feed_ids))

    async def poll(self, feed: Feed) -> PollResult | None:
        """One poll of one feed. Never raises: a failure is recorded on the feed and returned."""
        with self._poll_lock:
            if feed.id in self._polling:
                return None
            self._polling.add(feed.id)
        try:
            leased = self.store.lease_feeds(self.clock(), self.owner, feed_ids=[feed.id])
            if not leased:  # another process is polling it now (or it was removed)
                log.info("feed %s (guild %s): another process is polling it; skipped", feed.url, feed.guild_id)
                return None
            return self._counted(await self._poll(leased[0]))
        except asyncio.CancelledError:  # a clean stop: the next tick (here or in another process) polls it
            self.hand_back([feed.id])
            raise
        except Exception as exc:  # noqa: BLE001 - one broken feed must not stop the others
            log.exception("feed %s (guild %s): poll failed unexpectedly", feed.url, feed.guild_id)
            return self._counted(self._failed(feed, f"internal error: {exc.__class__.__name__}: {exc}"[:300], None))
        finally:
            with self._poll_lock:
                self._polling.discard(feed.id)

    def _counted(self, result: PollResult) -> PollResult:
        if self.on_poll is not None:
            try:
                self.on_poll(result)
            except Exception:  # noqa: BLE001 - counting never fails a poll
                log.debug("feeds: counting a poll failed", exc_info=True)
        return result

    async def _poll(self, feed: Feed) -> PollResult:
        now = self.clock()
        try:
            res = await self.fetcher.fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified, accept=FEED_ACCEPT)
        except FetchError as exc:
            return self._failed(feed, str(exc), retry_after_seconds(exc.retry_after, now))
        next_poll = next_poll_after(self.clock(), self.settings.feed_interval_minutes)
        if res.not_modified:
            self.store.feed_polled(feed.id, self.clock(), status="not modified (304)", next_poll=next_poll)
            log.info("feed %s (guild %s): not modified", feed.url, feed.guild_id)
            return PollResult(feed.id, feed.url, "not-modified", items=feed.items)
        try:
            parsed = parse_feed(res.content, res.headers, res.url)
        except FeedError as exc:
            return self._failed(feed, str(exc), None)
        if parsed.warning:
            log.warning("feed %s (guild %s): %s", feed.url, feed.guild_id, parsed.warning)
        keys = item_keys(parsed.items)
        filt = feed_filter(feed)
        seen = self.store.seen_items([k for ks in keys for k in ks] + [filtered_key(feed.id, k) for ks in keys for k in ks])
        guild = feed.guild_id or None
        kept_out: list[list[str]] = []  # the keys of items this feed's filter kept out now
        kept_keys: set[str] = set()
        new: list[FetchedItem] = []
        failed: list[tuple[str, str]] = []
        repeat_keys: list[tuple[list[str], str | None]] = []
        batch_keys: set[str] = set()
        lost: list[tuple[str, str]] = []
        for item, ks in zip(parsed.items, keys):
            if any(filtered_key(feed.id, k) in seen for k in ks):
                continue  # this feed's filter kept it out before: it never comes back
            if kept_keys.intersection(ks):  # the same item twice in this feed, and the first was kept out
                kept_out.append(ks)
                continue
            known = [k for k in ks if k in seen]
            if known or batch_keys.intersection(ks):
                aid = next((seen[k] for k in known if seen[k]), None)
                if filt and aid and not self._passes_known(filt, item, aid):
                    kept_out.append(ks)  # another source brought it; this feed's filter does not let it in here
                    kept_keys.update(ks)
                    continue
                repeat_keys.append((ks, aid))
                continue
            batch_keys.update(ks)
            if filt and filt.excluded(item.title, item.text):  # no need to fetch its page
                kept_out.append(ks)
                kept_keys.update(ks)
                continue
            got, err = await self._feed_item(item, ks[0], feed, guild)
            if err:
                failed.append((item.link or item.title, err))
            if got is not None and filt and not filt.passes(item.title, item.text, got.title, got.text):
                kept_out.append(ks)
                kept_keys.update(ks)
                continue
            if got is not None:
                new.append(got)
            elif err and item.link:  # the page could not be fetched and the feed has no text: retry next poll
                lost.append((item.link, err))
            else:  # nothing to make an article of, now or later
                repeat_keys.append((ks, None))
        announce = feed.primed
        added = await asyncio.to_thread(self._ingest, [n.article for n in new if n.article], announce, guild)
        self._share_duplicates([n.article for n in new if n.article], added, guild)
        now = self.clock()
        for n in new:
            ks = next(k for k in keys if n.key in k)
            self.store.mark_seen(ks, n.article.id, feed.id, now)
        for ks, aid in repeat_keys:
            self.store.mark_seen(ks, aid, feed.id, now)  # an old item's other keys (its link, say)
            if aid:
                self._share_if_needed(aid, guild)
        for ks in kept_out:  # seen for this feed only: another feed (another server's) may still carry it
            self.store.mark_seen([filtered_key(feed.id, k) for k in ks], None, feed.id, now)
        # A page that failed with no feed text to fall back on is tried again next time:
        # keep no validators, so the next poll reads the feed in full.
        keep_validators = not lost
        status = f"{len(new)} new of {len(parsed.items)} item(s)"
        if failed:
            status += f"; {len(failed)} page(s) failed ({failed[0][1][:80]})"
        if lost:
            status += f", {len(lost)} to retry"
        if kept_out:
            status += f"; {len(kept_out)} filtered out"
        if not parsed.items:
            status = "the feed has no items"
        self.store.feed_polled(
            feed.id, now, status=status, next_poll=next_poll_after(now, self.settings.feed_interval_minutes),
            etag=res.etag if keep_validators else None,
            last_modified=res.last_modified if keep_validators else None,
            title=parsed.title, new_items=len(added),
        )
        what = "first poll, not announced" if not announce else "announced in digests"
        log.info("feed %s (guild %s): %s (%d added to the corpus; %s)", feed.url, feed.guild_id, status, len(added), what)
        for url, err in failed:
            log.warning("feed %s (guild %s): item %s: %s", feed.url, feed.guild_id, url, err)
        return PollResult(feed.id, feed.url, "ok", new, len(parsed.items), None, failed, lost, len(kept_out))

    def _passes_known(self, filt: FeedFilter, item: FeedItem, article_id: str) -> bool:
        """An item another source already brought: does it pass this feed's filter?"""
        art = self.app.corpus.get(article_id) if self.app is not None else None
        return filt.passes(item.title, item.text, art.title if art else None, art.text if art else None)

    async def _feed_item(self, item: FeedItem, key: str, feed: Feed, guild: int | None
                         ) -> tuple[FetchedItem | None, str | None]:
        """The article for a new feed item: its page extracted, else the feed's own text."""
        err = None
        ex: Extracted | None = None
        url = item.link or feed.url
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
                return None, err
            text = item.text if word_count(item.text) >= MIN_WORDS else item.title
            note = "the page could not be fetched; the feed's text is used" if err else \
                ("the item has no link; the feed's text is used" if not item.link else (ex.note if ex else None))
            ex = Extracted(item.title, text, item.date, None, "feed", False, note)
        title = ex.title or item.title or url
        art = Article.build(id=article_id_for(key), title=title, text=ex.text, date=ex.date, url=url,
                            source=f"feed {feed.url}", guild_id=guild)
        if not art.sentences:
            return None, err
        return FetchedItem(url, title, ex.date, ex.text, "feed", feed.url, art, ex.method, ex.note, key), err

    def _failed(self, feed: Feed, error: str, retry_after: float | None) -> PollResult:
        now = self.clock()
        failures = feed.failures + 1
        wait = backoff_seconds(failures, retry_after)
        after = self.store.feed_failed(feed.id, now, error, next_poll=now + wait, disable_after=DISABLE_AFTER)
        if after is not None and after.disabled:
            log.error("feed %s (guild %s): %s; disabled after %d failures in a row (add it again with /feed add)",
                      feed.url, feed.guild_id, error, failures)
        else:
            log.warning("feed %s (guild %s): %s; failure %d in a row, next try in %.0f min",
                        feed.url, feed.guild_id, error, failures, wait / 60)
        return PollResult(feed.id, feed.url, "error", error=error, items=feed.items)

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
        found = self.app.corpus.get(article_id) if self.app is not None else None
        if found is None:
            if self.app is None and guild:  # no corpus at hand (python -m bot fetch): record the guild's share
                self._share(article_id, guild)
            return
        if found.guild_id is not None and found.guild_id != guild:
            self._share(article_id, guild)

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

    def sync_fetched(self) -> int:
        """PostgreSQL: add the feed and link articles other processes fetched since the last call
        (only those: the store is read after the last ``seq`` seen), each with its guild. Returns how
        many joined the corpus. A no-op with SQLite (one process; the file is loaded at start)."""
        if self.app is None or not getattr(self.store, "is_postgres", False):
            return 0
        from ..corpus.loader import _jsonl_article

        if time.monotonic() - self._shares_at >= SHARES_EVERY_S:
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
