"""Sentence segmentation for news text.

pysbd (rule-based, offline, no model data to download) does the work; it
handles quotations, abbreviations (U.S., Dr., No. 10), decimals and money.
Two small repairs sit on top, each for a case seen in news copy:

* ``at 3 p.m. Tuesday`` - pysbd ends the sentence after ``p.m.`` when a
  capitalised day or month follows; such a fragment is joined back.
* BBC-style run-ons (``rose 2%.Profits``) are already split by pysbd.

Paragraphs (lines) are segmented one by one: a sentence never spans a line
break.

pysbd costs about half a millisecond a sentence, most of a warm restart of a
large corpus. Inside ``with split_cache(cache):`` :func:`split_sentences`
first asks ``cache`` (anything with ``get(text)``/``put(text, sentences)``,
e.g. :class:`bot.index.cache.SplitCache`) and stores what it computes.
"""

from __future__ import annotations

import contextlib
import re
from contextvars import ContextVar
from functools import lru_cache

_TIME_ABBR = re.compile(r"\b(?:a\.m|p\.m|A\.M|P\.M)\.\s*$")
_CONTINUES = re.compile(
    r"^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March|April|May|June|"
    r"July|August|September|October|November|December|Jan\.|Feb\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.|"
    r"ET|EST|EDT|GMT|UTC|BST|PT|PST|PDT|local)\b"
)
_WS = re.compile(r"[ \t\u00a0\u2009\u202f]+")
# Bump when the rules below change: cached splits made by other rules are not reused.
SPLITTER_VERSION = "pysbd-{pysbd}+repairs-1"
_active_cache: ContextVar[object | None] = ContextVar("precis_split_cache", default=None)


def splitter_version() -> str:
    from importlib.metadata import version

    return SPLITTER_VERSION.format(pysbd=version("pysbd"))


@contextlib.contextmanager
def split_cache(cache):
    """Use ``cache`` for :func:`split_sentences` in this thread/context; flushes it on exit."""
    token = _active_cache.set(cache)
    try:
        yield cache
    finally:
        _active_cache.reset(token)
        flush = getattr(cache, "flush", None)
        if flush is not None:
            flush()


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def normalise_space(text: str) -> str:
    return _WS.sub(" ", text).strip()


def split_paragraph(paragraph: str) -> list[str]:
    paragraph = normalise_space(paragraph)
    if not paragraph:
        return []
    parts = [p.strip() for p in _segmenter().segment(paragraph)]
    out: list[str] = []
    for part in parts:
        if not part:
            continue
        if out and _TIME_ABBR.search(out[-1]) and _CONTINUES.match(part):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def split_sentences(text: str) -> list[str]:
    """Split text into sentences; newlines are paragraph breaks."""
    cache = _active_cache.get()
    if cache is not None:
        found = cache.get(text)
        if found is not None:
            return found
    out: list[str] = []
    for line in text.splitlines():
        out.extend(split_paragraph(line))
    if cache is not None:
        cache.put(text, out)
    return out
