"""Per-feed filters: which of a feed's items become articles.

A filter is two lists of words or phrases, ``include`` and ``exclude``, given
comma-separated (``"climate, heat wave"``), matched case-insensitively as whole
words or phrases (``rate`` does not match "rates" or "pirate"; a phrase's words
may be split by any whitespace or line break). An item passes when (there are no
include terms or at least one matches) and no exclude term matches.

Plain Python; the message of :class:`FilterError` is for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

MAX_TERMS = 20
MAX_TERM_CHARS = 100
MAX_FILTER_CHARS = 2200  # one option's text: 20 terms of 100 characters and their separators
CLEAR = "-"  # an option value that clears the filter (Discord cannot send an empty option)


class FilterError(ValueError):
    """Filter text that cannot be used; the message says why."""


def parse_terms(text: str | None, which: str = "filter") -> tuple[str, ...]:
    """``"Climate,  heat WAVE"`` -> ``("climate", "heat wave")``; empty (or ``-``) -> ``()``.
    :class:`FilterError` for too many or too long terms, or a term with no letter or digit."""
    text = (text or "").strip()
    if text == CLEAR:
        return ()
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"The {which} filter is too long ({len(text)} characters; at most {MAX_FILTER_CHARS}).")
    terms: list[str] = []
    for raw in text.split(","):
        term = " ".join(raw.split()).lower()
        if not term:
            continue
        if len(term) > MAX_TERM_CHARS:
            raise FilterError(f"The {which} term {term[:40]!r}... is too long (at most {MAX_TERM_CHARS} characters).")
        if not any(ch.isalnum() for ch in term):
            raise FilterError(f"The {which} term {term!r} has no letter or digit to match.")
        if term not in terms:
            terms.append(term)
    if len(terms) > MAX_TERMS:
        raise FilterError(f"The {which} filter has {len(terms)} terms; at most {MAX_TERMS} (separate them with commas).")
    return tuple(terms)


def _pattern(term: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in term.split()]
    # whole word or phrase: no letter/digit/underscore right before or after (for the ends that are word characters)
    start = r"(?<!\w)" if re.match(r"\w", term) else ""
    end = r"(?!\w)" if re.search(r"\w$", term) else ""
    return re.compile(start + r"\s+".join(words) + end, re.IGNORECASE)


@dataclass(frozen=True)
class FeedFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @cached_property
    def _include(self) -> list[re.Pattern[str]]:
        return [_pattern(t) for t in self.include]

    @cached_property
    def _exclude(self) -> list[re.Pattern[str]]:
        return [_pattern(t) for t in self.exclude]

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def passes(self, *texts: str | None) -> bool:
        """Whether an item with these texts (its title, its text ...) passes the filter."""
        if not self:
            return True
        text = "\n".join(t for t in texts if t)
        if self._include and not any(p.search(text) for p in self._include):
            return False
        return not any(p.search(text) for p in self._exclude)

    def excluded(self, *texts: str | None) -> bool:
        """Whether an exclude term matches these texts already (no need to look further)."""
        text = "\n".join(t for t in texts if t)
        return any(p.search(text) for p in self._exclude)


def describe(include: tuple[str, ...], exclude: tuple[str, ...]) -> str:
    """``include: a, b · exclude: c`` for /feed list (empty when the feed has no filter)."""
    parts = []
    if include:
        parts.append("include: " + ", ".join(include))
    if exclude:
        parts.append("exclude: " + ", ".join(exclude))
    return " · ".join(parts)
