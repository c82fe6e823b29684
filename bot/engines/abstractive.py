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
   faster on copy-heavy output. The sentences are rewritten at once when the
   backend has several workers (llama.cpp's single-thread workers, a server's
   slots), each request on its own, so the output does not depend on it. The constraint is defined once
   (:mod:`models.decoding`) and every backend takes it in its own form: a
   logits processor (transformers), a GBNF grammar (llama.cpp in-process and
   llama.cpp's server), or a word-by-word check of the reply (other
   OpenAI-compatible servers). Only a generator with no ``generate_copy`` (a
   test fake) is prompted without it.
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
   stricter prompt). With several workers a line that fails its own checks is
   regenerated at once, while the others are still being written. If it still fails, that line shows its source sentence,
   the article's own words, in its place (so the lead is never lost); the
   result lists the generated text with the reason and a note says how many
   lines fell back. A repeat is left out.
5. If no generated line survives, the extractive summary is returned instead,
   with a note.

``benchmarks/summary_quality.py --abstractive`` measures it on CNN/DailyMail.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..corpus.segment import split_sentences
from ..index.sentence_index import SentenceIndex
from .extractive import ExtractiveSummarizer, SentenceInfo, Weights
from ..grounding.claims import unsupported
from ..grounding.verifier import Article as Source
from ..grounding.references import unresolved
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
    source: SentenceInfo | None = None  # the sentence it was made from
    own: bool = False  # the source sentence itself (its rewrite failed, or no model output was usable)


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
# Defined once in models/decoding.py (with its GBNF grammar and word-by-word check for the
# other backends); re-exported here, where the engine and its tests have always found it.
from models.decoding import _TERMINAL, CopyConstraint  # noqa: E402,F401
from models.decoding import CopyLogits as _CopyLogits  # noqa: E402,F401

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


_IT_SAID = re.compile(r"(?P<lead>^|[,;]\s*)(?P<it>[Ii]t|[Tt]hey)\s+(?P<cue>said|says|added|reported|reports|told|stated)\b")
_NOT_WHO = frozenset({"it", "they", "he", "she", "we", "i", "you"})


