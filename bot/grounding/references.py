"""Does a summary line lean on something the summary does not say?

A line cut out of its article can open with "He", "These areas", "The
ministry" or end in ", it said": words whose meaning lives in an earlier
sentence of the article. :func:`reference` finds such a word (an opening or
subject pronoun or demonstrative, "these <noun>" anywhere, a bare
", it said", or an opening "The <office>"); :func:`unresolved` says whether
the summary's earlier lines supply what it refers to: the article sentence
right before the line's own is shown (the words were written against it), or
an earlier line names what the word stands for (a person for "he", the noun
for "the ministry"). Rules only, no coreference model: a line counted as
unresolved may be readable to a human, and a resolved one may still be
vague; the benchmark counts with this same detector
(``benchmarks/summary_quality.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPENING = re.compile(
    r"^(?P<word>He|She|His|Her|It|Its|They|Their|Them|This|These|Those|That|Such)\b(?!['’]s\b)(?:\s+(?P<noun>[a-z]+))?"
)
_THE_OFFICE = re.compile(
    r"^The\s+(?P<noun>ministry|paper|newspaper|agency|report|statement|spokesman|spokeswoman|move|decision|"
    r"measure|company|firm|group|official|officials|minister|president|department|court|club|team|man|woman|"
    r"couple|pair|boy|girl|player|driver|suspect|victim)\b"
)
_THESE = re.compile(r"\b(?:these|those)\s+(?!days\b|who\b|which\b|that\b)(?P<noun>[a-z]+)")
_IT_SAID = re.compile(r"(?:^|[,;]\s*)(?P<word>it|they)\s+(?:said|says|added|reported|reports|told|stated)\b", re.I)
_PERSON = frozenset({"he", "she", "his", "her"})
_NAME = re.compile(r"\b[A-Z][a-z’'\-]+(?:\s+[A-Z][a-z’'\-]+)+\b|\b(?:Mr|Mrs|Ms|Dr)\.?\s+[A-Z][a-z]+")
_TIME = frozenset("year years week weeks month months morning afternoon evening night weekend season summer winter "
                  "spring autumn fall time times century decade".split())


@dataclass(frozen=True)
class Reference:
    word: str  # the referring words as written: "He", "these areas", "it said", "The ministry"
    kind: str  # "person", "thing" or "office"
    noun: str = ""  # the noun it stands with ("areas", "ministry"), when there is one


def reference(text: str) -> Reference | None:
    """The first word of ``text`` that refers back to something outside it, or None."""
    t = text.strip().lstrip("\"“‘'(")
    m = _OPENING.match(t)
    if m:
        word = m.group("word")
        noun = m.group("noun") or ""
        if word.lower() in _PERSON:
            return Reference(word, "person")
        if word in ("This", "These", "Those", "That", "Such") and noun:
            if noun in _TIME:  # "This week ..." dates the line, it does not point back
                return _later(t)
            return Reference(f"{word} {noun}", "thing", noun)
        return Reference(word, "thing")
    m = _THE_OFFICE.match(t)
    if m:
        return Reference(m.group(0), "office", m.group("noun").lower())
    return _later(t)


def _later(t: str) -> Reference | None:
    m = _THESE.search(t)
    if m:
        return Reference(m.group(0), "thing", m.group("noun"))
    m = _IT_SAID.search(t)
    if m:
        return Reference(m.group(0).strip(" ,;"), "thing")
    return None


def _names_person(text: str) -> bool:
    return bool(_NAME.search(text))


def unresolved(line: str, source: tuple[int, int] | None, earlier: list[tuple[str, tuple[int, int] | None]]) -> Reference | None:
    """The reference in ``line`` that no earlier shown line resolves, or None.

    ``source``: (article, sentence index) the line was made from; ``earlier``: the lines shown before it,
    each with its own source. Resolved when an earlier line comes from the sentence right before this
    one's in the same article (the words were written against it), or, for a person ("he"), an earlier
    line names a person, or, for "the <noun>" / "these <noun>", an earlier line has that noun."""
    ref = reference(line)
    if ref is None:
        return None
    if source is not None:
        art, pos = source
        if any(src is not None and src[0] == art and src[1] == pos - 1 for _, src in earlier):
            return None
    texts = [t for t, _ in earlier]
    if ref.kind == "person" and any(_names_person(t) for t in texts):
        return None
    if ref.noun and any(re.search(rf"\b{re.escape(ref.noun)}\b", t, re.I) for t in texts):
        return None
    return ref


def count_unresolved(lines: list[tuple[str, tuple[int, int] | None]]) -> list[Reference | None]:
    """:func:`unresolved` for each line of a summary, in order."""
    return [unresolved(text, src, lines[:i]) for i, (text, src) in enumerate(lines)]
