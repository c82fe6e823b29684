"""Text normalisation shared by the grounding checks: PTB detokenising, word tokens, stems.

SummEval's articles and summaries are PTB-tokenised (``team 's``, ``did n't``,
```` `` ```` / ``''`` for quotes, ``-lrb-``) and many system summaries are
lower-cased; :func:`detokenize` turns such text back into ordinary prose, and
:func:`tokens` / :func:`stems` make plain and PTB text compare alike.
"""

from __future__ import annotations

import re
from functools import lru_cache

_PTB = [
    (re.compile(r"``\s*"), '"'),
    (re.compile(r"\s*''"), '"'),
    (re.compile(r"-lrb-|-LRB-"), "("),
    (re.compile(r"-rrb-|-RRB-"), ")"),
    (re.compile(r"-lsb-|-LSB-"), "["),
    (re.compile(r"-rsb-|-RSB-"), "]"),
    (re.compile(r"\s+(n't|N'T|'s|'S|'re|'ve|'ll|'d|'m)\b"), r"\1"),
    (re.compile(r"(\w)\s+'(?=\s)"), r"\1'"),  # "players ' union"
    (re.compile(r"\s+([,.;:!?%)\]])"), r"\1"),
    (re.compile(r"([(\[$£€])\s+"), r"\1"),
]
_SPACES = re.compile(r"\s+")


def detokenize(text: str) -> str:
    """Undo PTB tokenisation; plain text passes through unchanged (apart from spacing)."""
    if "``" in text or " 's" in text or " ," in text or " ." in text or "-lrb-" in text.lower() or " n't" in text:
        for pat, rep in _PTB:
            text = pat.sub(rep, text)
    return _SPACES.sub(" ", text).strip()


_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)?", re.U)
STOPWORDS = frozenset(
    """a an the this that these those there here it its he she they we you i his her their our your my me him them
    us and but or so yet for nor if when while after before as at by in on of to from with into over under about
    above below between during since until than then also however is are was were be been being has have had do
    does did will would shall should can could may might must s not no just very more most much many some any all
    both each other such what which who whom whose why how where up out off down again once only own same too
    said says say told according one two new also
    """.split()
)


def tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens; ``n't`` becomes ``not``; possessive ``'s`` is dropped."""
    out = []
    for m in _TOKEN.finditer(text.lower().replace("n't", " not").replace("n’t", " not")):
        w = m.group(0)
        if w[-2:] in ("'s", "’s"):
            w = w[:-2]
        out.append(w.replace(",", "") if w[0].isdigit() else w)
    return out


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return _stemmer().stemWord(word)


def stems(text: str) -> list[str]:
    return [stem(w) for w in tokens(text)]


def content(stem_list: list[str]) -> list[str]:
    """The stems that carry content (stop words out)."""
    return [s for s in stem_list if s not in _STOP_STEMS]


_STOP_STEMS = STOPWORDS | frozenset(stem(w) for w in STOPWORDS)
