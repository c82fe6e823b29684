"""Claims (today's invention guard): the checkable facts in generated text must be in its sources.

A *claim* is something a reader takes as fact and a small model likes to make
up:

* numbers - digits with thousands separators, decimals, currency and scale
  (``2,000``, ``$47 billion``, ``£330million``, ``13%``, ``13 per cent``,
  ``20th``) and written numbers (``two``, ``a dozen``, ``three million``);
  compared by value, so ``2,000`` = ``2000`` and ``$47bn`` = ``47 billion``;
* names - runs of capitalised words (``International Monetary Fund``,
  ``Kazakhstan's``), acronyms (``U.S.``, ``BBC``); a capitalised word at the
  start of a sentence is not a name when it is a common word (``The``,
  ``But``, ``Police``); any other is, and is matched ignoring case;
* dates - weekdays and months (as names) and relative dates (``yesterday``,
  ``last week``).

:func:`unsupported` returns the claims of a text that its support texts do not
contain, plus any negation it adds (``not`` with no negation in the sources)
or drops (``would not cut`` -> ``would cut``). An empty list means every
checkable fact is backed; it does not prove the text is *true* (relations
between backed names can still be wrong), which is why callers also require
strong overall similarity to the sources.

Names match token by token, ignoring case and possessives; a token also
matches a longer or shorter form of itself when the shorter is at least five
letters and the difference at most four (``Kazakh`` ~ ``Kazakhstan``,
``McCoy`` ~ ``McCoys``), so demonyms and plurals of a backed name pass while
``Beijing`` for ``Shanghai`` does not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Claim", "check", "claims", "extract", "unsupported", "negation_problems"]

_NUM_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12, "hundred": 100, "thousand": 1000,
    "million": 1e6, "billion": 1e9, "trillion": 1e12,
}  # fmt: skip
_SCALES = {
    "hundred": 100, "thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9,
    "b": 1e9, "trillion": 1e12, "tn": 1e12,
}  # fmt: skip
_SCALE_WORDS = ("hundred", "thousand", "million", "billion", "trillion")
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
}  # fmt: skip
_MONTH_ABBR = {
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
    "aug": "august", "sep": "september", "sept": "september", "oct": "october", "nov": "november",
    "dec": "december",
}  # fmt: skip
_DAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
_RELATIVE_DATES = re.compile(
    r"\b(?:yesterday|today|tonight|tomorrow|(?:last|next|this)\s+(?:week|weekend|month|year|night|morning|"
    r"evening|season|spring|summer|autumn|fall|winter))\b",
    re.I,
)
_NEGATIONS = {"not", "no", "never", "nobody", "nothing", "none", "neither", "nor", "cannot", "without", "nowhere"}
# Sentence-initial words that are not names even when capitalised. Anything else
# sentence-initial is still checked, case-insensitively.
_COMMON = set(
    """a an the this that these those there here it its it's he she they we you i his her their our your my
    and but or so yet for nor if when while after before as at by in on of to from with without into over under
    about above below between during since until than then also however meanwhile still now later earlier today
    yesterday tomorrow tonight some many most more much few several all both each every any no not none one
    other another such what which who whom whose why how where mr mrs ms dr
    despite although though because instead even just only already again once according last next new
    officials police authorities people experts researchers critics witnesses residents sources""".split()
)
_TITLES = {"mr", "mrs", "ms", "dr", "prof", "sir", "dame", "lord", "lady", "st", "gen", "sen", "rep", "gov", "lt",
           "col", "capt", "sgt", "rev", "mx"}  # fmt: skip
_NAME_JOINERS = {"of", "de", "da", "del", "der", "van", "von", "al", "bin", "la", "le", "du", "y", "&"}

_WORD = re.compile(r"[^\W\d_](?:[\w’'\-&.]*\w)?", re.U)
_NUMBER = re.compile(
    r"(?P<cur>[$£€¥]\s?)?(?<![\w.,])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\d])"
    r"(?:st|nd|rd|th|s)?"
    r"(?:\s?(?P<scale>hundred|thousand|million|billion|trillion|mn|bn|tn|k|m|b)(?![a-z]))?"
    r"(?P<pct>\s?%|\s?per\s?cent|\s?percent)?",
    re.I,
)


@dataclass(frozen=True)
class Claim:
    kind: str  # "number", "name" or "date"
    text: str  # as written in the text
    key: tuple  # what is compared: ("number", value) / ("name", token, ...) / ("date", word)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _strip_possessive(word: str) -> str:
    for suffix in ("’s", "'s", "’", "'"):
        if word.endswith(suffix) and len(word) > len(suffix):
            return word[: -len(suffix)]
    return word


def _value(num: str, scale: str | None, currency: bool) -> float:
    v = float(num.replace(",", ""))
    if scale:
        s = scale.lower()
        if s in ("m", "b", "k") and not currency:
            return v  # "5m" without a currency is more likely metres than millions
        v *= _SCALES[s]
    return v


def _numbers(text: str) -> list[tuple[str, float, float]]:
    """(surface, value, mantissa) for every number written in digits or words."""
    out: list[tuple[str, float, float]] = []
    for m in _NUMBER.finditer(text):
        num = m.group("num")
        mant = float(num.replace(",", ""))
        out.append((m.group(0).strip(), _value(num, m.group("scale"), bool(m.group("cur"))), mant))
    # Written numbers: "two", "three million", "a dozen", "twenty-five".
    words = [(w.group(0), w.start(), w.end()) for w in re.finditer(r"[A-Za-z]+(?:-[A-Za-z]+)?", text)]
    i = 0
    while i < len(words):
        w = words[i][0].lower()
        parts = w.split("-")
        lead = []
        for part in parts:
            if part not in _NUM_WORDS:
                break
            lead.append(part)
        if lead and lead[0] not in _SCALE_WORDS:
            base = float(sum(_NUM_WORDS[p] for p in lead))
            val = base
            start, end = words[i][1], words[i][2]
            j = i + 1
            if len(lead) == len(parts):  # "three million", not "three-year million"
                while j < len(words) and words[j][0].lower() in _SCALE_WORDS:
                    val *= _NUM_WORDS[words[j][0].lower()]
                    end = words[j][2]
                    j += 1
            out.append((text[start:end], val, base))
            i = j
            continue
        i += 1
    return out


def _sentence_initial(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'“‘(«[")
    return not before or before[-1] in ".!?:;•—–-\n"


def _names(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(surface, normalised tokens) for each run of capitalised words."""
    words = list(_WORD.finditer(text))
    spans: list[list[re.Match]] = []
    cur: list[re.Match] = []

    def close() -> None:
        nonlocal cur
        while cur and cur[-1].group(0).lower() in _NAME_JOINERS:
            cur.pop()
        if cur:
            spans.append(cur)
        cur = []

    for i, m in enumerate(words):
        w = m.group(0)
        initial = _sentence_initial(text, m.start())
        gap = text[words[i - 1].end() : m.start()] if i else ""
        if cur and (initial or gap.strip(" .") or len(gap) > 2):
            close()
        if w[0].isupper():
            base = _strip_possessive(w).rstrip(".").lower()
            if w == "I" or w.startswith(("I’", "I'")):
                close()
                continue
            if not cur and ((initial and base in _COMMON) or base in _TITLES):
                continue  # "The ...", "Mr" alone: not claims (the name after "Mr" is)
            cur.append(m)
            if _strip_possessive(w) != w:  # "Kazakhstan's Foreign Ministry": two names
                close()
        elif cur and w.lower() in _NAME_JOINERS and i + 1 < len(words) and words[i + 1].group(0)[0].isupper():
            cur.append(m)
        else:
            close()
    close()
    out = []
    for span in spans:
        toks = tuple(
            _name_token(m.group(0)) for m in span if m.group(0).lower() not in _NAME_JOINERS
        )
        toks = tuple(t for t in toks if t)
        if toks:
            out.append((text[span[0].start() : span[-1].end()], toks))
    return out


