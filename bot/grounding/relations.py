"""Relation check for a written answer: does ONE supporting sentence say it, with the same bindings?

The summaries' invention guard asks whether each name and number of a
generated text occurs somewhere in the sources. That lets through "2,000-plus
ethnic Kazakhs had been released" when the sources say 2,000 may *leave* and
15 were *released*. This check is stricter and looks at relations:

* copy: every content word of the claim (stemmed) is in the one sentence it
  is checked against;
* number -> noun: a number's neighbouring content words in the claim (the
  noun it counts, the verb before it) sit next to the same number in the
  sentence, within :data:`WINDOW` content words on the same side;
* who did what: a name's following content word (usually its verb) follows
  the same name in the sentence, within :data:`WINDOW` content words;
* negation: the claim and the sentence agree on "not / no / never".

:func:`backing_sentence` returns the first supporting sentence that passes,
or ``None`` with the problems found against the closest one. The /ask
answers use it through :func:`bot.grounding.verifier.backing_sentence`, which
adds the verifier's modality check ("may ban" is not "will ban").
"""

from __future__ import annotations

import re
from functools import lru_cache

WINDOW = 3
_TOKEN = re.compile(r"[$€£¥]?\d+(?:[.,]\d+)*(?:-plus)?%?|[A-Za-z][\w'’-]*")
_NUMERIC = re.compile(r"^[$€£¥]?\d")
_SCALE = frozenset("hundred thousand million billion trillion percent per cent %".split())
_NEGATION = frozenset("not no never n't cannot nor without".split())
_FUNCTION = frozenset(
    """a an the and or but of to in on at for from by with as is are was were be been being has have had do does
    did that which who whom whose this these those it its their his her they them he she we you i will would
    could should may might can shall must than then so if when where while also just more most less than
    about some any all there here s said says say according up out into onto over under after before since
    over very such what how why yes""".split()
)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer, already the index's stemmer

    return Stemmer.Stemmer("english")


def _number(tok: str) -> str:
    return tok.lstrip("$€£¥").removesuffix("-plus").removesuffix("%").replace(",", "")


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, key) per word: kind "num" (key: the digits), "name" (capitalised), "neg" or "word"; function
    words left out (so a capitalised "The" never counts as a name)."""
    out: list[tuple[str, str]] = []
    raw = _TOKEN.findall(text.replace("n’t", " n't").replace("n't", " n't"))
    stems = _stemmer().stemWords([w.lower().strip("'’") for w in raw])
    for i, (w, s) in enumerate(zip(raw, stems)):
        if _NUMERIC.match(w):
            out.append(("num", _number(w)))
        elif w.lower() in _NEGATION or w.lower() == "n't":
            out.append(("neg", "not"))
        elif w.lower() in _FUNCTION:
            continue
        elif w[:1].isupper():
            out.append(("name", s))
        else:
            out.append(("word", s))
    return out


def _content(toks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [t for t in toks if t[0] != "neg" and t[1] not in _SCALE]


def _bound(sc, s_pos, key: str, other: str, side: int, kind: str) -> bool:
    """Whether ``other`` sits on ``side`` of ``key`` in the sentence, close, with no rival of key's kind between."""
    for p in s_pos.get(key, []):
        for j in s_pos.get(other, []):
            gap = (j - p) * side
            if not 0 < gap <= WINDOW + 2:
                continue
            lo, hi = sorted((p, j))
            rivals = [t for t in sc[lo + 1 : hi] if t[0] == kind and t[1] != key]
            if not rivals:
                return True
    return False


def problems(claim: str, sentence: str) -> list[str]:
    """What in ``claim`` the one ``sentence`` does not back; empty when it backs all of it."""
    c = tokens(claim)
    s = tokens(sentence)
    out: list[str] = []
    s_keys = {k for _, k in s}
    cc, sc = _content(c), _content(s)
    for kind, key in cc:
        if key not in s_keys:
            out.append(f"“{key}” is not in the sentence")
    if out:
        return out
    s_pos: dict[str, list[int]] = {}
    for i, (_, key) in enumerate(sc):
        s_pos.setdefault(key, []).append(i)
    for i, (kind, key) in enumerate(cc):
        if kind == "name" and i + 1 < len(cc) and cc[i + 1][0] == "name":
            continue  # inside a multi-word name: its last word carries the binding
        if kind == "num":
            near = [(j, +1) for j in range(i + 1, min(len(cc), i + 1 + WINDOW))]
            near += [(j, -1) for j in range(max(0, i - WINDOW + 1), i)]
        elif kind == "name":
            near = [(i + 1, +1)] if i + 1 < len(cc) else []
        else:
            continue
        for j, side in near:
            okind, other = cc[j]
            if other == key or (kind == "num" and okind == "num"):
                continue
            if not _bound(sc, s_pos, key, other, side, kind):
                out.append(f"“{key}” is not bound to “{other}” in the sentence")
    neg_c = sum(1 for k, _ in c if k == "neg")
    neg_s = sum(1 for k, _ in s if k == "neg")
    if (neg_c > 0) != (neg_s > 0):
        out.append("the claim and the sentence disagree on a negation")
    return out


def backing_sentence(claim: str, sentences: list[str], also=None) -> tuple[int | None, list[str]]:
    """(index of the first sentence that backs ``claim`` fully, []) or (None, problems against the closest).
    ``also(claim, sentence) -> [problems]``: a further check, run on a sentence that passes these."""
    best: list[str] | None = None
    for i, s in enumerate(sentences):
        found = problems(claim, s)
        if not found and also is not None:
            found = also(claim, s)
        if not found:
            return i, []
        if best is None or len(found) < len(best):
            best = found
    return None, best or ["no supporting sentence"]
