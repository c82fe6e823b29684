"""Sentence segmentation for news text.

pysbd (rule-based, offline, no model data to download) does the work; it
handles quotations, abbreviations (U.S., Dr., No. 10), decimals and money.
Two small repairs sit on top, each for a case seen in news copy:

* ``at 3 p.m. Tuesday`` - pysbd ends the sentence after ``p.m.`` when a
  capitalised day or month follows; such a fragment is joined back.
* BBC-style run-ons (``rose 2%.Profits``) are already split by pysbd.

Paragraphs (lines) are segmented one by one: a sentence never spans a line
break.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TIME_ABBR = re.compile(r"\b(?:a\.m|p\.m|A\.M|P\.M)\.\s*$")
_CONTINUES = re.compile(
    r"^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March|April|May|June|"
    r"July|August|September|October|November|December|Jan\.|Feb\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.|"
    r"ET|EST|EDT|GMT|UTC|BST|PT|PST|PDT|local)\b"
)
_WS = re.compile(r"[ \t\u00a0\u2009\u202f]+")


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
    out: list[str] = []
    for line in text.splitlines():
        out.extend(split_paragraph(line))
    return out