def _name_token(word: str) -> str:
    w = _strip_possessive(word).replace(".", "")
    return w.lower()


def _dates(text: str) -> list[tuple[str, str]]:
    out = []
    for m in _RELATIVE_DATES.finditer(text):
        out.append((m.group(0), " ".join(m.group(0).lower().split())))
    return out


def extract(text: str) -> list[Claim]:
    """Every claim in ``text``, in order of appearance (numbers, then names, then dates)."""
    text = _norm(text)
    out: list[Claim] = []
    for surface, value, _ in _numbers(text):
        out.append(Claim("number", surface, ("number", round(value, 6))))
    for surface, toks in _names(text):
        if len(toks) == 1 and (toks[0] in _DAYS or toks[0] in _MONTHS or toks[0] in _MONTH_ABBR):
            out.append(Claim("date", surface, ("date", _MONTH_ABBR.get(toks[0], toks[0]))))
        else:
            out.append(Claim("name", surface, ("name", *toks)))
    for surface, norm in _dates(text):
        out.append(Claim("date", surface, ("date", norm)))
    return out


def claims(text: str) -> set[str]:
    """The numbers, names and dates in ``text``, as written."""
    return {c.text for c in extract(text)}


class _Support:
    """What a set of source texts contains, normalised for claim matching."""

    def __init__(self, texts: Iterable[str]) -> None:
        joined = _norm("\n".join(texts))
        self.text = joined
        self.values: set[float] = set()
        for _, value, mant in _numbers(joined):
            self.values.add(round(value, 6))
            self.values.add(round(mant, 6))
        words = [_name_token(m.group(0)) for m in _WORD.finditer(joined)]
        # Hyphenated compounds ("Louis-Dreyfus", "Kazakh-born") also count part by part.
        self.tokens = set(words) | {p for w in words if "-" in w for p in w.split("-") if p}
        # Acronyms of capitalised runs: "International Monetary Fund" backs "IMF".
        for run in re.findall(r"(?:[A-Z][\w’'\-]*(?:\s+(?:of|and|for|the|&)\s+|\s+))+[A-Z][\w’'\-]*", joined):
            initials = "".join(w[0] for w in run.split() if w[0].isupper()).lower()
            if len(initials) >= 2:
                self.tokens.add(initials)
        self.lower = " ".join(joined.lower().split())
        self.word_seq = re.findall(r"[\w’']+", self.lower)

    def has_value(self, value: float) -> bool:
        return round(value, 6) in self.values

    def has_token(self, tok: str) -> bool:
        if tok in self.tokens:
            return True
        if "-" in tok and all(p in self.tokens for p in tok.split("-") if p):
            return True
        if len(tok) >= 5:
            for t in self.tokens:
                if len(t) >= 5 and (t.startswith(tok) or tok.startswith(t)) and abs(len(t) - len(tok)) <= 4:
                    return True
        return False

    def has_date(self, norm: str) -> bool:
        if " " in norm:
            return norm in self.lower
        if norm in self.tokens:
            return True
        return any(_MONTH_ABBR.get(t) == norm for t in self.tokens)


