"""The Article record: immutable, sentences already split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .segment import normalise_space, split_sentences


def content_id(title: str, text: str) -> str:
    """A stable id derived from the content (same article -> same id on every start)."""
    h = hashlib.sha1(f"{normalise_space(title)}\n{normalise_space(text)}".encode()).hexdigest()
    return h[:12]


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    sentences: tuple[str, ...]
    date: str | None = None
    url: str | None = None
    highlights: tuple[str, ...] = ()
    dateline: str | None = None
    source: str = ""  # file (and line) it came from
    guild_id: int | None = None  # None: global; else only that Discord server's (a feed or a link it added)
    arrived: float | None = field(default=None, compare=False)  # when it reached the corpus (epoch s; retention)
    order: int = field(default=0, compare=False)  # load order; higher = added later

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @classmethod
    def build(
        cls,
        *,
        title: str,
        text: str,
        id: str | None = None,
        date: str | None = None,
        url: str | None = None,
        highlights: list[str] | tuple[str, ...] = (),
        dateline: str | None = None,
        source: str = "",
        guild_id: int | None = None,
        arrived: float | None = None,
    ) -> Article:
        title = normalise_space(title)
        sentences = tuple(split_sentences(text))
        aid = str(id).strip() if id is not None and str(id).strip() else content_id(title, text)
        return cls(
            id=aid,
            title=title,
            sentences=sentences,
            date=(normalise_space(date) or None) if date else None,
            url=url or None,
            highlights=tuple(normalise_space(h) for h in highlights if normalise_space(h)),
            dateline=dateline,
            source=source,
            guild_id=guild_id or None,
            arrived=float(arrived) if arrived is not None else None,
        )
