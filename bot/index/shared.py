"""/ask from the index in PostgreSQL (``INDEX_URL``): what one bot process keeps of it and writes to it.

Every process of a bot that sets ``INDEX_URL`` answers ``/ask`` from one index (:class:`PgSearch`:
sentences, their vectors and terms in PostgreSQL with pgvector), so a process holds the index's
per-article numbers, not the archive. What it still holds in memory is a cache: the newest
``CACHE_ARTICLES`` articles, for ``/summary``, ``/articles`` and digests (:class:`bot.app.Precis`).

* **Writing.** Each article is written once, by the first process whose corpus gains it (:meth:`add`;
  the others find its id there and skip it). Its vectors come from the shared vector store
  (:mod:`bot.index.pgvectors`), so nothing is embedded twice.
* **Scope.** A member's search reads the articles of no server, their server's own, and those another
  server's feed or link shared with theirs (the store's ``article_guilds``, held by
  :class:`bot.corpus.scope.Scopes`), minus retired ones: one bool per article id, cached per guild.
* **Retiring.** Articles past ``MAX_ARTICLE_AGE_DAYS`` and a server's oldest (by arrival) past
  ``MAX_ARTICLES`` get a tombstone (``pix_gone``) that every process reads within a second.
* **Failure.** A database that cannot be reached, or a query that fails, leaves ``/ask`` on this
  process's cache (the in-memory index, as without ``INDEX_URL``) with one log line; the index is
  opened again :data:`RETRY_S` later, in the background. Articles that arrive meanwhile stay in the
  cache (past ``CACHE_ARTICLES`` if need be: :meth:`bot.app.Precis._retire_locked`) and are written
  when it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

RETRY_S = 30.0  # after a failure, the index is tried again this long after
_MAX_MASKS = 64


def _articles(found: dict, ids: list[int]) -> list:
    """:meth:`PgSearch.load_articles`'s rows as corpus articles, in the order of ``ids`` (empty ones left out)."""
    from ..corpus.article import Article

    return [Article(id=key, title=title, sentences=tuple(sents), date=date, url=url, guild_id=guild or None)
            for key, title, date, url, guild, sents in (found[i] for i in ids if i in found) if sents]