def _has_negation(words: list[str]) -> bool:
    return any(w in _NEGATIONS or w.endswith(("n't", "n’t")) for w in words)


def negation_problems(text: str, support_texts: Iterable[str]) -> list[str]:
    """A negation the text adds, or one it drops from a phrase it copies."""
    sup = _Support(support_texts)
    words = re.findall(r"[\w’']+", _norm(text).lower())
    out: list[str] = []
    if _has_negation(words) and not _has_negation(sup.word_seq):
        neg = next(w for w in words if w in _NEGATIONS or w.endswith(("n't", "n’t")))
        out.append(f"negation '{neg}'")
    # Dropped: the support says "a not b" and the text says "a b" (a phrase the support never has).
    pairs = set(zip(words, words[1:]))
    seq = sup.word_seq
    support_pairs = set(zip(seq, seq[1:]))
    for i, w in enumerate(seq):
        if w in _NEGATIONS and 0 < i < len(seq) - 1:
            a, b = seq[i - 1], seq[i + 1]
            if (a, b) in pairs and (a, b) not in support_pairs:
                out.append(f"dropped negation '{a} {w} {b}'")
        elif w.endswith(("n't", "n’t")) and i < len(seq) - 1:
            stem = w[:-3]
            if stem and (stem, seq[i + 1]) in pairs and (stem, seq[i + 1]) not in support_pairs:
                out.append(f"dropped negation '{w} {seq[i + 1]}'")
    return out


def check(text: str, support_texts: Iterable[str]) -> list[tuple[Claim, bool]]:
    """Every claim in ``text`` with whether ``support_texts`` back it."""
    sup = _Support(support_texts)
    out = []
    for c in extract(text):
        if c.kind == "number":
            ok = sup.has_value(c.key[1])
        elif c.kind == "date":
            ok = sup.has_date(c.key[1])
        else:
            ok = all(sup.has_token(t) for t in c.key[1:])
        out.append((c, ok))
    return out


def unsupported(text: str, support_texts: Iterable[str]) -> list[str]:
    """The claims in ``text`` that ``support_texts`` do not contain (as written), plus negation problems.

    Empty when every number, name and date in ``text`` occurs in the support
    and no negation was added or dropped.
    """
    support_texts = list(support_texts)
    missing: list[str] = []
    for c, ok in check(text, support_texts):
        if not ok and c.text not in missing:
            missing.append(c.text)
    missing.extend(p for p in negation_problems(text, support_texts) if p not in missing)
    return missing
