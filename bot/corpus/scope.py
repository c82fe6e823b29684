"""Who may see which article: the guild scoping of every query.

* an article with ``guild_id`` None (``CORPUS_PATH``, the ``FEEDS`` setting,
  the console's and the batch CLI's feeds and links) is global: everyone sees it;
* an article a guild's feed or pasted link brought is that guild's; another
  guild whose feed (or link) brings the same article later shares it
  (recorded in the store's ``article_guilds``); sharing with guild 0 (a global
  feed carries it too) makes it global.

:meth:`Scopes.mask` turns that into one boolean per article row of an index,
computed once per (article list, guild, share version) and cached, so a
query pays an array lookup, not a loop. ``None`` means "every row is
visible" (the common case: no guild-owned articles at all), which callers
treat as no filter.
"""

from __future__ import annotations

import threading
from typing import Iterable, Sequence

import numpy as np

from .article import Article

GLOBAL = 0  # a share with guild 0: a global source carries the article too
_MAX_CACHED = 64


def guild_key(guild_id: int | None) -> int:
    """The guild a request comes from; 0 for none (a DM, the console without --guild, the batch CLI)."""
    return int(guild_id or 0)


class Scopes:
    def __init__(self) -> None:
        self._shared: dict[str, set[int]] = {}  # article id -> guilds that also brought it
        self._by_guild: dict[int, set[str]] = {}  # the same, by guild
        self.version = 0
        self._lock = threading.Lock()
        self._owners: dict[int, tuple[Sequence[Article], np.ndarray, dict[str, int]]] = {}
        self._masks: dict[tuple[int, int], tuple[int, Sequence[Article], np.ndarray | None]] = {}

    # ------------------------------------------------------------ sharing
    def share(self, article_id: str, guild_id: int | None) -> bool:
        """Let ``guild_id`` (0: everyone) see ``article_id``; True when that is new."""
        g = guild_key(guild_id)
        with self._lock:
            have = self._shared.setdefault(article_id, set())
            if g in have:
                return False
            have.add(g)
            self._by_guild.setdefault(g, set()).add(article_id)
            self.version += 1
            return True

    def load(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Shares recorded before (the store's ``article_guilds``)."""
        with self._lock:
            for aid, g in pairs:
                self._shared.setdefault(aid, set()).add(int(g or 0))
                self._by_guild.setdefault(int(g or 0), set()).add(aid)
            self.version += 1

    def shared_to(self, guild_id: int | None) -> list[str]:
        """The article ids shared with ``guild_id`` or with everyone (guild 0): what another guild's feed
        or link brought and this guild may also read."""
        g = guild_key(guild_id)
        with self._lock:
            return list(self._by_guild.get(GLOBAL, ())) + (list(self._by_guild.get(g, ())) if g else [])

    def guilds_of(self, article: Article) -> set[int] | None:
        """The guilds that may see ``article``; None when everyone may."""
        shared = self._shared.get(article.id, set())
        if article.guild_id is None or GLOBAL in shared:
            return None
        return {article.guild_id} | shared

    def can_see(self, article: Article, guild_id: int | None) -> bool:
        guilds = self.guilds_of(article)
        return guilds is None or guild_key(guild_id) in guilds

    # ------------------------------------------------------------- masks
    def _owner_array(self, articles: Sequence[Article]) -> tuple[np.ndarray, dict[str, int]]:
        key = id(articles)
        found = self._owners.get(key)
        if found is not None and found[0] is articles:
            return found[1], found[2]
        owners = np.fromiter((a.guild_id or 0 for a in articles), dtype=np.int64, count=len(articles))
        rows = {a.id: i for i, a in enumerate(articles) if a.guild_id}
        with self._lock:
            if len(self._owners) >= 8:
                self._owners.clear()
            self._owners[key] = (articles, owners, rows)
        return owners, rows

    def mask(self, articles: Sequence[Article], guild_id: int | None) -> np.ndarray | None:
        """One bool per article row: may ``guild_id`` see it? None when all are visible."""
        g = guild_key(guild_id)
        key = (id(articles), g)
        cached = self._masks.get(key)
        if cached is not None and cached[1] is articles and cached[0] == self.version:
            return cached[2]
        version = self.version
        owners, private_rows = self._owner_array(articles)
        if not private_rows:
            mask = None
        else:
            visible = (owners == 0) | (owners == g) if g else owners == 0
            with self._lock:
                shared = [(aid, set(gs)) for aid, gs in self._shared.items() if aid in private_rows]
            for aid, gs in shared:
                if GLOBAL in gs or g in gs:
                    visible[private_rows[aid]] = True
            mask = None if visible.all() else visible
        with self._lock:
            if len(self._masks) >= _MAX_CACHED:
                self._masks.clear()
            self._masks[key] = (version, articles, mask)
        return mask
