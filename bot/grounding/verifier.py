"""The verifier: does each sentence of a summary say only what the article says?

For every summary sentence :class:`Verifier` returns

* its **support**: the one to three article sentences that cover most of its
  content words (greedy cover, each with the share of the sentence's weighted
  content it covers);
* a **score** in [0, 1]: a logistic regression over the features below,
  fitted on SummEval's dev half (``benchmarks/summary_quality.py --verify
  --fit`` writes ``verifier_weights.json`` beside this file; the figures it
  prints are cross-validated by article). It estimates the probability that
  three experts would all call the sentence's summary fully consistent;
* the **problems** it found (each a short reason), and ``supported``:
  ``score >= threshold`` and no blocking problem.

Features (all computed against the detokenised article, stems compared):

* content-word coverage by the support and by the whole article; bigram and
  trigram coverage by the article; longest common subsequence with the best
  support sentence (a compression copies in order);
* unsupported names, numbers and dates (:mod:`.claims`, the old guard);
* structural checks against the support, each also a reason:
  a number bound to another noun (``200 workers``/``15 stores`` swapped),
  two names around the same verb in the other order (roles swapped),
  an attribution the support has and the sentence drops (``..., the Asahi
  newspaper reported``), a negation or a modal added or dropped.

The summary's score is its weakest sentence's. Everything is plain Python and
numpy; a few milliseconds per summary.

With a ``checker`` (``VERIFY_MODEL``, :mod:`.model_checker`: an NLI or factual-consistency
classifier), each sentence is also scored by the model against chunks of the article (the best
chunk's probability of "supported"). Then a sentence's ``score`` is the model's, ``supported`` is
``model score >= its threshold`` and no blocking lexical problem, and a low model score is itself
a blocking problem ("not entailed ..."): the lexical checks stay blocking whatever the model says,
and the word-overlap score gives way to the model's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..corpus.segment import split_sentences
from . import claims as _claims
from . import relations as _relations
from .text import STOPWORDS, content, detokenize, stem, tokens

WEIGHTS_PATH = Path(__file__).with_name("verifier_weights.json")

NEGATIONS = frozenset({"not", "no", "never", "nobody", "nothing", "none", "neither", "nor", "cannot", "without"})
MODALS = frozenset(
    "may might could would should must possibly probably likely unlikely perhaps allegedly reportedly "
    "suspected alleged apparently".split()
)
REPORTING = frozenset("reported reports reportedly according claimed claims alleged allegedly".split())
ATTRIBUTION = REPORTING | frozenset(
    "said says say told tells announced stated added insisted warned suggested revealed confirmed denied "
    "wrote writes quoted".split()
)
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15", "twenty": "20", "thirty": "30", "fifty": "50",
    "hundred": "100",
}  # fmt: skip
_SCALE = frozenset("hundred thousand million billion trillion percent per cent bn m k".split())
_AUX = frozenset("be is are was were been being have has had do does did will would".split())

FEATURES = (
    "cov_support", "cov_best", "cov_article", "bigram_article", "trigram_article", "lcs_best",
    "claims", "number_moved", "roles_swapped", "attribution_dropped", "negation", "modality",
    "dangling", "novel_words",
)  # fmt: skip
PRONOUNS = frozenset("it he she they this these those his her their its him them there that such".split())
BLOCKING = ("unsupported", "number", "roles", "negation", "attribution", "modality")  # problem kinds that make a sentence unsupported
NOT_ENTAILED = "not entailed"  # with a model checker (VERIFY_MODEL): its score is under the threshold (blocking)


@dataclass(frozen=True)
class Support:
    index: int  # sentence position in the article
    text: str
    score: float  # share of the summary sentence's weighted content this sentence covers


@dataclass(frozen=True)
class SentenceVerdict:
    text: str
    score: float
    supported: bool
    problems: tuple[str, ...]
    support: tuple[Support, ...]
    features: dict = field(default_factory=dict, compare=False, repr=False)
    lexical_score: float | None = None  # with a model checker: the word-overlap score ``score`` replaced
    chunk: tuple[int, int] | None = None  # with a model checker: article sentences [start, end) of its best chunk

    def to_json(self) -> dict:
        out = {
            "text": self.text,
            "score": round(self.score, 4),
            "supported": self.supported,
            "problems": list(self.problems),
            "support": [{"index": s.index, "text": s.text, "score": round(s.score, 4)} for s in self.support],
        }
        if self.chunk is not None:
            out["lexical_score"] = round(self.lexical_score or 0.0, 4)
            out["chunk"] = {"start": self.chunk[0], "end": self.chunk[1]}
        return out


@dataclass(frozen=True)
class Verdict:
    score: float
    supported: bool
    sentences: tuple[SentenceVerdict, ...]
    checker: str | None = None  # the model checker's name; None: the lexical checker alone

    def to_json(self) -> dict:
        out = {
            "score": round(self.score, 4),
            "supported": self.supported,
            "sentences": [s.to_json() for s in self.sentences],
        }
        if self.checker is not None:
            out["checker"] = self.checker
        return out


# ------------------------------------------------------------------ article side
class _Sent:
    __slots__ = ("text", "toks", "stems", "content", "cset")

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = [_NUMBER_WORDS.get(t, t) for t in tokens(text)]
        self.stems = [stem(t) for t in self.toks]
        self.content = content(self.stems)
        self.cset = set(self.content)


def _ngrams(seq: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)}


class Article:
    """An article prepared once for many summaries: sentences, stems, n-grams, names, idf."""

    def __init__(self, text_or_sentences: str | list[str]) -> None:
        if isinstance(text_or_sentences, str):
            sentences = split_sentences(detokenize(text_or_sentences))
        else:
            sentences = [detokenize(s) for s in text_or_sentences]
        self.sentences = [_Sent(s) for s in sentences if s.strip()]
        self.text = " ".join(s.text for s in self.sentences)
        all_stems = [t for s in self.sentences for t in s.stems]
        self.stem_set = set(all_stems)
        self.bigrams = set().union(*(_ngrams(s.stems, 2) for s in self.sentences)) if self.sentences else set()
        self.trigrams = set().union(*(_ngrams(s.stems, 3) for s in self.sentences)) if self.sentences else set()
        n = max(len(self.sentences), 1)
        df: dict[str, int] = {}
        for s in self.sentences:
            for t in s.cset:
                df[t] = df.get(t, 0) + 1
        self.idf = {t: math.log(1.0 + n / c) for t, c in df.items()}
        self.unseen_idf = math.log(1.0 + n)
        self.names = {t for _, toks in _claims._names(self.text) for t in toks}
        self.claim_support = _claims._Support([self.text])
        # number -> stems of the noun that follows it, over the whole article
        self.number_heads: dict[str, set[str]] = {}
        self.head_numbers: dict[str, set[str]] = {}
        for s in self.sentences:
            for num, head in _number_heads(s):
                self.number_heads.setdefault(num, set()).add(head)
                self.head_numbers.setdefault(head, set()).add(num)

    def weight(self, t: str) -> float:
        return self.idf.get(t, self.unseen_idf)


def _number_heads(s: _Sent) -> list[tuple[str, str]]:
    """(number, stem of the content word it quantifies) for each number in the sentence."""
    out = []
    for i, t in enumerate(s.toks):
        if not t[0].isdigit():
            continue
        for j in range(i + 1, min(i + 4, len(s.toks))):
            w = s.toks[j]
            if w in _SCALE or w[0].isdigit():
                continue
            if w in STOPWORDS:
                break
            out.append((t, s.stems[j]))
            break
    return out


# ------------------------------------------------------------------ sentence checks
def _lcs(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _next_content(s: _Sent, i: int, span: int = 3) -> str | None:
    for j in range(i + 1, min(i + 1 + span, len(s.stems))):
        if s.toks[j] in _AUX or s.toks[j] in NEGATIONS or s.toks[j] in MODALS:
            continue
        if s.stems[j] in s.cset:
            return s.stems[j]
    return None


def _number_problems(s: _Sent, art: Article) -> list[str]:
    out = []
    for num, head in _number_heads(s):
        heads = art.number_heads.get(num)
        if not heads or head in heads:
            continue
        others = art.head_numbers.get(head, set()) - {num}
        if others:
            out.append(f"number bound to another noun: '{num} {head}' (the article has {sorted(others)[0]} {head})")
    return out


def _role_problems(s: _Sent, support: list[_Sent], art: Article) -> list[str]:
    pos = [(i, t) for i, t in enumerate(s.toks) if t in art.names and t not in STOPWORDS]
    out: list[str] = []
    for sp in support:
        first = {}
        for i, t in enumerate(sp.toks):
            first.setdefault(t, i)
        for x in range(len(pos)):
            for y in range(x + 1, len(pos)):
                (i, a), (j, b) = pos[x], pos[y]
                if a == b or a not in first or b not in first or first[b] >= first[a]:
                    continue
                between_s = set(s.stems[i + 1 : j]) & s.cset
                between_sp = set(sp.stems[first[b] + 1 : first[a]]) & sp.cset
                if "by" in s.toks[i + 1 : j] or "by" in sp.toks[first[b] + 1 : first[a]]:
                    continue  # passive voice: the order flips legitimately
                shared = (between_s & between_sp) - art.names
                if shared and j - i <= 8:
                    out.append(f"roles swapped: '{a}' and '{b}' around '{sorted(shared)[0]}'")
                    return out
    return out


def _negation_problems(s: _Sent, support: list[_Sent]) -> list[str]:
    s_neg = [t for t in s.toks if t in NEGATIONS]
    sup_neg = [(sp, i) for sp in support for i, t in enumerate(sp.toks) if t in NEGATIONS]
    if s_neg and not sup_neg:
        return [f"negation added: '{s_neg[0]}'"]
    if sup_neg and not s_neg:
        for sp, i in sup_neg:
            nxt = _next_content(sp, i)
            if nxt and nxt in s.cset:
                return [f"negation dropped: '{sp.toks[i]} ... {nxt}'"]
    return []


# A summary retells reported speech in the present: "he said they could catch City" -> "they can catch City".
_PRESENT = {"could": "can", "would": "will", "might": "may"}


def _modality_problems(s: _Sent, support: list[_Sent]) -> list[str]:
    s_mod = {t for t in s.toks if t in MODALS}
    sup_mod = [(sp, i) for sp in support for i, t in enumerate(sp.toks) if t in MODALS]
    for sp, i in sup_mod:
        if sp.toks[i] in s_mod:
            continue
        if _PRESENT.get(sp.toks[i], "") in s.toks and (sp.toks[i] != "would" or ATTRIBUTION & set(sp.toks[:i])):
            continue  # "would" -> "will" only in reported speech ("said it would"), not in "would ban if"
        nxt = _next_content(sp, i)
        if nxt and nxt in s.cset:
            return [f"modality dropped: '{sp.toks[i]} ... {nxt}'"]
    if s_mod and not sup_mod:
        return [f"modality added: '{sorted(s_mod)[0]}'"]
    return []


def _attribution_problems(s: _Sent, best: _Sent | None, cov_best: float) -> list[str]:
    if best is None or cov_best < 0.6 or any(t in ATTRIBUTION for t in s.toks):
        return []
    for i, t in enumerate(best.toks):
        if t in ATTRIBUTION:
            # the attribution's source: the words before the cue (", the Asahi newspaper reported")
            source = [w for w in best.toks[max(0, i - 3) : i] if w not in STOPWORDS]
            if t == "according":
                source = [w for w in best.toks[i + 2 : i + 5] if w not in STOPWORDS]
            if source and not set(source) & set(s.toks):
                # a report made a fact ("..., the Asahi newspaper reported" cut) blocks; a dropped "he said" does not
                kind = "attribution dropped" if t in REPORTING else "speaker dropped"
                return [f"{kind}: '{' '.join(source)} {t}'"]
    return []


def backing_sentence(claim: str, sentences: list[str]) -> tuple[int | None, list[str]]:
    """The check a written answer (``/ask`` abstractive) passes: the first of ``sentences`` that says all of
    ``claim`` with the same bindings (:mod:`.relations`: every content word, number -> noun, who did what,
    negation) and the same modality ("may ban" is not "will ban"), as ``(index, [])``; else
    ``(None, problems against the closest sentence)``."""
    return _relations.backing_sentence(claim, sentences, also=_modality_or_negation)


def _modality_or_negation(claim: str, sentence: str) -> list[str]:
    c, s = _Sent(detokenize(claim)), _Sent(detokenize(sentence))
    return _modality_problems(c, [s]) + _negation_problems(c, [s])


# ------------------------------------------------------------------ the model
@lru_cache(maxsize=4)
def load_weights(path: str | None = None) -> dict:
    p = Path(path) if path else WEIGHTS_PATH
    return json.loads(p.read_text())


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


class Verifier:
    """``Verifier()(article, summary)`` -> :class:`Verdict`. ``article``: text, list of sentences or :class:`Article`.

    ``scorer``: a :class:`~bot.grounding.likelihood.LikelihoodScorer` (the summary
    model). With one, the weights file's ``"lm"`` model is used (lexical features
    plus the likelihood gain); without, its ``"lexical"`` model.

    ``checker``: a :class:`~bot.grounding.model_checker.ModelChecker` (``VERIFY_MODEL``); see the
    module doc. ``threshold`` is then the model score a sentence needs (default: the checker's).
    """

    def __init__(self, weights: dict | str | Path | None = None, threshold: float | None = None,
                 scorer=None, checker=None) -> None:
        w = weights if isinstance(weights, dict) else load_weights(str(weights) if weights else None)
        if "lexical" in w:  # the shipped file holds both models
            w = w["lm"] if scorer is not None and "lm" in w else w["lexical"]
        self.scorer = scorer if any(f.startswith("lm_") for f in w["features"]) else None
        self.features = tuple(w["features"])
        self.mean = np.asarray(w["mean"], dtype=np.float64)
        self.scale = np.asarray(w["scale"], dtype=np.float64)
        self.coef = np.asarray(w["coef"], dtype=np.float64)
        self.intercept = float(w["intercept"])
        self.checker = checker
        if checker is not None:
            self.threshold = float(checker.threshold if threshold is None else threshold)
        else:
            self.threshold = float(w["threshold"] if threshold is None else threshold)
        self.blocking = tuple(w.get("blocking", BLOCKING)) + ((NOT_ENTAILED,) if checker is not None else ())

    @property
    def name(self) -> str:
        """What checks: ``lexical``, or the model checker's name (its lexical checks still run)."""
        return "lexical" if self.checker is None else self.checker.name

    # features ---------------------------------------------------------------
    def sentence_features(
        self, text: str, art: Article, previous: tuple[int, ...] | None = None
    ) -> tuple[dict, list[str], list[Support]]:
        """Features, problems and support of one sentence; ``previous``: the support of the sentence before it."""
        s = _Sent(detokenize(text))
        weights = {t: art.weight(t) for t in s.cset}
        total = sum(weights.values()) or 1.0
        # greedy cover by up to three article sentences
        chosen: list[int] = []
        covered: set[str] = set()
        scores = [sum(weights[t] for t in s.cset & a.cset) / total for a in art.sentences]
        for _ in range(3):
            best, gain = -1, 0.0
            for j, a in enumerate(art.sentences):
                if j in chosen:
                    continue
                g = sum(weights[t] for t in (s.cset & a.cset) - covered) / total
                if g > gain + 1e-9:
                    best, gain = j, g
            if best < 0 or (chosen and gain < 0.15):
                break
            chosen.append(best)
            covered |= s.cset & art.sentences[best].cset
        support = [Support(j, art.sentences[j].text, float(scores[j])) for j in chosen]
        sup_sents = [art.sentences[j] for j in chosen]
        best_sent = sup_sents[0] if sup_sents else None
        cov_support = sum(weights[t] for t in covered) / total if s.cset else 1.0
        cov_best = scores[chosen[0]] if chosen else (1.0 if not s.cset else 0.0)
        in_article = [t for t in s.content if t in art.stem_set]
        bi, tri = _ngrams(s.stems, 2), _ngrams(s.stems, 3)
        problems: list[str] = []
        missing = []
        for c, ok in _claims.check(s.text, [art.text]):
            if not ok:
                missing.append(c.text)
        if missing:
            problems.append("unsupported " + ", ".join(f"'{m}'" for m in dict.fromkeys(missing)))
        nums = _number_problems(s, art)
        roles = _role_problems(s, sup_sents, art)
        attr = _attribution_problems(s, best_sent, cov_best)
        neg = _negation_problems(s, sup_sents)
        modal = _modality_problems(s, sup_sents)
        problems += nums + roles + attr + neg + modal
        if s.cset and cov_support < 0.5:
            absent = [t for t in dict.fromkeys(tok for tok, st in zip(s.toks, s.stems) if st in s.cset
                                                and st not in covered)]
            problems.append("content with no support: " + ", ".join(absent[:6]))
        f = {
            "cov_support": cov_support,
            "cov_best": cov_best,
            "cov_article": len(in_article) / len(s.content) if s.content else 1.0,
            "bigram_article": len(bi & art.bigrams) / len(bi) if bi else 1.0,
            "trigram_article": len(tri & art.trigrams) / len(tri) if tri else 1.0,
            "lcs_best": _lcs(s.stems, best_sent.stems) / len(s.stems) if best_sent and s.stems else 0.0,
            "claims": float(min(len(missing), 2)),
            "number_moved": float(bool(nums)),
            "roles_swapped": float(bool(roles)),
            "attribution_dropped": float(bool(attr)),
            "negation": float(bool(neg)),
            "modality": float(bool(modal)),
            # a sentence opening on a pronoun whose antecedent (the sentence before its support) is not shown
            "dangling": float(bool(s.toks) and s.toks[0] in PRONOUNS and bool(chosen) and chosen[0] > 0
                              and (chosen[0] - 1) not in (previous or ())),
            "novel_words": math.log1p(len([t for t in s.content if t not in art.stem_set])),
        }
        return f, problems, support

    def probability(self, feats: dict) -> float:
        x = (np.array([feats[k] for k in self.features]) - self.mean) / self.scale
        return _sigmoid(float(x @ self.coef) + self.intercept)

    # entry points -----------------------------------------------------------
    def __call__(self, article: str | list[str] | Article, summary: str | list[str]) -> Verdict:
        art = article if isinstance(article, Article) else Article(article)
        if isinstance(summary, str):
            sents = split_sentences(detokenize(summary))
        else:
            sents = [detokenize(x) for x in summary if x and x.strip()]
        rows = []
        previous: tuple[int, ...] = ()
        for text in sents:
            feats, problems, support = self.sentence_features(text, art, previous)
            previous = tuple(x.index for x in support)
            rows.append((text, feats, problems, support))
        if self.scorer is not None and rows:
            supports = [" ".join(x.text for x in sorted(r[3], key=lambda x: x.index)) for r in rows]
            for r, st in zip(rows, self.scorer.stats(supports, [r[0] for r in rows])):
                r[1].update({f"lm_{k}": v for k, v in st.items()})
        best = self.checker.best_many([s.text for s in art.sentences], [r[0] for r in rows]) if (
            self.checker is not None and rows) else None
        out = []
        for k, (text, feats, problems, support) in enumerate(rows):
            p = self.probability(feats)
            if best is None:
                blocked = any(pr.startswith(self.blocking) for pr in problems)
                out.append(SentenceVerdict(text, p, p >= self.threshold and not blocked, tuple(problems),
                                           tuple(support), feats))
                continue
            b = best[k]
            if b.score < self.threshold:
                where = f"sentence {b.start + 1}" if b.end - b.start <= 1 else f"sentences {b.start + 1}-{b.end}"
                problems = problems + [f"{NOT_ENTAILED}: {self.checker.name} gives {b.score:.2f} < "
                                       f"{self.threshold:.2f} at best ({where})"]
            blocked = any(pr.startswith(self.blocking) for pr in problems)
            out.append(SentenceVerdict(text, b.score, b.score >= self.threshold and not blocked, tuple(problems),
                                       tuple(support), feats, lexical_score=p, chunk=(b.start, b.end)))
        checker = None if self.checker is None else self.checker.name
        if not out:
            return Verdict(0.0, False, (), checker)
        return Verdict(min(x.score for x in out), all(x.supported for x in out), tuple(out), checker)

    def sentence(self, article: str | list[str] | Article, text: str) -> SentenceVerdict:
        return self(article, [text]).sentences[0]
