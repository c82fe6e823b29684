"""What a handler returns: plain data that every renderer (console, JSON, Discord) understands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["summary", "answer", "articles", "help", "about", "info", "error"]


@dataclass(frozen=True)
class SupportItem:
    article_id: str
    title: str
    date: str | None
    index: int  # sentence index within the article
    text: str
    score: float
    url: str | None = None  # the article's link (feeds, pasted links); untrusted: renderers check it


@dataclass(frozen=True)
class Line:
    """One sentence of a summary or answer, with the article sentences that support it."""

    text: str
    support: tuple[SupportItem, ...] = ()


@dataclass(frozen=True)
class ArticleItem:
    id: str
    title: str
    date: str | None
    sentences: int
    source: str = ""


@dataclass(frozen=True)
class Reply:
    kind: Kind
    title: str = ""
    lines: tuple[Line, ...] = ()
    notes: tuple[str, ...] = ()
    articles: tuple[ArticleItem, ...] = ()
    text: str = ""
    ok: bool = True
    abstained: bool = False
    meta: dict = field(default_factory=dict)

    @classmethod
    def error(cls, message: str, **meta) -> Reply:
        return cls(kind="error", text=message, ok=False, meta=meta)

    @property
    def supporting(self) -> list[SupportItem]:
        """All supporting sentences, deduplicated, in the order they first appear."""
        seen, out = set(), []
        for line in self.lines:
            for s in line.support:
                key = (s.article_id, s.index)
                if key not in seen:
                    seen.add(key)
                    out.append(s)
        return out