def resolve_attribution(text: str, index: SentenceIndex, source: SentenceInfo) -> tuple[str, int | None]:
    """", it said" names no one once the line is out of its article: say who, from the nearest of the
    two sentences before the source that attributes to someone other than a pronoun ("..., the paper
    said" -> ", the paper said"). Nothing changes when neither does. Returns (text, global row of the
    sentence that names who)."""
    m = _IT_SAID.search(text)
    if not m or source.index == 0:
        return text, None
    base = int(index.offsets[source.article])
    for back in range(1, _BACK + 1):
        pos = source.index - back
        if pos < 0:
            break
        row = base + pos
        whos = [w for w, _ in _attributions(index.texts[row]) if w.split()[-1].lower() not in _NOT_WHO]
        if not whos:
            continue
        who = whos[-1].strip()
        if len(who.split()) > 4:
            return text, None
        who = who[0].upper() + who[1:] if not m.group("lead") else (who[0].lower() + who[1:] if who.split()[0] in ("The", "A", "An") else who)
        return text[: m.start("it")] + who + text[m.end("it") :], row
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
        elif head in ("it", "they") and has_cue:
            continue  # ", it said" kept, or resolved to who said it (resolve_attribution)
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
        verifier: Verifier | None = None,
    ) -> None:
        """``verifier``: the checker each line must pass (the app's, with VERIFY_MODEL's classifier when one
        loaded); default the lexical :class:`Verifier`."""
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
        self.verifier = (verifier or Verifier()) if c.verify else None

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
            early: dict[tuple[int, int], str] = {}  # source -> its strict regeneration, started early
            if self._width(len(prompts)) > 1 and c.retries > 0:
                outputs, early = self._generate_and_retry(sources, prompts, support_rows, stats)
            else:
                outputs = self._generate(prompts, strict=False, stats=stats)
        except Exception as exc:  # noqa: BLE001 - a failing model must not take the reply down
            log.exception("abstractive generation failed")
            lines = tuple(GeneratedLine(s.text, (s,), s, True) for s in fallback())
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
            late = [i for i in idx if (cands[i].source.article, cands[i].source.index) not in early]
            prompts2, _ = self._fit([cands[i].source.text for i in late])
            try:
                outs_late = self._generate(prompts2, strict=True, stats=stats) if late else []
            except Exception:  # noqa: BLE001
                log.exception("abstractive regeneration failed")
                outs_late = [""] * len(late)
            done = dict(zip(late, outs_late))
            outs2 = [done[i] if i in done else early[(cands[i].source.article, cands[i].source.index)]
                     for i in idx]
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
        entries: list[tuple[GeneratedLine, SentenceInfo, bool]] = []  # (line, source, generated)
        dropped: list[tuple[str, str]] = []
        fell: dict[str, int] = {"unverified": 0, "context": 0}
        for group in _by_source(cands):
            for cd in group:
                if cd.problem:
                    dropped.append((cd.text, cd.problem))
            ok = [cd for cd in group if not cd.problem]
            if ok:
                entries.extend((GeneratedLine(cd.text, cd.support, cd.source), cd.source, True) for cd in ok)
                continue
            failed = [cd.problem for cd in group if cd.problem and cd.problem != REPEAT]
            if failed and not any(cd.problem == REPEAT for cd in group):
                # the lead is never lost: the article's own sentence stands in for its failed rewrite
                entries.append((self._own_line(group[0].source), group[0].source, False))
                fell["context" if failed[0].startswith(CONTEXT) else "unverified"] += 1
        # a duplicate check after regeneration
        entries = self._dedupe(entries, dropped)
        entries, leaning = self._stand_alone(entries, fell, dropped)
        kept = [e[0] for e in entries]
        generated = sum(1 for e in entries if e[2])
        if leaning:
            plural = leaning > 1
            notes.append(
                f"{leaning} line{'s' if plural else ''} left out: {'they lean' if plural else 'it leans'} on a "
                f"sentence the summary does not show."
            )
        self.last_stats = {**stats, "seconds": time.perf_counter() - t0}
        if not generated:
            lines = tuple(GeneratedLine(s.text, (s,), s, True) for s in fallback())
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

    def _width(self, n: int) -> int:
        """How many rewrites to send at once: the backend's workers or server slots (constrained only)."""
        if not self._constrains():
            return 1
        return min(n, max(1, int(getattr(self.generator, "concurrency", 1) or 1)))

    def _generate_and_retry(self, sources, prompts, support_rows, stats) -> tuple[list[str], dict]:
        """The rewrites at once, as :meth:`_generate`; and a rewrite that fails its own checks is rewritten
        the strict way at once, on its worker, rather than after the slowest of the others. The checks
        that decide it (:meth:`_check` on that line alone) are the same as the summary's own, whose only
        cross-line check (a repeat) never asks for a regeneration, so the result is the same as doing
        it after; :meth:`_run` uses what it needs of them (at most ``retries``). :meth:`_run` then checks
        the lines again, together (~15 ms a line): the embedder's batches round differently from one line
        alone (support scores differed in the 4th decimal), and a summary must not depend on the workers."""
        whole = True  # constrained: one compressed sentence per output

        def one(k: int) -> tuple[str, int, str | None, int]:
            text, n = self._constrained(prompts[k], PROMPT.format(sentence=prompts[k]), strict=False)
            probe = self._candidates(sources[k], text, whole)
            self._check(probe, support_rows)
            if not any(cd.problem and cd.problem != REPEAT for cd in probe):
                return text, n, None, 0
            try:
                again, n2 = self._constrained(prompts[k], STRICT_PROMPT.format(sentence=prompts[k]), strict=True)
            except Exception:  # noqa: BLE001 - as a failed regeneration after: the line falls back
                log.exception("abstractive regeneration failed")
                return text, n, "", 0
            return text, n, again, n2

        with ThreadPoolExecutor(self._width(len(prompts)), thread_name_prefix="precis-rewrite") as pool:
            done = list(pool.map(one, range(len(prompts))))
        early = {(s.article, s.index): d[2] for s, d in zip(sources, done) if d[2] is not None}
        stats["generated_tokens"] += float(sum(d[1] + d[3] for d in done))
        stats["generations"] += len(done) + len(early)
        return [d[0] for d in done], early

    def _generate(self, sentences: list[str], *, strict: bool, stats: dict) -> list[str]:
        gen = self.generator
        c = self.config
        template = STRICT_PROMPT if strict else PROMPT
        if self._constrains():
            def one(s: str) -> tuple[str, int]:
                return self._constrained(s, template.format(sentence=s), strict=strict)

            width = self._width(len(sentences))
            if width > 1:  # the backend's workers (llama.cpp) or server slots take the sentences at once
                with ThreadPoolExecutor(width, thread_name_prefix="precis-rewrite") as pool:
                    done = list(pool.map(one, sentences))
            else:
                done = [one(s) for s in sentences]
            stats["generated_tokens"] += float(sum(n for _, n in done))
            stats["generations"] += len(done)
            return [text for text, _ in done]
        prompts = [template.format(sentence=s) for s in sentences]
        budget = max(self._budget(s) for s in sentences)
        kw = dict(max_new_tokens=budget, no_repeat_ngram_size=c.no_repeat_ngram_size)
        stats["generations"] += len(prompts)
        if hasattr(gen, "generate_batch"):
            return list(gen.generate_batch(prompts, **kw))
        return [gen.generate(p, **kw) for p in prompts]

    def _constrained(self, source: str, prompt: str, *, strict: bool) -> tuple[str, int]:
        """One copy-constrained rewrite of ``source``, in whatever form the backend takes the
        constraint (models/decoding.py: logits processor, GBNF grammar, or a word-by-word check), and
        the tokens it generated."""
        gen = self.generator
        c = self.config
        kw = dict(strict=strict, max_new_tokens=self._budget(source), target_tokens=c.target_tokens,
                  end_bonus=c.end_bonus, skip_bonus=c.skip_bonus, lookup_tokens=c.lookup_tokens)
        if callable(getattr(gen, "generate_copy", None)):
            text = gen.generate_copy(prompt, source, **kw)
            n_new = int((getattr(gen, "last_stats", None) or {}).get("new_tokens", 0))
        else:  # a bare model + tokenizer pair
            from models.decoding import transformers_copy_generate

            text, n_new = transformers_copy_generate(gen, prompt, source, **kw)
        return text, n_new

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
                row = None
                if self.config.resolve_pronouns:
                    t, row = resolve_pronoun(t, self.index, source)
                    t, row2 = resolve_attribution(t, self.index, source)
                    row = row if row is not None else row2
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

    def _dedupe(self, entries: list, dropped: list) -> list:
        out: list = []
        for entry in entries:
            if any(entry[0].text == o[0].text for o in out):
                dropped.append((entry[0].text, REPEAT))
                continue
            out.append(entry)
        return out

    def _own_line(self, src: SentenceInfo) -> GeneratedLine:
        """The source sentence itself, its opening "He"/"She" and bare ", it said" resolved from the article
        (the sentence that says who then supports the line too)."""
        text, support = src.text, [replace(src, score=1.0)]
        if self.config.resolve_pronouns:
            for resolve in (resolve_pronoun, resolve_attribution):
                text, row = resolve(text, self.index, src)
                if row is not None:
                    ix = self.index
                    support.append(SentenceInfo(int(ix.sent_article[row]), int(ix.sent_pos[row]), ix.texts[row], 1.0))
        return GeneratedLine(text, tuple(support), src, True)

    def _stand_alone(self, entries: list, fell: dict, dropped: list) -> tuple[list, int]:
        """No shown line leans on what the summary does not say (bot/grounding/references.py): a rewrite
        that does falls back to its own (resolved) sentence; a sentence that still does is left out,
        unless nothing else would be left, and in a one-article summary the next sentences after the
        last shown one that stand alone take the places left, as they are. Returns the entries and
        how many were left out."""
        out: list = []
        leaning = 0
        for k, (line, src, generated) in enumerate(entries):
            earlier = [(e[0].text, (e[1].article, e[1].index)) for e in out]
            ref = unresolved(line.text, (src.article, src.index), earlier)
            if ref is not None and generated:
                own = self._own_line(src)
                dropped.append((line.text, f"{CONTEXT}: leans on '{ref.word}'"))
                fell["context"] += 1
                line, generated = own, False
                ref = unresolved(line.text, (src.article, src.index), earlier)
            if ref is not None and (out or k < len(entries) - 1):
                dropped.append((line.text, f"{CONTEXT}: leans on '{ref.word}', which no shown line explains"))
                leaning += 1
                continue
            out.append((line, src, generated))
        if leaning and out and len({e[1].article for e in entries}) == 1:
            # one article: the next sentences after the last shown one take the places left, as they are
            ix = self.index
            art = out[-1][1].article
            base, end = int(ix.offsets[art]), int(ix.offsets[art + 1])
            pos = max(e[1].index for e in out) + 1
            while len(out) < len(entries) and base + pos < end and pos <= max(e[1].index for e in entries) + 3:
                src = SentenceInfo(art, pos, ix.texts[base + pos], 1.0)
                pos += 1
                if len(src.text.split()) < 5 or any(src.text == e[0].text for e in out):
                    continue
                earlier = [(e[0].text, (e[1].article, e[1].index)) for e in out]
                line = self._own_line(src)
                if unresolved(line.text, (art, src.index), earlier) is None:
                    out.append((line, src, False))
        return out, leaning

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


WARM_SENTENCE = "The council approved the new budget on Monday, officials said."


def warm_up(gen: Any) -> None:
    """One short copy-constrained rewrite on each of ``gen``'s workers (at once): the weights are read
    into memory and each worker keeps the prompt's opening in its cache, so a member's first summary
    pays for neither."""
    if not callable(getattr(gen, "generate_copy", None)):
        return
    width = max(1, int(getattr(gen, "concurrency", 1) or 1))
    prompt = PROMPT.format(sentence=WARM_SENTENCE)

    def one(_: int) -> str:
        return gen.generate_copy(prompt, WARM_SENTENCE, max_new_tokens=4)

    with ThreadPoolExecutor(width, thread_name_prefix="precis-warm") as pool:
        list(pool.map(one, range(width)))


def _torch():
    import torch

    return torch


def _can_constrain(gen: Any) -> bool:
    if callable(getattr(gen, "generate_copy", None)):
        return True  # every backend in models/ takes the copy constraint in its own form
    model = getattr(gen, "model", None)
    tok = getattr(gen, "tokenizer", None)
    return model is not None and tok is not None and hasattr(model, "generate") and callable(tok)