class SharedIndex:
    def __init__(self, url: str, embedder, published: Callable[[str | None], float]) -> None:
        """``published``: a date string -> epoch seconds (NaN: undated), as the in-memory index reads dates."""
        self.url = url
        self.embedder = embedder
        self._published = published
        self._pg = None
        self.error: str | None = None
        self._failed_at = -float("inf")
        self._lock = threading.RLock()
        self._opening = threading.Lock()  # one background reopen at a time
        self._masks: dict[tuple, np.ndarray] = {}
        self._answerer = None
        self._answerer_key = None
        self.written = 0  # articles this process wrote to the index

    # ------------------------------------------------------------ connection
    def search(self, wait: bool = True):
        """The open :class:`PgSearch`, or None while it is unavailable (then retried every :data:`RETRY_S`).
        ``wait=False`` (a member's question): never wait for a connection; a retry that is due runs in the
        background and this call answers None."""
        if not wait:
            pg = self._pg
            if pg is not None:
                return pg
            if time.monotonic() - self._failed_at >= RETRY_S and self._opening.acquire(blocking=False):
                def reopen() -> None:
                    try:
                        self.search()
                    finally:
                        self._opening.release()

                threading.Thread(target=reopen, name="precis-index-open", daemon=True).start()
            return None
        with self._lock:
            if self._pg is not None:
                return self._pg
            if time.monotonic() - self._failed_at < RETRY_S:
                return None
            try:
                from .pgindex import PgSearch

                self._pg = PgSearch(self.url, self.embedder, published=self._published)
            except Exception as exc:  # noqa: BLE001 - any failure: /ask answers from the cache meanwhile
                self._down(exc, "opening it")
                return None
            if self.error is not None:
                log.warning("INDEX_URL: the index in PostgreSQL is back")
            self.error = None
            self._masks.clear()
            return self._pg

    def _down(self, exc: BaseException, doing: str, pg=None) -> None:
        """``pg``: the connection that failed (None: opening one); a failure on one already replaced by a
        reopened connection leaves the new one alone."""
        from .pgvectors import _first_line

        with self._lock:
            if pg is not None and pg is not self._pg:
                log.debug("INDEX_URL: %s failed on a connection already replaced (%s)", doing, exc)
                return
            reason = f"{doing} failed: {_first_line(exc, self.url)}"
            if self.error is None:
                log.error("INDEX_URL: the index in PostgreSQL is unavailable (%s); /ask answers from this "
                          "process's recent articles until it is back", reason)
            self.error = reason
            self._failed_at = time.monotonic()
            pg, self._pg, self._answerer = self._pg, None, None
        if pg is not None:
            try:
                pg.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What a search on the index raises when the database fails (the caller then answers from its
        cache and calls :meth:`failed`)."""
        import psycopg

        return (psycopg.Error, OSError, LookupError)

    # ------------------------------------------------------------ writing
    def add(self, index, ageless=frozenset()) -> int:
        """Write the articles of ``index`` (a built in-memory :class:`SentenceIndex`) that the index lacks;
        returns how many this process wrote (0 when another process had). ``ageless``: corpus ids that never
        age out (CORPUS_PATH's)."""
        pg = self.search()
        if pg is None:
            return 0
        rows = [r for r, a in enumerate(index.articles) if pg.row_of(a.id) is None]
        if not rows:
            return 0
        try:
            n = pg.ingest(index, rows, ageless)
        except Exception as exc:  # noqa: BLE001 - written later, when the index is back
            self._down(exc, f"writing {len(rows)} article(s)", pg)
            return 0
        self.written += n
        return n

    def missing(self, articles: list) -> list | None:
        """Those of ``articles`` the index lacks; None while it is unavailable (nothing is known)."""
        pg = self.search()
        return None if pg is None else [a for a in articles if pg.row_of(a.id) is None]

    def _write(self, doing: str, call) -> int:
        """``call(search)`` on the open index (0 while it is unavailable, or when it fails: logged, retried)."""
        pg = self.search()
        if pg is None:
            return 0
        try:
            return call(pg)
        except Exception as exc:  # noqa: BLE001 - the next retention tick tries again
            self._down(exc, doing, pg)
            return 0

    def retire_older(self, cutoff: float) -> int:
        """Tombstone the feed and link articles that arrived before ``cutoff``; returns how many went."""
        return self._write("retiring old articles", lambda pg: pg.retire_older(cutoff))

    def cap_per_guild(self, limit: int) -> int:
        """Tombstone each server's oldest articles (by arrival) past ``limit`` (the articles of no server count
        as one more server). Returns how many went."""
        return self._write("capping servers' articles", lambda pg: pg.cap_per_guild(limit)) if limit > 0 else 0

    # ------------------------------------------------------------ reading
    def scope(self, guild_id: int | None, scopes) -> np.ndarray | None:
        """One bool per article id: what a member of ``guild_id`` may read (None: unavailable)."""
        pg = self.search(wait=False)
        if pg is None:
            return None
        g = int(guild_id or 0)
        try:
            pg.refresh(0.0 if not self._masks else 1.0)
            key = (g, scopes.version, len(pg._titles), pg._gone_seq)  # noqa: SLF001 - the index's own state
            found = self._masks.get(key)
            if found is None:
                found = pg.scope(g, scopes.shared_to(g), fresh=False)  # refreshed just above
                if len(self._masks) >= _MAX_MASKS:
                    self._masks.clear()
                self._masks[key] = found
        except self.errors as exc:
            self._down(exc, "reading what other processes wrote", pg)
            return None
        return found

    def answerer(self, make):
        """The /ask engine on this index, ``make(search)`` once per connection (None while it is unavailable).
        The engine is the caller's: this floor reads no questions."""
        pg = self.search(wait=False)
        if pg is None:
            return None
        with self._lock:
            if self._answerer is None or self._answerer_key is not pg:
                self._answerer = make(pg)
                self._answerer_key = pg
            return self._answerer

    def support_info(self, ids: list[int]) -> dict[int, tuple[str, str, str | None, str | None]] | None:
        """id -> (corpus id, title, date, url); None when the index failed meanwhile."""
        pg = self.search(wait=False)
        if pg is None:
            return None
        try:
            return pg.article_info(ids)
        except Exception as exc:  # noqa: BLE001
            self._down(exc, "reading the answer's articles", pg)
            return None

    def find_articles(self, query: str, guild_id: int | None, scopes, limit: int = 5) -> list:
        """Articles of the index that may match ``query`` (an article id, title or topic words) for a member
        of ``guild_id``: the one with that id, else the articles of the best sentences a search finds, at
        most ``limit``, loaded whole (:class:`bot.corpus.article.Article`). The caller matches them as it
        matches its cache. [] while the index is unavailable."""
        visible = self.scope(guild_id, scopes)
        pg = self.search(wait=False)
        if visible is None or pg is None:
            return []
        try:
            row = pg.row_of(query.strip())
            if row is not None and row < visible.size and visible[row]:
                ids = [row]
            else:
                ids = list(dict.fromkeys(c.article for c in pg.search_candidates(query, "other", 4 * limit, visible)))
            return _articles(pg.load_articles(ids[:limit]), ids[:limit])
        except self.errors as exc:
            self._down(exc, "finding an article", pg)
            return []

    def load(self, keys: list[str], guild_id: int | None, scopes) -> list:
        """The articles of these corpus ids that the index holds and a member of ``guild_id`` may see, loaded
        whole (:class:`bot.corpus.article.Article`), in the order asked; [] while it is unavailable."""
        visible = self.scope(guild_id, scopes)
        pg = self.search(wait=False)
        if visible is None or pg is None or not keys:
            return []
        rows = [r for r in (pg.row_of(k) for k in keys) if r is not None and r < visible.size and visible[r]]
        try:
            return _articles(pg.load_articles(rows), rows)
        except self.errors as exc:
            self._down(exc, "reading articles", pg)
            return []

    def counts(self, visible: np.ndarray | None = None) -> tuple[int, int] | None:
        pg = self.search()
        return None if pg is None else pg.counts(visible)

    def failed(self, exc: BaseException, pg=None) -> None:
        """A search on :meth:`answerer` (on connection ``pg``) raised: the index is closed and retried later."""
        self._down(exc, "a search", pg)

    def state(self, guild_id: int | None = None, scopes=None) -> str:
        """/about's line: what a member of ``guild_id`` may read there (``scopes``: the guild shares)."""
        from ..store.db import redact_url

        pg = self.search(wait=False)
        if pg is None:
            return f"in {redact_url(self.url)}: unavailable ({self.error}); answering from this process's cache"
        # as of the last refresh: /about never waits for the connection (an ingest may hold it)
        visible = pg.scope(guild_id, scopes.shared_to(guild_id), fresh=False) if scopes is not None else None
        n_art, n_sent = pg.counts(visible)
        return (f"in {redact_url(self.url)}: {n_art:,} articles, {n_sent:,} sentences; this process wrote "
                f"{self.written:,}")

    def close(self) -> None:
        with self._lock:
            pg, self._pg, self._answerer = self._pg, None, None
        if pg is not None:
            pg.close()
