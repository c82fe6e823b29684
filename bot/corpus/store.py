"""In-memory corpus: articles by id, in load order, duplicates loaded once."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace

from .article import Article
from .segment import normalise_space

log = logging.getLogger(__name__)


def _fingerprint(article: Article) -> str:
    body = normalise_space(article.text).lower()
    return hashlib.sha1(body.encode()).hexdigest()


class Corpus:
    def __init__(self, articles: list[Article] | None = None) -> None:
        self._by_id: dict[str, Article] = {}
        self._fingerprints: dict[str, str] = {}
        self._retired: set[str] = set()  # ids retired by retention that a reload must not bring back
        self._next_order = 0
        self.duplicates = 0
        if articles:
            self.add(articles)

    def add(self, articles: list[Article], now: float | None = None) -> list[Article]:
        """Add articles; returns the ones that were new (same id or same body = duplicate).
        An article with no ``arrived`` time arrives ``now``; a retired one is not added again."""
        added = []
        now = time.time() if now is None else now
        for art in articles:
            if not art.sentences or art.id in self._retired:
                continue
            fp = _fingerprint(art)
            if art.id in self._by_id or fp in self._fingerprints:
                self.duplicates += 1
                log.debug("duplicate article %s (%s) skipped", art.id, art.source)
                continue
            art = replace(art, order=self._next_order, arrived=now if art.arrived is None else art.arrived)
            self._next_order += 1
            self._by_id[art.id] = art
            self._fingerprints[fp] = art.id
            added.append(art)
        return added

    def remove(self, article_ids, *, remember: bool = False) -> list[Article]:
        """Take articles out (retention); ``remember``: a later ``add`` of the same id is ignored."""
        gone = []
        for aid in article_ids:
            art = self._by_id.pop(aid, None)
            if art is None:
                continue
            fp = _fingerprint(art)
            if self._fingerprints.get(fp) == aid:
                del self._fingerprints[fp]
            if remember:
                self._retired.add(aid)
            gone.append(art)
        return gone

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(self._by_id.values())

    def __contains__(self, article_id: str) -> bool:
        return article_id in self._by_id

    def get(self, article_id: str) -> Article | None:
        return self._by_id.get(article_id)

    def same_as(self, article: Article) -> Article | None:
        """The loaded article with this id or this body, if any (what ``add`` would call a duplicate)."""
        found = self._by_id.get(article.id)
        if found is None:
            aid = self._fingerprints.get(_fingerprint(article))
            found = self._by_id.get(aid) if aid else None
        return found

    @property
    def articles(self) -> list[Article]:
        return list(self._by_id.values())
