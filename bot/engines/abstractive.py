"""Abstractive summaries that stay grounded in the article.

Pipeline for one article (``AbstractiveSummarizer(row, n)``):

1. **Select** the key source sentences with the extractive engine, leaning
   harder on the lead than extractive mode does (news puts the facts first; on
   CNN/DailyMail this alone is worth ~4 ROUGE-1 points). Every sentence of the
   article is scored, so nothing important is dropped to fit the model; each
   prompt then holds one sentence, which always fits the context (a
   pathologically long sentence is cut to fit, and the reply says so).
2. **Rewrite** each selected sentence into a shorter one with the model:
   greedy decoding (deterministic), a tight prompt, a token budget sized to
   the sentence. With a real Hugging Face model the decoder is *copy
   constrained*: at each step it may only continue with words of the source
   sentence, in order, skipping some (sentence compression). Skips that would
   change the meaning are not offered: dropping a negation, modal or hedge
   (``not``, ``may``, ``allegedly``, ``said``), a title (``former``,
   ``deputy``), or splitting a name or a number from its unit; the sentence
   may end early only at a clause boundary. A 135M model left free invents
   names and numbers; constrained, it compresses. Decoding uses prompt-lookup
   speculation (the source is in the prompt), which is exactly greedy and ~3x
   faster on copy-heavy output. A generator without those internals (a
   remote or fake one) is prompted the same way without the constraint.
   A line that then opens with "He"/"She"/"His" names the person instead
   (:func:`resolve_pronoun`: the one person the sentence before names, word
   for word from the article; that sentence joins the line's support).
3. **Map** each generated sentence to the article sentences that support it:
   ``score = 0.5 * cosine(embeddings) + 0.5 * share of its content terms the
   sentence contains``, over the whole article (every matching article, for a
   topic); the best one to three, each with its score.
4. **Guard** (:mod:`bot.grounding.claims`) and **verifier**
   (:mod:`bot.grounding.verifier`): a sentence whose names, numbers or dates
   are not in its supporting sentences, that adds or drops a negation, whose
   best support is weak, that the verifier does not pass against its support
   (a number bound to another noun, roles swapped, an attribution such as
   "the Asahi newspaper reported" cut, a modal dropped), that is
   a fragment, that leans on what the summary does not say
   (:func:`context_problem`: it opens with "These areas"/"This"/"It"/"The
   ministry", refers to "these areas", ends with a bare ", it said", or drops
   the attribution its source sentence has -- "the paper said", "according
   to ..."; a quote's "he said" may go when the line names the speaker), or
   that repeats an earlier line is regenerated once with stricter settings (no
   skips inside the sentence: its main clause, or for an unconstrained model a
   stricter prompt). If it still fails, that line shows its source sentence,
   the article's own words, in its place (so the lead is never lost); the
   result lists the generated text with the reason and a note says how many
   lines fell back. A repeat is left out.
5. If no generated line survives, the extractive summary is returned instead,
   with a note.

``benchmarks/summary_quality.py --abstractive`` measures it on CNN/DailyMail.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..corpus.segment import split_sentences
from ..index.sentence_index import SentenceIndex
from .extractive import ExtractiveSummarizer, SentenceInfo, Weights
from ..grounding.claims import unsupported
from ..grounding.verifier import Article as Source
from ..grounding.verifier import Verifier

log = logging.getLogger(__name__)

PROMPT = "Shorten this sentence by deleting the less important words:\n{sentence}"
STRICT_PROMPT = "Copy the main clause of this sentence, word for word:\n{sentence}"

FALLBACK_NOTE = "The model's sentences could not be verified against the article, so this is the extractive summary."
TOPIC_FALLBACK_NOTE = (
    "The model's sentences could not be verified against the articles, so these are the extractive sentences."
)
ERROR_NOTE = "The summary model failed ({error}), so this is the extractive summary."
REPEAT = "repeats an earlier sentence"
CONTEXT = "needs context"  # a line that leans on what the summary does not say (see context_problem)
CUT_NOTE = "A very long sentence was shortened to fit the model's context before rewriting."


@dataclass(frozen=True)
class GeneratedLine:
    text: str
    support: tuple[SentenceInfo, ...]  # best first; score = support similarity


@dataclass(frozen=True)
class AbstractiveResult:
    lines: tuple[GeneratedLine, ...]
    dropped: tuple[tuple[str, str], ...]  # (generated text, reason)
    fell_back: bool
    notes: tuple[str, ...]


@dataclass(frozen=True)
class AbstractiveConfig:
    # selection: extractive weights with a stronger lead prior (see module doc)
    position: float = 10.0
    focus_power: float = 1.0
    brevity: float = 0.0
    # generation
    max_new_tokens: int = 80  # cap; the budget is the source sentence's length + a little
    lookup_tokens: int = 10  # prompt-lookup speculation (causal models, constrained path)
    no_repeat_ngram_size: int = 3  # unconstrained path only
    constrained: bool = True  # copy-constrained decoding when the generator exposes model + tokenizer
    target_tokens: int = 20  # beyond this, ending at a clause boundary earns end_bonus per token
    end_bonus: float = 0.15
    skip_bonus: float = 0.0
    # mapping and guard
    dense_weight: float = 0.5
    min_support: float = 0.6  # best support below this: "weak support"
    extra_support: float = 0.45  # further supporting sentences must score at least this
    support_margin: float = 0.15  # ... and be within this of the best one
    max_support: int = 3
    min_words: int = 4
    duplicate_cosine: float = 0.9
    retries: int = 2  # regenerations per summary (deterministic: not time based)
    verify: bool = True  # the verifier (bot/grounding/verifier.py) must pass each sentence against its support
    resolve_pronouns: bool = True  # a line opening "He"/"She" names the person instead (see resolve_pronoun)
    standalone: bool = True  # a line leaning on context the summary lacks shows its source (see context_problem)


# --------------------------------------------------------------------------- copy constraint

_UNIT = re.compile(r"\w+(?:[’'\-.,/&]\w+)*|[^\w\s]")
_PROTECTED = frozenset(
    """not no never nor neither none nobody nothing nowhere cannot without
    may might could would should must can
    allegedly alleged alleges allege reportedly reported reports apparently possibly probably likely unlikely
    perhaps suspected suspect believed believe believes claimed claims claim accused accuses denied denies deny
    rumoured rumored purportedly supposedly if unless whether
    said says say told tells according insisted insists warned warns added adds
    former ex acting deputy vice interim assistant late would-be
    only almost nearly about around approximately roughly more less fewer than over under least up some
    another""".split()
)
_HEDGES = frozenset(
    """claim claims claimed claiming alleges alleged allegedly allegation allegations reportedly rumoured rumored
    suspected accused accuses purportedly supposedly believed denied denies deny""".split()
)
_BOUNDARY = frozenset(
    {",", ";", ":", "-", "–", "—", "(", "and", "but", "which", "who", "whom", "whose", "where", "while", "when",
     "after", "before", "with", "following", "because", "since", "amid", "despite", "although", "though",
     "including", "so", "or", "until", "in", "on", "at", "for", "from", "by", "during"}
)  # fmt: skip
_UNIT_WORDS = frozenset(
    "% per cent percent hundred thousand million billion trillion bn m k years year months month weeks week days "
    "day hours hour minutes miles mile km kilometres kilometers metres meters feet ft pounds lb kg tonnes tons "
    "people".split()
)
_PHRASE_START = frozenset(
    "in on at for from by during with without near after before over under into onto across through "
    "between among against around toward towards despite amid via like".split()
)
_DETERMINERS = frozenset("a an the his her its their this that these those one".split())
_OPENERS = _PHRASE_START | frozenset(
    "however meanwhile but and so yet also still now then earlier later instead today yesterday last this".split()
)
_VERBS = frozenset(
    """is are was were be been being am has have had will would can could shall should may might must do does
    did said says say told tells made makes took takes gave gives came comes went goes left found finds got
    gets saw sees won wins lost became becomes began begins brought bought built held holds kept keeps led
    leads met meets paid pays put puts ran runs sent sends set sets shot sold sells stood stands struck threw
    wrote writes hit hits fell falls flew grew knew rose spoke stole wore drew drove broke chose hid lay rode
    sang sank shook slept spent stuck swam swore taught thought understood woke want wants needs plans faces
    face remains remain seems seem appears appear allows allow""".split()
)
_NOT_VERBS = frozenset("hundred speed indeed need seed feed breed bleed greed creed embed".split())
_TITLE_ABBR = frozenset("mr mrs ms dr prof st gen sen rep gov lt col capt sgt rev".split())
_CURRENCY = frozenset("$£€¥")
_BULLETS = frozenset("•·*-–—>")
_CLOSERS = frozenset("'\"’”)]»")
_TERMINAL = frozenset(".!?")
_NEG_SUFFIX = ("n't", "n’t")


def _is_number(u: str) -> bool:
    return bool(re.fullmatch(r"\d[\d,./]*\w*", u))


def _is_capital(u: str) -> bool:
    return u[:1].isupper()


def _verb_like(w: str) -> bool:
    """A rough finite-verb test (no tagger): auxiliaries, common verbs, regular past tense."""
    if w in _VERBS:
        return True
    return len(w) >= 5 and w.endswith("ed") and w not in _NOT_VERBS


@dataclass
class _Unit:
    text: str
    space: bool  # whitespace before it in the source
    lead: list[int] = field(default_factory=list)  # token ids when it starts the output
    cont: list[int] = field(default_factory=list)  # token ids when it follows other output


class CopyConstraint:
    """Which tokens may come next so the output is a meaning-safe compression of ``source``.

    The output is the source's units (words and punctuation) in order, token
    for token, with only these deletions (each must skip no protected word:
    negation, modal, hedge, attribution, ``former``/``deputy``, quantifier):

    * an aside between two commas or dashes, ``Leon Yeaman, 55, was`` (only
      when it holds no verb, or is a relative clause: ``, who had ...,``);
    * a verb-less phrase from a preposition up to a comma,
      ``club on Friday morning, with`` -> ``club, with``;
    * a parenthesis;
    * a verb-less opening phrase up to a comma (``Speaking in ..., the``) or
      leading punctuation (bullets);
    * everything after a clause boundary, once a verb has been kept (the
      output then takes the sentence's closing punctuation and ends).

    Names, a currency and its number, a number and its unit, ``Mr`` and the
    name after it are never split. ``allowed(generated_ids)`` gives the
    permitted next token ids (an NFA over (unit, token, variant, verb kept)
    states, cached by prefix). ``strict=True`` allows only the last rule.
    """

    def __init__(self, encode, source: str, eos_ids: list[int], strict: bool = False) -> None:
        units: list[_Unit] = []
        for m in _UNIT.finditer(source):
            space = m.start() > 0 and source[m.start() - 1].isspace()
            text = m.group()
            lead = list(encode(text))
            cont = list(encode((" " if space else "") + text)) if units else lead
            if lead and cont:
                units.append(_Unit(text, space, lead, cont))
        self.units = units
        self.eos = list(eos_ids)
        self.strict = strict
        n = len(units)
        low = [u.text.lower() for u in units]
        self.low = low
        self.punct = [not re.match(r"\w", u.text) for u in units]
        self.protected = [w in _PROTECTED or w.endswith(_NEG_SUFFIX) for w in low]
        self.verb = [_verb_like(w) for w in low]
        # hard[k]: units k and k+1 stay together (no skip between, no end after k, no landing on k+1)
        hard = [False] * n
        name = [False] * n  # units k and k+1 belong to one name: no skip or end after k
        for k in range(n - 1):
            a, b = units[k].text, units[k + 1].text
            al, bl = low[k], low[k + 1]
            numberish = _is_number(a) or (al in _UNIT_WORDS and k > 0 and hard[k - 1])
            if a in _CURRENCY or (numberish and (bl in _UNIT_WORDS or bl.startswith("year-old"))):
                hard[k] = True
            elif al == "per" and bl == "cent":
                hard[k] = True
            elif al in _TITLE_ABBR and (b == "." or _is_capital(b)):
                hard[k] = True
            elif a == "." and k > 0 and low[k - 1] in _TITLE_ABBR:
                hard[k] = True
            elif al in _PROTECTED and _is_number(b):
                hard[k] = True  # "more than 2,000", "about 30"
            elif _is_capital(a) and a[0].isalpha() and _is_capital(b) and b[0].isalpha() and b != "I":
                name[k] = True
        self.hard, self.name = hard, name
        # the closing block: final . ! ? and any closing quotes or brackets after it
        end = n
        while end > 0 and units[end - 1].text in _CLOSERS:
            end -= 1
        self.end = end - 1 if end > 0 and units[end - 1].text in _TERMINAL else None
        self.body_end = self.end if self.end is not None else n
        self.prot_prefix = np.concatenate([[0], np.cumsum(self.protected)]).astype(int)
        self.verb_prefix = np.concatenate([[0], np.cumsum(self.verb)]).astype(int)
        # hedge_after[j]: a hedge ("claims", "allegedly") follows unit j; cutting it off would state a claim as fact
        hedges = [w in _HEDGES for w in low] + [False]
        self.hedge_after = [any(hedges[j + 1 :]) for j in range(n)]
        self._jumps = [self._mid_jumps(j) for j in range(n)]
        self._starts = self._start_units()
        self._cache: dict[tuple[int, ...], frozenset] = {}

    # unit-level rules --------------------------------------------------------
    def _count(self, prefix: np.ndarray, a: int, b: int) -> int:
        """How many flagged units among units[a:b]."""
        return int(prefix[b] - prefix[a]) if b > a else 0

    def _may_land(self, k: int) -> bool:
        """May the output continue at unit k after skipping unit k - 1?"""
        if k == 0:
            return True
        if self.hard[k - 1]:
            return False
        # inside a name only on its last word ("Wright" of "Ian Wright")
        return not (self.name[k - 1] and k < len(self.units) - 1 and self.name[k])

    def _may_leave(self, j: int) -> bool:
        """May the output skip what follows unit j, or end after it?"""
        return not (self.hard[j] or self.name[j])

    def _start_units(self) -> list[int]:
        n = len(self.units)
        if n == 0:
            return []
        k0, first_allowed = 0, 0
        if self.units[0].text == "(":  # "(CNN)The ...": a leading source tag goes
            close = next((k for k in range(1, min(n, 8)) if self.units[k].text == ")"), None)
            if close is not None and close + 1 < self.body_end:
                k0 = first_allowed = close + 1
        while k0 < self.body_end - 1 and self.units[k0].text in _BULLETS:
            k0 += 1  # leading bullets and dashes are optional (quotes are not: they must stay paired)
        out = sorted({first_allowed, k0})
        first = self.low[k0]
        if self.strict or not (first in _OPENERS or first.endswith(("ing", "ly"))):
            return out  # only an adverbial opening may go, never the subject
        for k in range(k0 + 1, self.body_end):
            if self.units[k - 1].text in (",", ":") and self._may_land(k):
                if not self._count(self.prot_prefix, 0, k) and not self._count(self.verb_prefix, 0, k):
                    out.append(k)
                    break
        return out

    def _mid_jumps(self, j: int) -> list[int]:
        n = len(self.units)
        if self.strict or j + 2 >= self.body_end or not self._may_leave(j) or self.punct[j]:
            return []
        first = self.units[j + 1].text
        out: list[int] = []

        def ok(a: int, b: int) -> bool:  # skipping units[a:b] and landing on b
            return b < self.body_end and self._may_land(b) and not self._count(self.prot_prefix, a, b)

        if first in (",", "-", "–", "—"):
            for c in range(j + 2, self.body_end):
                if self.units[c].text == first:
                    relative = self.low[j + 2] in ("who", "which", "whose", "whom", "where")
                    if c > j + 2 and ok(j + 1, c + 1) and (relative or not self._count(self.verb_prefix, j + 1, c)):
                        out.append(c + 1)
                    break
        elif first == "(":
            for c in range(j + 2, self.body_end):
                if self.units[c].text == ")":
                    if ok(j + 1, c + 1):
                        out.append(c + 1)
                    break
        elif self.low[j + 1] in _PHRASE_START:
            for c in range(j + 2, self.body_end):
                if self.units[c].text in (",", ";"):
                    # not when what follows the comma may describe the dropped phrase (an apposition)
                    after = self.units[c + 1].text if c + 1 < len(self.units) else "."
                    apposition = after.lower() in _DETERMINERS or _is_capital(after)
                    if ok(j + 1, c) and not self._count(self.verb_prefix, j + 1, c) and not apposition:
                        out.append(c)
                    break
        return [k for k in out if k < n]

    def _ends_clause(self, j: int) -> bool:
        """Is unit j the last before a clause boundary (so the output may end after it)?"""
        if j + 1 >= self.body_end or not self._may_leave(j) or self.punct[j] or self.hedge_after[j]:
            return False
        nxt = self.low[j + 1]
        return (nxt in _BOUNDARY or nxt in (",", ";", ":", "-", "–", "—", "(")) and not self.protected[j + 1]

    def next_units(self, j: int, verb: bool) -> list[int]:
        """Units that may follow unit j (j = -1: the first unit); ``verb``: a verb was kept."""
        if j == -1:
            return list(self._starts)
        out = [j + 1] if j + 1 < len(self.units) else []
        out.extend(self._jumps[j])
        if self.end is not None and self.end > j + 1 and verb and self._ends_clause(j):
            out.append(self.end)
        return out

    def may_stop(self, j: int, verb: bool) -> bool:
        """May the output end after unit j?"""
        if j == len(self.units) - 1:
            return True
        return self.end is None and verb and self._ends_clause(j)

    # token level -------------------------------------------------------------
    def _ids(self, k: int, v: int) -> list[int]:
        return self.units[k].cont if v else self.units[k].lead

    def _states(self, gen: tuple[int, ...]) -> frozenset:
        """NFA states after ``gen``: (unit, its tokens emitted, variant 0=lead/1=cont, verb kept)."""
        if gen in self._cache:
            return self._cache[gen]
        if not gen:
            states = frozenset((k, 0, 0, False) for k in self.next_units(-1, False))
        else:
            t = gen[-1]
            states = frozenset(
                (k, p + 1, v, vb) for k, p, v, vb in self._expand(self._states(gen[:-1])) if self._ids(k, v)[p] == t
            )
        self._cache[gen] = states
        return states

    def _expand(self, states: frozenset) -> set:
        """Completed units open the units that may follow them."""
        out = set()
        for k, p, v, vb in states:
            if p < len(self._ids(k, v)):
                out.add((k, p, v, vb))
            else:
                vb2 = vb or self.verb[k]
                out.update((k2, 0, 1, vb2) for k2 in self.next_units(k, vb2))
        return out

    def allowed(self, gen) -> list[int]:
        return self.options(gen)[0]

    def last_stop(self, gen: list[int]) -> tuple[int, str] | None:
        """For output cut off by the token budget: (tokens to keep, text to append) so it
        ends at the last point where ending was allowed, or None if there was none."""
        tail = "".join(u.text for u in self.units[self.end :]) if self.end is not None else ""
        for n in range(len(gen), 0, -1):
            for k, p, v, vb in self._states(tuple(int(t) for t in gen[:n])):
                if p < len(self._ids(k, v)):
                    continue
                vb2 = vb or self.verb[k]
                if self.may_stop(k, vb2):
                    return n, ""
                if self.end is not None and self.end in self.next_units(k, vb2) and self.end > k + 1:
                    return n, tail
        return None

    def options(self, gen) -> tuple[list[int], set[int], set[int]]:
        """(allowed next ids, ids that end the output early, ids that skip words) after ``gen``."""
        gen = tuple(int(t) for t in gen)
        if gen and gen[-1] in self.eos:
            return self.eos, set(), set()
        states = self._states(gen)
        out: set[int] = set()
        ending: set[int] = set()
        skipping: set[int] = set()
        copying: set[int] = set()
        last = len(self.units) - 1
        for k, p, v, vb in states:
            ids = self._ids(k, v)
            if p < len(ids):
                copying.add(ids[p])
                continue
            vb2 = vb or self.verb[k]
            if self.may_stop(k, vb2):
                out.update(self.eos)
                if k != last:
                    ending.update(self.eos)
            for k2 in self.next_units(k, vb2):
                t = self._ids(k2, 1)[0]
                if k2 == k + 1:
                    copying.add(t)
                elif k2 == self.end:
                    ending.add(t)
                else:
                    skipping.add(t)
        out |= copying | ending | skipping
        if not out:
            return self.eos, set(), set()
        return sorted(out), ending - copying, skipping - copying - ending


class _CopyLogits:
    """Logits processor: mask to :class:`CopyConstraint`, nudge towards shorter output.

    Ending early earns ``end_bonus`` per token generated beyond ``target_tokens``;
    skipping an aside earns ``skip_bonus``. Both are small next to the model's
    own preferences for fluent text; greedy decoding stays deterministic.
    """

    def __init__(self, constraint: CopyConstraint, start: int, target_tokens: int, end_bonus: float, skip_bonus: float):
        self.c = constraint
        self.start = start
        self.target = target_tokens
        self.end_bonus = end_bonus
        self.skip_bonus = skip_bonus

    def __call__(self, input_ids, scores):
        torch = _torch()
        out = torch.full_like(scores, float("-inf"))
        for row in range(scores.shape[0]):
            gen = input_ids[row, self.start :].tolist()
            allowed, ending, skipping = self.c.options(gen)
            idx = torch.tensor(allowed, dtype=torch.long, device=scores.device)
            out[row, idx] = scores[row, idx]
            over = len(gen) - self.target
            if ending and over > 0 and self.end_bonus:
                e = torch.tensor(sorted(ending), dtype=torch.long, device=scores.device)
                out[row, e] += self.end_bonus * over
            if skipping and self.skip_bonus:
                sk = torch.tensor(sorted(skipping), dtype=torch.long, device=scores.device)
                out[row, sk] += self.skip_bonus
        return out


# --------------------------------------------------------------------------- text helpers

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?%)\]’”])(?!\w)")


def _tidy(text: str) -> str:
    text = " ".join(text.replace("\u2022", " ").split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = re.sub(r"([(\[‘“])\s+", r"\1", text)
    text = text.strip(" -–—,;:")
    if not text:
        return ""
    if text[0].islower():
        text = text[0].upper() + text[1:]
    close = _unclosed_quote(text)
    if close:
        body, tail = text.rstrip(), ""
        if body[-1] in _TERMINAL:
            body, tail = body[:-1], body[-1]
        text = f"{body.rstrip(',;: ')}{tail or '.'}{close}"
    if text[-1] not in ".!?'\"’”)":
        text = text.rstrip(",;:-–— ") + "."
    return text


def _unclosed_quote(text: str) -> str:
    """The closing quote a text needs (a compression can cut a quotation short), or ''."""
    if text.count("“") > text.count("”"):
        return "”"
    if text.count('"') % 2:
        return '"'
    opening = len(re.findall(r"(?:^|(?<=[\s(\[]))[‘']", text))
    closing = len(re.findall(r"(?<=[^\s])[’'](?=$|[\s.,;:!?)\]])", text))
    if opening > closing:
        return "’" if "‘" in text else "'"
    return ""


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


# --------------------------------------------------------------------------- pronouns
_OPENING_PRONOUN = re.compile(r"^(He|She|His|Her)\b(?!['’])\s*")
_BACK = 2  # sentences looked back for the person a pronoun stands for


def resolve_pronoun(text: str, index: SentenceIndex, source: SentenceInfo) -> tuple[str, int | None]:
    """A summary line cut out of its article that opens with "He"/"She" ("He said the club ...") tells a
    reader nothing about who; name the person instead, taken word for word from the article: the one
    person named in the nearest of the two sentences before the source sentence, in the fullest form the
    article used before ("Locke" -> "Gary Locke"). "His"/"Her" become "<name>'s"; "Her" only before a
    noun phrase is ambiguous, so it is left alone. Nothing changes when that sentence names no person
    or more than one (no guessing). Returns (text, global row of the sentence that names the person)."""
    from .answer_phrase import named_people  # the same person finder as /ask's "he said" answers

    m = _OPENING_PRONOUN.match(text)
    if not m or m.group(1) == "Her" or source.index == 0:
        return text, None
    base = int(index.offsets[source.article])
    article = " ".join(index.texts[base : int(index.offsets[source.article + 1])])
    for back in range(1, _BACK + 1):
        pos = source.index - back
        if pos < 0:
            break
        row = base + pos
        people = {c.text for c in named_people(index.texts[row], article)}
        if not people:
            continue
        surnames = {p.split()[-1] for p in people}
        if len(surnames) != 1:
            return text, None  # two people: "he" is ambiguous
        surname = surnames.pop()
        name = max(people, key=len)
        for earlier in range(base, row):  # the fullest form used before: "Gary Locke" for "Locke"
            for c in named_people(index.texts[earlier], article):
                if c.text.split()[-1] == surname and len(c.text) > len(name):
                    name = c.text
        rest = text[m.end():]
        if m.group(1) == "His":
            return f"{name}’s {rest}" if "’" in text else f"{name}'s {rest}", row
        return f"{name} {rest}", row
    return text, None


# --------------------------------------------------------------------------- context
# A summary line stands alone: it must not lean on a sentence the summary leaves out.
_REFERENCE_OPENING = re.compile(
    r"^(?:This|These|Those|That|Such|It|Its|They|Their)\b"
    r"|^The\s+(?:ministry|paper|newspaper|agency|report|statement|spokesman|spokeswoman|move|decision|measure)\b"
)
_REFERENCE = re.compile(r"\bthese\s+(?!days\b)[a-z]+")  # "any of these areas" ("those entering" is no reference)
_BARE_SAID = re.compile(r",\s*(?:it|they)\s+(?:said|says|added|reported|reports|told)\W*$", re.I)
_CUE = r"said|says|reported|reports|told|added|announced|stated|wrote|writes|confirmed"
# ", the Asahi newspaper reported", ",” he said", ", it said": who is the words after the comma or quote
_ATTRIB_BEFORE = re.compile(rf"(?:[,”\"]|’(?=\s))\s*(?P<who>(?:[\w’'\-.]+\s+){{0,3}}?[\w’'\-.]+)\s+(?P<cue>{_CUE})\b")
_ATTRIB_AFTER = re.compile(
    rf"(?:[,”\"]|’(?=\s))\s*(?P<cue>said|says|told)\s+(?P<who>[A-Z][\w’'\-]+(?:\s+[A-Z][\w’'\-]+)*)"
)
_ACCORDING = re.compile(r"\baccording to\s+(?P<who>[^,.;:]+)", re.I)
_ATTRIB_WORDS = frozenset(_CUE.split("|")) | {"according"}
_PERSON_PRONOUNS = frozenset({"he", "she"})
_PRONOUN_SAID = re.compile(rf"\b(?:he|she)\s+(?:{_CUE})\b", re.I)
_WHO_STOP = frozenset("the a an its his her their of to".split())


def _attributions(source: str) -> list[tuple[str, str]]:
    """(who, cue) of each report attribution in ``source``: ", the paper said", "according to police"."""
    out = [(m.group("who"), m.group("cue")) for m in _ATTRIB_BEFORE.finditer(source)]
    out += [(m.group("who"), m.group("cue")) for m in _ATTRIB_AFTER.finditer(source)]
    out += [(m.group("who"), "according") for m in _ACCORDING.finditer(source)]
    return out


def context_problem(text: str, source: str, names_person: bool = False) -> str | None:
    """Why the summary line ``text`` (rewritten from ``source``) leans on what the summary does not say, or None:
    it opens with a reference ("These areas ...", "It said ...", "The ministry ..."), refers to "these areas",
    ends with a bare ", it said", or drops the attribution ``source`` has ("the paper said", "..., the Asahi
    newspaper reported", "according to ..."). A quote's "he said" may go when the line names a person
    (``names_person``: e.g. a resolved "He"). Rules only; the caller shows ``source`` instead."""
    if _REFERENCE_OPENING.match(text):
        return f"{CONTEXT}: opens with '{' '.join(text.split()[:2])}'"
    m = _REFERENCE.search(text)
    if m:
        return f"{CONTEXT}: refers to '{m.group(0)}'"
    if _BARE_SAID.search(text):
        return f"{CONTEXT}: ends with a bare '{_BARE_SAID.search(text).group(0).strip(' ,.')}'"
    words = {w.lower() for w in re.findall(r"[\w’'\-]+", text)}
    has_cue = bool(words & _ATTRIB_WORDS)
    for who, cue in _attributions(source):
        who_words = [w for w in re.findall(r"[\w’'\-]+", who) if w.lower() not in _WHO_STOP]
        if not who_words:
            continue
        head = who_words[-1].lower() if cue != "according" else who_words[0].lower()
        if head in _PERSON_PRONOUNS:
            if (has_cue and head in words) or names_person:
                continue
        elif has_cue and head in words:
            continue
        elif cue in ("said", "says", "told") and who_words[0][:1].isupper() and who_words[-1].lower() in words:
            continue  # a quote's speaker still named
        return f"{CONTEXT}: attribution dropped: '{who} {cue}'" if cue != "according" else (
            f"{CONTEXT}: attribution dropped: 'according to {who}'")
    return None


def _by_source(cands: list[_Candidate]) -> list[list[_Candidate]]:
    """Candidates grouped by their source sentence, in order."""
    groups: dict[tuple[int, int], list[_Candidate]] = {}
    for cd in cands:
        groups.setdefault((cd.source.article, cd.source.index), []).append(cd)
    return list(groups.values())


# --------------------------------------------------------------------------- summarizer


@dataclass
class _Candidate:
    source: SentenceInfo
    text: str
    support: tuple[SentenceInfo, ...] = ()
    problem: str | None = None
    emb: np.ndarray | None = None  # the generated sentence's embedding
    named_in: int | None = None  # global row of the sentence that names whom a resolved "He"/"She" stands for


class AbstractiveSummarizer:
    """Grounded abstractive summaries of one article or of a topic (see the module doc)."""

    def __init__(
        self,
        index: SentenceIndex,
        extractive: ExtractiveSummarizer,
        generator: Any,
        config: AbstractiveConfig | None = None,
    ) -> None:
        self.index = index
        self.extractive = extractive
        self.generator = generator
        self.config = config or AbstractiveConfig()
        c = self.config
        base = getattr(extractive, "weights", None) or Weights()
        self.selector = ExtractiveSummarizer(
            index, replace(base, position=c.position, focus_power=c.focus_power, brevity=c.brevity)
        )
        self.last_stats: dict[str, float] = {}
        self.verifier = Verifier() if c.verify else None

    # ------------------------------------------------------------------ public
    def __call__(self, article_row: int, sentences_count: int = 3) -> AbstractiveResult:
        ix = self.index
        rows = ix.rows(article_row)
        m = rows.stop - rows.start
        if m == 0:
            return AbstractiveResult((), (), False, ("The article has no sentences.",))
        n = max(1, min(int(sentences_count), m))
        sources = self.selector(article_row, n)
        notes: tuple[str, ...] = ()
        if m < int(sentences_count):
            notes = (f"The article has only {m} sentence(s).",)
        support_rows = np.arange(rows.start, rows.stop)
        return self._run(
            sources,
            support_rows,
            lambda: self.extractive(article_row, n),
            FALLBACK_NOTE,
            notes,
        )

    def topic(self, sources: list[SentenceInfo], sentences_count: int = 3) -> AbstractiveResult:
        sources = list(sources)[: max(1, int(sentences_count))]
        if not sources:
            return AbstractiveResult((), (), False, ("No sentences to summarise.",))
        ix = self.index
        arts = sorted({s.article for s in sources})
        support_rows = np.concatenate([np.arange(ix.offsets[a], ix.offsets[a + 1]) for a in arts])
        return self._run(sources, support_rows, lambda: list(sources), TOPIC_FALLBACK_NOTE, ())

    # ------------------------------------------------------------------ pipeline
    def _run(self, sources, support_rows, fallback, fallback_note, notes) -> AbstractiveResult:
        c = self.config
        t0 = time.perf_counter()
        stats = {"generated_tokens": 0.0, "regenerated": 0.0, "generations": 0.0}
        notes = list(notes)
        try:
            prompts, cut = self._fit([s.text for s in sources])
            if cut:
                notes.append(CUT_NOTE)
            outputs = self._generate(prompts, strict=False, stats=stats)
        except Exception as exc:  # noqa: BLE001 - a failing model must not take the reply down
            log.exception("abstractive generation failed")
            lines = tuple(GeneratedLine(s.text, (s,)) for s in fallback())
            short = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
            self.last_stats = {**stats, "seconds": time.perf_counter() - t0}
            return AbstractiveResult(lines, (), True, (*notes, ERROR_NOTE.format(error=short)))

        whole = self._constrains()
        cands: list[_Candidate] = []
        for src, out in zip(sources, outputs):
            cands.extend(self._candidates(src, out, whole))
        self._check(cands, support_rows)

        retries = c.retries
        failing = [i for i, cd in enumerate(cands) if cd.problem and cd.problem != REPEAT]
        if failing and retries > 0:
            # one regeneration per failing source sentence, stricter settings
            by_source: dict[tuple[int, int], int] = {}
            for i in failing:
                key = (cands[i].source.article, cands[i].source.index)
                if key not in by_source and len(by_source) < retries:
                    by_source[key] = i
            idx = list(by_source.values())
            prompts2, _ = self._fit([cands[i].source.text for i in idx])
            try:
                outs2 = self._generate(prompts2, strict=True, stats=stats)
            except Exception:  # noqa: BLE001
                log.exception("abstractive regeneration failed")
                outs2 = [""] * len(idx)
            stats["regenerated"] += len(idx)
            for i, out in zip(idx, outs2):
                new = self._candidates(cands[i].source, out, whole)[:1]
                if not new:
                    continue
                self._check(new, support_rows, accepted=[cd for cd in cands if not cd.problem])
                if not new[0].problem:
                    cands[i] = replace(new[0], problem=None)
                else:
                    cands[i].problem = f"{cands[i].problem} (regenerated: {new[0].problem})"

        # Each source sentence keeps its place: its generated lines that passed, else the sentence itself.
        kept: list[GeneratedLine] = []
        dropped: list[tuple[str, str]] = []
        fell: dict[str, int] = {"unverified": 0, "context": 0}
        generated = 0
        for group in _by_source(cands):
            for cd in group:
                if cd.problem:
                    dropped.append((cd.text, cd.problem))
            ok = [cd for cd in group if not cd.problem]
            if ok:
                kept.extend(GeneratedLine(cd.text, cd.support) for cd in ok)
                generated += len(ok)
                continue
            failed = [cd.problem for cd in group if cd.problem and cd.problem != REPEAT]
            if failed and not any(cd.problem == REPEAT for cd in group):
                # the lead is never lost: the article's own sentence stands in for its failed rewrite
                src = group[0].source
                kept.append(GeneratedLine(src.text, (replace(src, score=1.0),)))
                fell["context" if failed[0].startswith(CONTEXT) else "unverified"] += 1
        # a duplicate check after regeneration
        kept = self._dedupe(kept, dropped)
        self.last_stats = {**stats, "seconds": time.perf_counter() - t0}
        if not generated:
            lines = tuple(GeneratedLine(s.text, (s,)) for s in fallback())
            return AbstractiveResult(lines, tuple(dropped), True, (*notes, fallback_note))
        one = len({s.article for s in sources}) == 1
        where, own = ("article", "article's") if one else ("articles", "articles'")
        for kind, why in (
            ("unverified", f"could not be verified against the {where}"),
            ("context", "left out who reported it or leaned on words the summary does not explain"),
        ):
            k = fell[kind]
            if k:
                many = k > 1
                notes.append(
                    f"{k} line{'s' if many else ''} fell back to the {own} own sentence{'s' if many else ''}: "
                    f"{'their' if many else 'its'} generated version{'s' if many else ''} {why}."
                )
        repeats = sum(1 for _, why in dropped if why.startswith(REPEAT))
        if repeats:
            plural = repeats > 1
            notes.append(
                f"{repeats} generated sentence{'s' if plural else ''} repeating an earlier one "
                f"{'were' if plural else 'was'} left out."
            )
        return AbstractiveResult(tuple(kept), tuple(dropped), False, tuple(notes))

    # ------------------------------------------------------------------ generation
    def _fit(self, sentences: list[str]) -> tuple[list[str], bool]:
        """Sentences cut (rarely) so that prompt + output fit the model's context."""
        gen = self.generator
        ctx = getattr(gen, "context_length", None)
        count = getattr(gen, "count_tokens", None)
        cut_any = False
        out = []
        for s in sentences:
            if ctx and count:
                room = int(ctx) - (0 if getattr(gen, "is_seq2seq", False) else self.config.max_new_tokens) - 64
                room = max(room, 16)
                if count(PROMPT.format(sentence=s)) > room:
                    s = gen.truncate_to_tokens(s, room - 24)
                    cut_any = True
            out.append(s)
        return out, cut_any

    def _constrains(self) -> bool:
        return self.config.constrained and _can_constrain(self.generator)

    def _budget(self, sentence: str) -> int:
        count = getattr(self.generator, "count_tokens", None)
        n = count(sentence) if count else int(1.6 * len(sentence.split()))
        return max(8, min(self.config.max_new_tokens, n + 4))

    def _generate(self, sentences: list[str], *, strict: bool, stats: dict) -> list[str]:
        gen = self.generator
        c = self.config
        template = STRICT_PROMPT if strict else PROMPT
        if self._constrains():
            outs = []
            for s in sentences:
                outs.append(self._constrained(s, template.format(sentence=s), strict=strict, stats=stats))
            return outs
        prompts = [template.format(sentence=s) for s in sentences]
        budget = max(self._budget(s) for s in sentences)
        kw = dict(max_new_tokens=budget, no_repeat_ngram_size=c.no_repeat_ngram_size)
        stats["generations"] += len(prompts)
        if hasattr(gen, "generate_batch"):
            return list(gen.generate_batch(prompts, **kw))
        return [gen.generate(p, **kw) for p in prompts]

    def _constrained(self, source: str, prompt: str, *, strict: bool, stats: dict) -> str:
        gen = self.generator
        tok = gen.tokenizer
        model = gen.model
        torch = _torch()
        seq2seq = bool(getattr(gen, "is_seq2seq", False))
        render = getattr(gen, "_render", None)
        if render is not None:
            text = render(prompt, None)
            add_special = not getattr(gen, "has_chat_template", False)
        elif not seq2seq and getattr(tok, "chat_template", None):
            messages = [{"role": "user", "content": prompt}]
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            add_special = False
        else:
            text, add_special = prompt, True
        enc = tok([text], return_tensors="pt", add_special_tokens=add_special)
        device = getattr(gen, "device", "cpu")
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        gc = copy.deepcopy(model.generation_config)
        gc.max_length = None
        gc.min_length = None
        gc.min_new_tokens = None
        gc.max_new_tokens = self._budget(source)
        gc.num_beams = 1
        gc.do_sample = False
        gc.temperature = gc.top_k = gc.top_p = None
        gc.no_repeat_ngram_size = None
        gc.repetition_penalty = 1.0
        gc.early_stopping = False
        gc.length_penalty = None
        if gc.pad_token_id is None:
            gc.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        eos = gc.eos_token_id if gc.eos_token_id is not None else tok.eos_token_id
        eos_ids = [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None]
        if gc.eos_token_id is None:
            gc.eos_token_id = eos_ids
        if not seq2seq and self.config.lookup_tokens:
            gc.prompt_lookup_num_tokens = int(self.config.lookup_tokens)

        def encode(s: str) -> list[int]:
            return tok(s, add_special_tokens=False)["input_ids"]

        cons = CopyConstraint(encode, source, eos_ids, strict=strict)
        if not cons.units:
            return ""
        start = 1 if seq2seq else enc["input_ids"].shape[1]

        from transformers import LogitsProcessorList

        c = self.config
        proc = _CopyLogits(cons, start, c.target_tokens, c.end_bonus, c.skip_bonus)
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=gc, logits_processor=LogitsProcessorList([proc]))
        new = [int(t) for t in out[0, start:].tolist()]
        stats["generated_tokens"] += float(len(new))
        stats["generations"] += 1
        while new and new[-1] == gc.pad_token_id and new[-1] not in eos_ids:
            new.pop()
        if new and new[-1] in eos_ids:
            return tok.decode(new, skip_special_tokens=True).strip()
        # Out of tokens mid-sentence: back to the last point where it could have ended.
        keep = cons.last_stop(new)
        if keep is None:
            return ""
        n, tail = keep
        return (tok.decode(new[:n], skip_special_tokens=True) + tail).strip()

    # ------------------------------------------------------------------ checking
    def _candidates(self, source: SentenceInfo, output: str, whole: bool = False) -> list[_Candidate]:
        """Sentences of one model output (at most two: small models ramble on).

        ``whole``: the output is one compressed sentence (copy-constrained), not split.
        """
        parts: list[str] = []
        for sent in [output or ""] if whole else split_sentences(output or ""):
            if parts and not re.search(r"\w", sent):
                parts[-1] += sent  # a closing quote or bracket split off
            else:
                parts.append(sent)
        out = []
        for sent in parts[:2]:
            t = _tidy(sent)
            if t:
                t, row = resolve_pronoun(t, self.index, source) if self.config.resolve_pronouns else (t, None)
                out.append(_Candidate(source, t, named_in=row))
        if not out:
            out.append(_Candidate(source, (output or "").strip(), problem="the model returned nothing usable"))
        return out

    def _check(self, cands: list[_Candidate], rows: np.ndarray, accepted: list[_Candidate] | None = None) -> None:
        c = self.config
        todo = [cd for cd in cands if cd.problem is None]
        if not todo:
            return
        scores, emb = self._support_scores([cd.text for cd in todo], rows)
        ix = self.index
        seen: list[_Candidate] = list(accepted or [])
        for cd, sc, e in zip(todo, scores, emb):
            cd.emb = e
            order = np.argsort(-sc, kind="stable")
            best = float(sc[order[0]])

            def info(j: int) -> SentenceInfo:
                g = int(rows[j])
                return SentenceInfo(int(ix.sent_article[g]), int(ix.sent_pos[g]), ix.texts[g], round(float(sc[j]), 4))

            support = [order[0]]
            for j in order[1:]:
                if len(support) >= c.max_support:
                    break
                if sc[j] >= c.extra_support and sc[j] >= best - c.support_margin:
                    support.append(j)
            missing = unsupported(cd.text, [ix.texts[int(rows[j])] for j in support])
            if missing:  # a further related sentence may hold what is missing
                for j in order[1:]:
                    if len(support) >= c.max_support or sc[j] < c.extra_support:
                        break
                    if j in support:
                        continue
                    text_j = ix.texts[int(rows[j])]
                    if len(unsupported(cd.text, [text_j] + [ix.texts[int(rows[s])] for s in support])) < len(missing):
                        support.append(j)
                        missing = unsupported(cd.text, [ix.texts[int(rows[s])] for s in support])
                        if not missing:
                            break
            if cd.named_in is not None:  # the sentence that names the resolved "He"/"She" supports the name
                hit = np.flatnonzero(rows == cd.named_in)
                if hit.size and int(hit[0]) not in support:
                    support.append(int(hit[0]))
                    missing = unsupported(cd.text, [ix.texts[int(rows[j])] for j in support])
            cd.support = tuple(info(j) for j in support)
            problems = []
            if _words(cd.text) < c.min_words:
                problems.append("too short to stand alone")
            if missing:
                problems.append("not in the supporting sentences: " + ", ".join(missing))
            if best < c.min_support:
                problems.append(f"weak support ({best:.2f} < {c.min_support:.2f})")
            if self.verifier is not None and not problems:
                # Its blocking problems, not its score: the score is fitted on SummEval, whose faithful
                # summaries mostly copy whole sentences, so it marks down every deletion.
                verdict = self.verifier.sentence(Source([ix.texts[int(rows[j])] for j in support]), cd.text)
                why = [p for p in verdict.problems if p.startswith(self.verifier.blocking)]
                if why:
                    problems.append("verifier: " + "; ".join(why))
            if self.config.standalone and not problems:
                quoted = _PRONOUN_SAID.search(cd.source.text)  # only then does naming the speaker matter
                named = cd.named_in is not None or bool(quoted and self._names_person(cd.text, cd.source))
                ctx = context_problem(cd.text, cd.source.text, names_person=named)
                if ctx:
                    problems.append(ctx)
            if problems:
                cd.problem = "; ".join(problems)
            else:
                for prev in seen:
                    if prev.emb is not None and float(np.dot(prev.emb, e)) >= c.duplicate_cosine:
                        cd.problem = REPEAT
                        break
            if cd.problem is None:
                seen.append(cd)

    def _names_person(self, text: str, source: SentenceInfo) -> bool:
        """Does ``text`` name (by surname) a person the article names up to ``source``?"""
        from .answer_phrase import named_people

        ix = self.index
        base = int(ix.offsets[source.article])
        sents = ix.texts[base : int(ix.offsets[source.article + 1])]
        article = " ".join(sents)
        words = set(re.findall(r"[\w’'\-]+", text))
        return any(
            c.text.split()[-1] in words for sent in sents[: source.index + 1] for c in named_people(sent, article)
        )

    def _dedupe(self, kept: list[GeneratedLine], dropped: list) -> list[GeneratedLine]:
        out: list[GeneratedLine] = []
        for line in kept:
            if any(line.text == o.text for o in out):
                dropped.append((line.text, REPEAT))
                continue
            out.append(line)
        return out

    def _support_scores(self, texts: list[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(texts), len(rows)) support scores, and the texts' embeddings."""
        ix = self.index
        c = self.config
        q = np.asarray(ix.embedder.encode(texts), dtype=np.float32)
        cos = q @ ix.vectors(rows).T
        lex = ix.lex[rows]
        row_terms = [set(lex.indices[lex.indptr[i] : lex.indptr[i + 1]].tolist()) for i in range(lex.shape[0])]
        cont = np.zeros_like(cos)
        for t, terms in enumerate(ix.lexicon.terms(texts)):
            uniq = set(terms)
            if not uniq:
                continue
            ids = [ix.vocab.get(w, -1) for w in uniq]
            for j, rt in enumerate(row_terms):
                cont[t, j] = sum(1 for i in ids if i in rt) / len(uniq)
        return c.dense_weight * cos + (1.0 - c.dense_weight) * cont, q


def _torch():
    import torch

    return torch


def _can_constrain(gen: Any) -> bool:
    model = getattr(gen, "model", None)
    tok = getattr(gen, "tokenizer", None)
    return model is not None and tok is not None and hasattr(model, "generate") and callable(tok)
