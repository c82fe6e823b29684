"""Question answering over the whole corpus: hybrid sentence retrieval, then an answer.

Retrieval (:class:`Retriever`) scores every sentence of the index at once with
numpy/scipy array operations; a query never loops over sentences in Python.
Every evidence array is z-normalised over the corpus and divided by its
maximum, so each one's best sentence (or article) scores 1 and the weights
(:class:`Weights`) read as shares of that best:

* lexical   - BM25 over sentences (the index's ``bm25s`` index), question
              words ("how many", "which", "did") left out;
* dense     - cosine of the question's MiniLM embedding with each sentence's;
* neighbour - a sentence gains 0.3 of its best same-article neighbour's
              lexical + dense score (shifted arrays masked at article
              boundaries): "She won 62 percent." leans on the sentence before;
* article   - 0.8 x BM25 of the whole article (term frequency = the number of
              its sentences holding the term) and 0.5 x the title's dense and
              TF-IDF similarity, spread to every sentence of the article;
* cues      - +0.25 when the sentence holds what the question asks for: a
              number the question does not contain ("how many", "what
              percentage"), a date ("when", "what year") or a capitalised name
              the question does not contain ("who", "which ..."); -0.25 for
              text that does not end like a sentence (captions, link lines).

On RealTime QA 2022 this puts an answer string in the top 3 for ~65 % of the
questions, against ~57 % for BM25 or dense alone (``benchmarks/ask_quality.py``).

The engine reaches the index through one call, :meth:`bot.index.search.Retriever.search_candidates`
(the question, its cue kind :func:`cue_kind`, the server's scope, the time window :meth:`Answerer.time_window`
and k), whose :class:`~bot.index.search.Candidate` sentences carry every feature the reader, the confidence,
the reranker and the span reader read, plus one document lookup (``article_text``) for the who-question
antecedent rule; the retrieval itself lives in :mod:`bot.index.search`.

Reading (:class:`Reader`): the retriever's top 20 candidates are reranked by
whether they answer the question, not by how much they resemble it: the
retriever's score, the fit of the best candidate answer phrase to the kind of
thing asked for (:mod:`bot.engines.answer_phrase`), its nearness to the
question's words, the question's coverage in the sentence and around it, the
sentence's position (the lead says what happened), agreement across
articles and the article's recency (news questions ask about the latest
report). Eight weights (:class:`ReaderWeights`), fitted by
``benchmarks/ask_quality.py`` with a conditional logit, leave-months-out.

Answers (:class:`Answerer`):

* ``extractive`` (default) - the answer phrase of the best sentence, word for
  word (``short``; "29 Kazakh citizens"), then that sentence (support [1]);
  the best sentence alone when no phrase is sure enough. The phrase is the
  span reader's (:mod:`models.span_reader`, ASK_PHRASE; :meth:`Answerer.pick_phrase`)
  when one is loaded, else the rules' (:mod:`bot.engines.answer_phrase`).
* ``abstractive`` - the generator writes a short answer from the supporting
  sentences only; it is kept only when the first supporting sentence backs it
  relation by relation (:func:`bot.grounding.verifier.backing_sentence`, the
  summaries' verifier module: which number belongs to which noun, who did
  what, negation, modality) and it passes the summaries'
  invention guard; otherwise the extractive answer, with a note.

Both abstain (:data:`ABSTAIN_MESSAGE`) when the confidence,
``(coverage + best dense cosine + article coverage) / 3``, is under the fitted threshold
(:attr:`Answerer.DEFAULT_THRESHOLD`), or its own one for a question that names its own time
("this week", "recently": only that span's articles may answer it, :mod:`bot.engines.timeframe`,
so its best evidence is read from fewer articles); both fitted like the reader. The confidence
holds nothing about the answer's age: an archive asked months later answers from old articles as
surely as from new ones (age only breaks ties, through the reader's recency feature).

When it is asked: ``now`` (the clock by default) for a live question; ``asked_at`` replays a
question as it would have been answered then (the batch CLI's ``"asked_at"``): articles published
later are hidden and "this week" counts back from it (:meth:`Answerer.in_time`).
Coverage is the
idf-weighted share of the question's terms found in the best sentence, its
neighbours and its article's title (names and numbers count double; unseen
names count as missing with the highest idf). A question about something the
corpus never mentions covers few of its rare terms and finds no sentence close
to it in meaning.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass, replace

import numpy as np

from ..index import search as _index_search
from ..index.search import (  # noqa: F401 - re-exported: they lived here before bot/index/search.py
    _CAP,
    _DATE,
    _HOW,
    _NUM,
    _NUMBER_WORDS,
    _SENTENCE_END,
    _WORD,
    QUESTION_WORDS,
    Candidate,
    SentenceSearch,
    Support,
    Weights,
    _ranked,
    _z,
    _zmax,
)
from ..index.sentence_index import SentenceIndex
from . import timeframe
from .chat_question import clean_question
from .answer_phrase import antecedent, best_phrase, pronoun_subject, question_kind, scored_candidates, words
from ..grounding.claims import unsupported
from ..grounding.verifier import backing_sentence

log = logging.getLogger(__name__)

ABSTAIN_MESSAGE = "I couldn't find that in the articles I have."
TIME_ABSTAIN_MESSAGE = "I couldn't find that in the articles I have from {span}."
YEAR_ABSTAIN_MESSAGE = "I couldn't find that in the articles I have from or about {years}."
MAX_QUESTION_CHARS = 300
NO_GENERATOR_NOTE = (
    "Abstractive answers need the summary model, which is not loaded; showing the supporting sentence instead."
)
GUARD_NOTE = (
    "The generated answer was not backed by the supporting sentences ({what}); "
    "showing the supporting sentence instead."
)
RELATION_NOTE = (
    "The generated answer did not match the first supporting sentence ({what}); showing that sentence instead."
)
EMPTY_GENERATION_NOTE = (
    "The summary model gave no answer in the supporting sentence's own words; showing the sentence instead."
)
MODEL_ERROR_NOTE = "The summary model failed ({error}); showing the supporting sentence instead."
SENTENCE_REF_NOTE = "The summary model only pointed at a sentence; showing that supporting sentence instead."
_SENTENCE_REF = re.compile(r"(?:sentence\s*)?\[?(\d)\]?\.?", re.IGNORECASE)
NO_ANSWER_NOTE = (
    "The summary model found no answer in the supporting sentences; showing the best supporting sentence instead."
)
_DONT_KNOW = re.compile(
    r"(?i)(?:(?:do|does|did|can)(?: not|n[o'’]t)|cannot) (?:know|say|tell|find|answer|determine)|"
    r"not (?:mentioned|stated|specified|provided|given|contain(?:ed)?)|no information"
)
MODES = ("extractive", "abstractive")
NO_SPAN_MARGIN = -20.0  # the span margin of a sentence the span reader finds no span in at all
DATED_SHARE = 0.5  # a timed question leaves undated articles out where at least this share carries a date


class QuestionError(ValueError):
    """A question that cannot be asked; the message is meant for the user."""


_WS = re.compile(r"\s+")
# "Who is Serikzhan Bilash?", "What is NATO?": the question names its subject and asks what it is. The
# answer is a description ("head of the advocacy group Atajurt"), which neither the phrase rules nor the
# span reader give (they give a name: "Atajurt"), so the sentence leads. "Who is the prime minister?"
# asks for a name and is not one of these.
# (Words apart by whitespace: "(?:[A-Z]\w*\s*)+" could split "ABCD" four ways and backtracked exponentially on
# "Who is ABCDEFGHIJKLMNOPQRSTUVWXYZ!".)
_DEFINITIONAL = re.compile(r"\s*(?i:who|what)\s+(?i:is|was|are|were)\s+[A-Z][\w’'.&-]*(?:\s+[A-Z][\w’'.&-]*)*\s*\??\s*$")


def validate_question(q: str, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """Trim, turn control characters into spaces, collapse whitespace, drop the chat around the question
    (mentions, greetings, "pls": :func:`bot.engines.chat_question.clean_question`); raise QuestionError if
    nothing is left or it is too long."""
    if not isinstance(q, str):
        raise QuestionError(f"Please ask a question (1–{max_chars} characters).")
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" and c not in "\u200d" else c for c in q)
    cleaned = _WS.sub(" ", cleaned).strip()
    if not cleaned:
        raise QuestionError(f"Please ask a question (1–{max_chars} characters).")
    # what a member types around a question ("hey", "<@400>", "@everyone", "pls") is not a question term
    asked = clean_question(cleaned)
    if not asked:
        raise QuestionError(f"Please ask a question (1–{max_chars} characters): I only saw mentions or greetings.")
    cleaned = asked
    if len(cleaned) > max_chars:
        raise QuestionError(f"That question is too long: {len(cleaned)} characters; the limit is {max_chars}.")
    return cleaned


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    abstained: bool
    support: tuple[Support, ...]
    confidence: float
    note: str | None = None
    short: str | None = None  # the answer phrase that leads ``answer``, word for word from support[0]

    @property
    def lines(self) -> tuple[str, ...]:
        """What the member reads, line by line: the short answer (if any), then the sentence that says it."""
        return tuple(self.answer.split("\n"))




def cue_kind(question: str) -> str:
    """The retrieval cue's kind, what the index's search is given: number, date, name (who / which / where
    ...) or other."""
    kind = question_kind(question)
    return "name" if kind in ("person", "place") else kind


class Retriever(_index_search.Retriever):
    """The index's retriever (:class:`bot.index.search.Retriever`) reading articles' dates with
    :func:`bot.engines.timeframe.published` and questions' cue kinds with :func:`cue_kind`, so that
    ``Retriever(index).search(question)`` needs nothing else."""

    def __init__(self, index: SentenceIndex, weights: Weights | None = None, previous: Retriever | None = None
                 ) -> None:
        super().__init__(index, weights, previous, published=timeframe.published)

    def question_type(self, question: str) -> str:
        return cue_kind(question)


def _fitted(visible, n: int) -> np.ndarray:
    """A scope mask (one bool per article row) as long as the index's ``n`` articles: cut, or padded with
    False for articles added since the scope was built."""
    v = np.zeros(n, dtype=bool)
    given = np.asarray(visible, dtype=bool)[:n]
    v[: given.size] = given
    return v


def confidence_from(coverage: float, dense: float, article: float, answers: float | None = None) -> float:
    """The abstention confidence: the mean of three shares read off the answer's own evidence - the
    question's terms around the answering sentence, the question's dense cosine with that sentence or a
    neighbour (:meth:`Retriever.window_dense`), and the question's terms anywhere in its article.
    Nothing in it depends on when the article was published: an archive asked months later answers
    from old articles as surely as from new ones (a question that names its time is narrowed to that
    span's articles instead, :meth:`Answerer.in_time`). Nor on how big the corpus is: the cosine is
    the answer's, not the best anywhere in the corpus (which grows with the corpus by chance alone, so
    a threshold fitted on 1,000 articles made a two-article corpus abstain on what it answers).

    (Leave-months-out on RealTime QA, thresholds at 8 % false abstention: the answer window's cosine
    instead of the corpus's best gave abstention 85.9 / 84.0 % on the two unanswerable constructions
    against 86.4 / 85.6 %, false abstention 8.1 / 8.5 % against 9.0 / 8.3 %, and slightly more right
    answers (live 51.2 against 50.6 %). Adding the answer phrase's fit to the asked-for kind, or the
    share of the question's two rarest terms in the article, as a fourth share lowered abstention by
    2-9 points: the reader already picks sentences that hold a phrase of the asked-for kind.

    Equal weights, no knob. On RealTime QA, leave-months-out, adding the article's coverage raised
    abstention on unanswerable questions from 77.9 to 82.8 % at the same false abstention, 7.1 %; its
    weight anywhere from 0.5 to 3 gave 80-84 %. 2:1 for the dense cosine, tried before, let a tiny
    corpus, whose best cosine is low, abstain on questions it answers.)

    With the reranker (``answers``: its probability that the answering sentence answers, the sigmoid of
    its score) the mean takes that as a fourth share.
    """
    if answers is not None:
        return max(0.0, (coverage + max(dense, 0.0) + article + answers) / 4.0)
    return max(0.0, (coverage + max(dense, 0.0) + article) / 3.0)


READER_FEATURES = ("retrieval", "answer_type", "nearness", "coverage", "lead", "agreement", "context", "recency",
                   "reranker")
RECENCY_DAYS = 7.0  # the reader's recency feature falls by a factor e every this many days


@dataclass(frozen=True)
class ReaderWeights:
    """Weights of the reader that reranks the retriever's top candidates (one per :data:`READER_FEATURES`).

    retrieval   the retriever's score minus the best candidate's (<= 0)
    answer_type the best new candidate phrase's fit to the question's kind (0..1; 0 for "other" questions)
    nearness    1 / (1 + words between that phrase and the nearest question word)
    coverage    idf-weighted share of the question's terms in the sentence itself
    lead        1 / (1 + the sentence's position in its article): the lead says what happened
    agreement   share (0, 0.5, 1) of other candidates from other articles repeating the phrase
    context     idf-weighted share of the question's terms around the sentence: it, its neighbours and its
                article's title (:meth:`Retriever.coverage`, the confidence's coverage)
    recency     exp(-days between the article's date and the question's / 7): news questions are about the
                latest reports ("Who is the prime minister?"); 0 for an undated article
    reranker    the cross-encoder's score (a logit) that the sentence, read with its article's title and the
                sentence before it, answers the question (:mod:`models.reranker`); 0 without a reranker
    """

    retrieval: float = 1.0
    answer_type: float = 0.0
    nearness: float = 0.0
    coverage: float = 0.0
    lead: float = 0.0
    agreement: float = 0.0
    context: float = 0.0
    recency: float = 0.0
    reranker: float = 0.0

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, f) for f in READER_FEATURES], dtype=np.float64)

    @classmethod
    def from_vector(cls, v) -> ReaderWeights:
        return cls(**{f: round(float(x), 3) for f, x in zip(READER_FEATURES, v)})


class Reader:
    """Reranks the retriever's top candidates by whether they answer the question, from the candidates'
    own features (:class:`bot.index.search.Candidate`): it reads no index."""

    def __init__(self, weights: ReaderWeights | None = None) -> None:
        self.weights = weights or ReaderWeights()

    def features(self, question: str, cands: list[Candidate], now: float | None = None,
                 reranked: np.ndarray | None = None) -> np.ndarray:
        """One row of :data:`READER_FEATURES` per candidate; ``now``: when it is asked (epoch s; default: the
        clock); ``reranked``: the reranker's score of each candidate (None: no reranker, the column is 0)."""
        now = time.time() if now is None else float(now)
        kind = question_kind(question)
        qwords = set(words(question))
        top = cands[0].score if cands else 0.0
        phrases = [scored_candidates(question, c.text, kind) for c in cands]
        cand_words = [set(words(c.text)) for c in cands]
        X = np.zeros((len(cands), len(READER_FEATURES)), dtype=np.float64)
        for i, c in enumerate(cands):
            X[i, 0] = c.score - top
            X[i, 3] = c.coverage
            X[i, 4] = 1.0 / (1.0 + c.position)
            X[i, 6] = c.context
            age = abs(now - c.published) / 86400.0
            X[i, 7] = 0.0 if np.isnan(age) else float(np.exp(-age / RECENCY_DAYS))
            if phrases[i]:
                p = phrases[i][0]
                X[i, 1] = p.fit
                X[i, 2] = p.near
                key = {w for w in words(p.text) if w not in qwords}
                agree = sum(
                    1 for j, o in enumerate(cands) if j != i and o.article != c.article and key and key <= cand_words[j]
                )
                X[i, 5] = min(agree, 2) / 2.0
        if reranked is not None and len(reranked) == len(cands):
            X[:, 8] = reranked
        return X


class Answerer:
    """Answers a question from the corpus, or abstains when the evidence is weak."""

    SYSTEM = (
        "You answer questions about news articles. Use only the numbered sentences given. "
        "Answer in one short sentence. If the sentences do not contain the answer, say you do not know."
    )
    # Fitted by benchmarks/ask_quality.py on RealTime QA 2022 (all months; the
    # benchmark reports the leave-months-out figures of the same procedure).
    DEFAULT_THRESHOLD = 0.559
    TIMED_THRESHOLD = 0.503  # questions naming their time ("this week"), read against that span's articles
    # (Both fitted when a timed question counted as answerable wherever its answer was; with only its own
    # span's articles counting, the 2022 fit gives 0.559 / 0.557 and the other years' 0.30-0.50 timed: not
    # refitted on one file's 12 questions. docs/benchmarks.md, construction (c).)
    READER = ReaderWeights(
        retrieval=0.74, answer_type=2.996, nearness=0.358, coverage=1.937, lead=1.511, agreement=0.743, context=3.97,
        recency=1.546,
    )
    CANDIDATES = 20  # retriever candidates the reader reranks
    # With the reranker (models/reranker.py, ASK_RERANKER): its score joins the reader's features, with its
    # own weights and thresholds, fitted by benchmarks/ask_quality.py --reranker like the ones above.
    # Fitted on every question of RealTime QA 2022 and 2024-2025, each file's candidates scored by a
    # reranker not trained on its years (benchmarks/ask_quality.py, "To ship with the reranker").
    READER_RERANKED = ReaderWeights(
        retrieval=0.645, answer_type=2.638, nearness=0.402, coverage=0.007, lead=1.427, agreement=0.657,
        context=1.754, recency=1.457, reranker=0.453,
    )
    RERANKED_THRESHOLD = 0.499
    RERANKED_TIMED_THRESHOLD = 0.235
    # The retriever's best this many are what the reranker scores (and the reader then ranks). Measured on
    # RealTime QA 2022 (never trained on), the cross-encoder alone: top-1 58.1 % of 10 against 55.0 % of 20
    # (a deeper pool only adds distractors; the retriever's order carries information), at half the time.
    RERANK_POOL = 10
    # The reranker's probability as a fourth share of the confidence: tried on RealTime QA 2022 (held-out
    # months, at 8 % false abstention) it abstained on 83.0 % of construction (a) against 86.4 % without,
    # so the confidence stays the three shares and the reranker only ranks (its thresholds are its own).
    RERANKER_IN_CONFIDENCE = False
    # Support [2], [3] ... are shown only when the reader gives them at least this share of the odds it gives
    # support [1] of being the answering sentence (the reader's scores are log-odds): a sentence about
    # something else is not shown as support.
    SUPPORT_MIN_ODDS = 0.05
    # How the short answer is chosen when a span reader is loaded (:meth:`pick_phrase`). "span": the span
    # reader's own decision, kept whole. Held out on every RealTime QA period (benchmarks/ask_quality.py --span,
    # first_line_rejudge.py), the first line alone is right 10-13 points more often than with the rules, and
    # 3-5 points more than with "agree".
    PHRASE_MODE = "span"
    # The span reader as a reranker (issue 30; benchmarks/span_rerank.py, docs/benchmarks.md): it reads the
    # reader's best SPAN_RERANK_N candidates, and each one's reader score gains SPAN_RERANK_ALPHA x its margin
    # (best span minus "no answer here"); the short answer is then the chosen sentence's. 0 (the default): it
    # reads support [1] only. Held out on RealTime QA 2022 and 2024-2025, N=3 gave +4 to +9.5 points of right
    # answers but +0.2 to +1.6 of wrong ones, so it is off; fitted on every question it would be N=3, alpha 3.0
    # (with DEFAULT_THRESHOLD 0.554, TIMED_THRESHOLD 0.388 refitted on 2022 as those were).
    # (It does not rerank when the cross-encoder reranker, ASK_RERANKER, scored the candidates; N=1 is N=0.)
    SPAN_RERANK_N = 0
    SPAN_RERANK_ALPHA = 3.0
    timeframes = True  # a question's "this week" narrows it to the week's articles (benchmarks switch it off)
    # with the span constraint: the answer is words of sentence 1, so ask for the fewest that answer
    SPAN_SYSTEM = (
        "You answer questions about news articles. Answer with the few words of sentence 1 that answer the "
        "question: a name, a number, a place or a short phrase, not the whole sentence."
    )
    MAX_NEW_TOKENS = 24  # a short answer; keeps abstractive /ask near 2 s on 2 cores
    TEMPLATE_TOKENS = 48  # what a chat template adds around the system line and the prompt (SmolLM2's: ~15)

    def __init__(
        self,
        index: SentenceIndex,
        generator=None,
        *,
        abstain_threshold: float | None = None,
        timed_threshold: float | None = None,
        reader: ReaderWeights | None = None,
        previous: Answerer | None = None,
        reranker=None,
        span_reader=None,
        span_rerank: bool = True,
        retriever=None,
    ) -> None:
        """``previous``: the answerer of the index version ``index`` grew from (its features are reused).
        ``reranker``: an object with ``score(question, [(sentence, title, sentence before), ...])`` -> one
        logit each (:class:`models.reranker.Reranker`); None, or one that fails, ranks as before.
        ``span_reader``: an object with ``read(question, sentence, title, sentence before)`` -> a span with
        ``.text`` or None (:class:`models.span_reader.SpanReader`): it picks the short answer in support [1];
        None, or one that fails, leaves the phrase to the rules (:func:`answer_phrase.best_phrase`).
        ``span_rerank``: the span reader also reranks the reader's best candidates (:attr:`SPAN_RERANK_N`);
        False: it reads support [1] only. ``retriever``: another home of the same search call (a
        :class:`bot.index.search.SentenceSearch`, e.g. :class:`bot.index.pgindex.PgSearch`); ``index`` may
        then be None."""
        self.index = index
        self.generator = generator
        self.reranker = reranker
        self.span_reader = span_reader
        self.span_rerank = bool(span_rerank)
        self._span_failed = False
        self.reranked_weights = self.READER_RERANKED
        self.reranked_threshold = self.RERANKED_THRESHOLD
        self.reranked_timed_threshold = self.RERANKED_TIMED_THRESHOLD
        self._rerank_failed = False
        self.retriever = retriever if retriever is not None else Retriever(
            index, previous=previous.retriever if previous is not None else None)
        self.reader = Reader(reader or self.READER)
        self.abstain_threshold = self.DEFAULT_THRESHOLD if abstain_threshold is None else float(abstain_threshold)
        # a question naming its time is read against that span's articles only: fewer, so lower confidences
        self.timed_threshold = self.TIMED_THRESHOLD if timed_threshold is None else float(timed_threshold)

    def confidence(self, question: str, support: list[Candidate], now: float | None = None,
                   answers: float | None = None) -> float:
        """(coverage + window cosine + article coverage) / 3, in [0, 1] (:func:`confidence_from`).

        Coverage: the idf-weighted share of the question's terms found around
        the best sentence (its ``context``). Window cosine: the
        question's highest cosine with that sentence or a same-article neighbour
        (its ``dense``). Article
        coverage: the share of the question's words its article holds
        (its ``article_coverage``): an answer from an article about
        something else ("Starbucks' holiday drinks" for "Which new treat did
        McDonald's add?") lacks some of them. ``now`` is not used: the answer's age is
        no evidence that it is wrong.
        """
        if not support:
            return 0.0
        best = support[0]
        return confidence_from(best.context, best.dense, best.article_coverage, answers)

    def rerank_scores(self, question: str, cands: list[Candidate]) -> np.ndarray | None:
        """The reranker's score of each candidate; None without a reranker or when it fails (logged once:
        the answer then comes from the reader's ranking alone, and this answerer does not call it again; the
        next snapshot's answerer tries once more)."""
        if self.reranker is None or self._rerank_failed or not cands:
            return None
        items = [(c.text, c.title, c.before) for c in cands]
        try:
            scores = np.asarray(self.reranker.score(question, items), dtype=np.float64).reshape(-1)
            if scores.shape[0] != len(cands) or not np.all(np.isfinite(scores)):
                raise ValueError(f"{scores.shape[0]} finite scores expected {len(cands)}")
            return scores
        except Exception as exc:  # noqa: BLE001 - a broken reranker leaves /ask on today's ranking
            from models.registry import ModelUnavailable

            if not self._rerank_failed:
                self._rerank_failed = True
                if isinstance(exc, ModelUnavailable):  # the loader has logged why, once
                    return None
                log.warning("the /ask reranker failed (%s: %s): ranking without it", type(exc).__name__, exc)
            return None

    def candidates(self, question: str, k: int = 3, visible: np.ndarray | None = None, now: float | None = None,
                   published_before: float | None = None, published_between: tuple[float, float] | None = None
                   ) -> tuple[list[Candidate], np.ndarray, np.ndarray | None]:
        """The index's top candidates (at least k), their reader features and the reranker's scores (None
        without one). ``visible``: one bool per article row (the asking guild's scope); None = all. ``now``:
        when asked. ``published_before`` / ``published_between``: the time window (:meth:`time_window`)."""
        pool = self.RERANK_POOL if self.reranker is not None and not self._rerank_failed else self.CANDIDATES
        visible = self.year_scope(question, self.dated_scope(visible, published_between, published_before), now)
        cands = self.retriever.search_candidates(question, cue_kind(question), max(k, pool), visible,
                                                 published_before, published_between)
        rr = self.rerank_scores(question, cands)
        return cands, self.reader.features(question, cands, now, rr), rr

    def rank(self, question: str, k: int = 3, visible: np.ndarray | None = None, now: float | None = None,
             published_before: float | None = None, published_between: tuple[float, float] | None = None
             ) -> tuple[list[Candidate], float | None]:
        """The k best supporting sentences after the reader's reranking (score = the reader's, with the span
        reader's margin fused in when it reranks, :meth:`span_rerank_scores`) and the reranker's probability
        that support [1] answers (None without a reranker).
        Support after the first whose odds fall under :attr:`SUPPORT_MIN_ODDS` of the first's is left out."""
        support, answers, _ = self._rank(question, k, visible, now, published_before, published_between)
        return support, answers

    def _rank(self, question: str, k: int, visible, now, published_before, published_between,
              min_confidence: float | None = None) -> tuple[list[Candidate], float | None, dict]:
        """:meth:`rank`, and the span reader's reads of the candidates it reranked (sentence row -> span or
        None; empty when it did not rerank), so that support [1] is not read twice. ``min_confidence``: the
        abstention threshold; when no candidate the span reader would read reaches it the answer abstains
        whichever it picks, so it reads none."""
        cands, X, rr = self.candidates(question, k, visible, now, published_before, published_between)
        if not cands:
            return [], None, {}
        w = self.reader.weights if rr is None else self.reranked_weights
        sc = X @ w.vector()
        order = np.argsort(-sc, kind="stable")
        reads: dict = {}
        if rr is None and not (min_confidence is not None and all(
                confidence_from(cands[i].context, cands[i].dense, cands[i].article_coverage) < min_confidence
                for i in order[: self.SPAN_RERANK_N])):
            sc, order, reads = self.span_rerank_scores(question, cands, sc, order)
        order = order[:k]
        floor = float(np.log(self.SUPPORT_MIN_ODDS)) if self.SUPPORT_MIN_ODDS > 0 else -np.inf
        keep = [i for n, i in enumerate(order) if n == 0 or sc[i] - sc[order[0]] >= floor]
        answers = None if rr is None else float(1.0 / (1.0 + np.exp(-rr[order[0]])))
        return [replace(cands[i], score=float(sc[i])) for i in keep], answers, reads

    def span_reranks(self) -> bool:
        """Whether the span reader reranks the reader's best candidates (:attr:`SPAN_RERANK_N`): on when a
        span reader is loaded, this answerer was not told otherwise (``span_rerank``) and it has not failed."""
        return (self.span_rerank and self.SPAN_RERANK_N > 1 and self.span_reader is not None
                and not self._span_failed)

    def span_rerank_scores(self, question: str, cands: list[Candidate], sc: np.ndarray, order: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, dict]:
        """(scores, order, reads): the reader's best :attr:`SPAN_RERANK_N` candidates read by the span reader,
        each one's score raised by :attr:`SPAN_RERANK_ALPHA` x its margin (its best span's log-score minus "no
        answer here"; :data:`NO_SPAN_MARGIN` when it has no span at all), and reordered by that; the rest keep
        the reader's order after them. Unchanged when the span reader does not rerank or fails (logged once;
        this answerer then ranks and phrases as without it)."""
        if not self.span_reranks():
            return sc, order, {}
        top = order[: self.SPAN_RERANK_N]
        spans = self.read_spans(question, [cands[i] for i in top])
        if spans is None:
            return sc, order, {}
        margin = np.array([s.margin if s is not None else NO_SPAN_MARGIN for s in spans], dtype=np.float64)
        sc = sc.copy()
        sc[top] = sc[top] + self.SPAN_RERANK_ALPHA * margin
        ranked = top[np.argsort(-sc[top], kind="stable")]
        return sc, np.concatenate([ranked, order[len(top):]]), {cands[i].sentence: s for i, s in zip(top, spans)}

    def read_spans(self, question: str, cands: list[Candidate]) -> list | None:
        """The span reader's best span in each candidate (``always``: even one under "no answer here"), in
        one batch where the reader takes one (``read_many``); None when it failed (logged once)."""
        items = [(c.text, c.title, c.before) for c in cands]
        try:
            many = getattr(self.span_reader, "read_many", None)
            if callable(many):
                spans = list(many(question, items, always=True))
            else:
                spans = [self.span_reader.read(question, *it, always=True) for it in items]
            if len(spans) != len(items):
                raise ValueError(f"{len(spans)} reads for {len(items)} sentences")
            return spans
        except Exception as exc:  # noqa: BLE001 - a broken span reader leaves /ask on the reader's ranking
            self._span_fail(exc)
            return None

    def _span_fail(self, exc: Exception) -> None:
        from models.registry import ModelUnavailable

        if not self._span_failed and not isinstance(exc, ModelUnavailable):  # the loader has logged why, once
            log.warning("the /ask span reader failed (%s: %s): ranking and phrases without it",
                        type(exc).__name__, exc)
        self._span_failed = True

    def lead(self, question: str, support: list[Candidate], reads: dict | None = None
             ) -> tuple[str, str | None, list[Support]]:
        """(the text a member reads first, the short answer or None, the support): the phrase, then the
        sentence it is from. When a who-question's verb has "he"/"she" for subject in support [1]
        ("..., he said, estimating ..."), the answer is the person the sentence before names; that
        sentence then joins the support as [2], so the phrase is still word for word from a support."""
        top = support[0].text
        first = support[0]
        if first.position > 0 and pronoun_subject(question, top):
            row = first.sentence - 1
            person = antecedent(question, first.before, self.retriever.article_text(first.article))
            if person is not None:
                before = Support(first.article, first.position - 1, row, first.before, first.score)
                rest = [s for s in support[1:] if s.sentence != row]
                return f"{person.text}\n{top}", person.text, [first, before, *rest][: max(len(support), 2)]
        if _DEFINITIONAL.match(question):
            return top, None, support
        found = best_phrase(question, top, [s.text for s in support[1:]])
        short = found.text if found is not None else None
        read = reads[first.sentence] if reads and first.sentence in reads else self.read_span(question, first)
        if read is not False:  # the span reader ran
            short = self.pick_phrase(top, short, read)
        if short is None:
            return top, None, support
        return f"{short}\n{top}", short, support

    def pick_phrase(self, sentence: str, rules: str | None, span) -> str | None:
        """The short answer of ``sentence`` from the span reader's best ``span`` and the rules' phrase, with
        no fitted knob. :attr:`PHRASE_MODE` ``"span"`` (the default): the span when it scores above "no
        answer here", kept whole (:func:`whole_phrase`), else none (the sentence leads). ``"agree"``
        (measured beside it by ``benchmarks/ask_quality.py``): the rules' phrase when the span overlaps it,
        even under "no answer here" (two readers agree; the rules' phrase keeps its unit, "68 new
        coronavirus cases"), else the span when it scores above "no answer here"."""
        text = span.text.strip() if span is not None else ""
        a = sentence.find(text) if text and text != sentence.strip() else -1
        if a < 0:
            span = None
        if self.PHRASE_MODE == "span":
            if span is None or span.margin <= 0:
                return None
            return whole_phrase(text, rules, sentence)
        if span is not None and rules:
            r = sentence.find(rules)
            if r >= 0 and r < a + len(text) and a < r + len(rules):
                return rules
        return text if span is not None and span.margin > 0 else None

    def read_span(self, question: str, first: Candidate):
        """The span reader's best span in ``first`` (even one under "no answer here": its ``margin`` says),
        None when it has none, False when there is no span reader or it failed (logged once; this answerer
        then keeps to the rules)."""
        if self.span_reader is None or self._span_failed:
            return False
        try:
            return self.span_reader.read(question, first.text, first.title, first.before, always=True)
        except Exception as exc:  # noqa: BLE001 - a broken span reader leaves the phrase to the rules
            self._span_fail(exc)
            return False

    def time_window(self, question: str, now: float | None = None, asked_at: float | None = None
                    ) -> tuple[float | None, tuple[float, float] | None, float | None]:
        """(published-before bound, published-between bounds, the span the question names or None): the time
        window the index reads the question's articles in (epoch s; None: no bound).

        ``asked_at`` (epoch s; a replay, the batch CLI's ``"asked_at"``): the question is read as it would
        have been then - articles published after it are hidden (undated ones always count) and its "this
        week" counts back from it. Without it the question is asked now (``now``, default the clock): every
        article in the corpus has been published by then, and an article dated up to
        :data:`timeframe.FUTURE_SLACK` ahead of ``now`` still counts for "this week" (time zones, date-only
        stamps)."""
        span = timeframe.window(question) if self.timeframes else None
        if span is None and asked_at is None:
            return None, None, None
        if asked_at is not None:
            now = float(asked_at)
        now = time.time() if now is None else float(now)
        before = now if asked_at is not None else None
        between = None
        if span is not None:
            slack = 0.0 if asked_at is not None else timeframe.FUTURE_SLACK
            between = (now - span, now + slack)
        return before, between, span

    def in_time(self, question: str, visible: np.ndarray | None = None, now: float | None = None,
                asked_at: float | None = None) -> tuple[np.ndarray | None, float | None]:
        """(``visible`` narrowed to the articles that could answer the question when it is asked, the span
        the question names or None): :meth:`time_window` as an article mask, for benchmarks and tests (the
        answer itself passes the window to the index's search)."""
        before, between, span = self.time_window(question, now, asked_at)
        scope = self.year_scope(question, self.dated_scope(visible, between, before),
                                asked_at if asked_at is not None else now)
        return self.retriever.in_window(scope, before, between), span

    def named_years(self, question: str, now: float | None = None) -> frozenset[int]:
        """The years the question names (:func:`timeframe.years`; "this year" is the year of ``now``, default
        the clock); none with time words off."""
        if not self.timeframes:
            return frozenset()
        return timeframe.years(question, time.time() if now is None else float(now))

    def year_scope(self, question: str, visible: np.ndarray | None, now: float | None = None
                   ) -> np.ndarray | None:
        """For a question that names a year (:meth:`named_years`; "this year" is the year of ``now``, when it
        is asked, default the clock): ``visible`` narrowed to the articles
        published in one of its years or whose text or title names one ("the 2024 Golden Globes" is not
        answered from the 2023 ceremony's article, which matches it word for word). An undated article counts
        only when it names the year. ``visible`` itself for a question naming none (or with time words off).

        (RealTime QA, by the articles published by each quiz date that hold its answer: of the 32 + 72
        questions naming a year in 2022 and 2024-2025, 30 + 65 keep such an article; the other 2 + 7 hold
        their answer string by chance in older articles, e.g. a 2015 "world's best airline" article for "the
        world's best for 2022". Chosen before measuring the answers; docs/benchmarks.md.)"""
        named = self.named_years(question, now)
        holding = getattr(self.retriever, "articles_holding", None)
        if not named or holding is None:
            return visible
        sync = getattr(self.retriever, "sync", None)
        if sync is not None:
            sync()  # the index may have been rebuilt in place: its articles' dates and terms first
        pub = np.asarray(self.retriever.published, dtype=np.float64)
        year = np.full(pub.size, -1, dtype=np.int64)
        dated = np.isfinite(pub)
        year[dated] = pub[dated].astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970
        scope = np.isin(year, sorted(named))
        for y in sorted(named):
            m = np.asarray(holding(str(y)), dtype=bool)[: pub.size]
            scope[: m.size] |= m
        return scope if visible is None else scope & _fitted(visible, pub.size)

    def dated_scope(self, visible: np.ndarray | None, published_between: tuple[float, float] | None,
                    published_before: float | None = None) -> np.ndarray | None:
        """For a question that names its time (``published_between`` set): ``visible`` without its undated
        articles when at least :data:`DATED_SHARE` of the articles it could read then (published by
        ``published_before``; undated ones count) carry a date. Nothing shows an undated article is from
        this week; where most articles carry dates, one without is left out (a file's "Updated 5 min ago").
        A scope of mostly undated articles is read as before."""
        if published_between is None:
            return visible
        sync = getattr(self.retriever, "sync", None)
        if sync is not None:
            sync()  # the index may have been rebuilt in place: its articles' dates first
        pub = np.asarray(self.retriever.published, dtype=np.float64)
        scope = np.ones(pub.size, dtype=bool) if visible is None else _fitted(visible, pub.size)
        dated = ~np.isnan(pub)
        readable = scope.copy()
        if published_before is not None:
            with np.errstate(invalid="ignore"):
                readable &= ~(pub > published_before)
        if readable.any() and (readable & dated).sum() >= DATED_SHARE * readable.sum():
            return scope & dated
        return visible

    def answer(self, question: str, *, mode: str = "extractive", k: int = 3, visible: np.ndarray | None = None,
               now: float | None = None, asked_at: float | None = None) -> Answer:
        """``visible``: one bool per article row (the asking guild's scope; None = all); ``now``: epoch
        seconds a question's "this week" counts back from (default: the clock); ``asked_at``: answer it as
        it would have been answered then (a replay: later articles are hidden, see :meth:`in_time`)."""
        q = validate_question(question)
        if mode not in MODES:
            raise ValueError(f"unknown answer mode {mode!r}; expected one of {', '.join(MODES)}")
        if k < 1:
            raise ValueError("k must be at least 1")
        before, between, span = self.time_window(q, now, asked_at)
        if asked_at is not None:
            now = float(asked_at)
        # without a reranker the threshold is known before ranking: a pool that cannot reach it is not read
        plain = None if self.reranker is not None else (self.abstain_threshold if span is None
                                                          else self.timed_threshold)
        support, answers, reads = self._rank(q, k, visible, now, before, between, plain)
        conf = self.confidence(q, support, now, answers if self.RERANKER_IN_CONFIDENCE else None)
        if answers is None:
            threshold = self.abstain_threshold if span is None else self.timed_threshold
        else:
            threshold = self.reranked_threshold if span is None else self.reranked_timed_threshold
        if not support or conf < threshold:
            named = sorted(self.named_years(q, now))
            if span is not None:
                message = TIME_ABSTAIN_MESSAGE.format(span=timeframe.describe(span))
            elif named:
                message = YEAR_ABSTAIN_MESSAGE.format(years=" or ".join(map(str, named)))
            else:
                message = ABSTAIN_MESSAGE
            return Answer(q, message, True, (), conf)
        text, short, support = self.lead(q, support, reads)
        extractive = Answer(q, text, False, tuple(support), conf, short=short)
        if mode == "extractive":
            return extractive
        if self.generator is None:
            return replace(extractive, note=NO_GENERATOR_NOTE)
        return self._abstractive(q, support, conf, extractive)

    # ----------------------------------------------------------- abstractive
    def prompt(self, question: str, support: list[Support]) -> str:
        return self._prompt(question, [s.text for s in support])

    @staticmethod
    def _prompt(question: str, texts: list[str]) -> str:
        lines = [f"{n}. {t}" for n, t in enumerate(texts, 1)]
        return "Sentences:\n" + "\n".join(lines) + f"\n\nQuestion: {question}\nShort answer:"

    def _fitted_prompt(self, question: str, support: list[Support], system: str) -> str:
        """The prompt, its sentences cut (rarely: sentences thousands of characters long) so that it, the system
        line and the answer fit the generator's context; sentence 1, which the answer copies, keeps the larger
        share. A token covers at least one byte of UTF-8 (byte-level and byte-fallback tokenizers alike), so
        a prompt of fewer bytes than the room fits without counting. A generator that cannot count or cut
        tokens, or whose counting fails, gets the whole prompt (its own limit then decides)."""
        gen = self.generator
        texts = [s.text for s in support]
        full = self._prompt(question, texts)
        ctx = getattr(gen, "context_length", None)
        count, cut_to = getattr(gen, "count_tokens", None), getattr(gen, "truncate_to_tokens", None)
        if not (ctx and callable(count) and callable(cut_to)):
            return full
        room = int(ctx) - self.MAX_NEW_TOKENS - self.TEMPLATE_TOKENS
        if len(full.encode()) + len(system.encode()) <= room:
            return full
        try:
            extra = count(system) + count(self._prompt(question, [""] * len(texts)))
            need = [count(t) for t in texts]
        except Exception as exc:  # noqa: BLE001 - e.g. a tokenizer call that failed: the model may still take it
            log.info("could not count the prompt's tokens (%s); sending it whole", exc)
            return full
        if extra + sum(need) <= room:
            return full
        left = room - extra
        if left < 8:
            raise ValueError("the question leaves no room for the sentences in the model's context")
        first = min(need[0], max(left - 8 * (len(texts) - 1), left // 2))
        cut = [cut_to(texts[0], first) if need[0] > first else texts[0]]
        left -= first
        for t, n in zip(texts[1:], need[1:]):
            share = max(left // max(len(texts) - len(cut), 1), 0)
            cut.append(t if n <= share else cut_to(t, share))
            left -= min(n, share)
        return self._prompt(question, cut)

    def _abstractive(self, q: str, support: list[Support], conf: float, fallback: Answer) -> Answer:
        """The model's short answer, kept only when ONE supporting sentence says it with the same bindings
        (:func:`bot.grounding.verifier.backing_sentence`); otherwise the extractive answer with a note."""
        gen = self.generator
        try:
            if callable(getattr(gen, "generate_copy", None)):
                # the copy constraint in its span form (models/decoding.py), in whatever form the backend takes
                # it: the answer is one unbroken run of words of support [1] that splits no name or number and
                # cuts off no negation, modal or hedge; '' when the model cannot give one
                prompt = self._fitted_prompt(q, support, self.SPAN_SYSTEM)
                text = gen.generate_copy(prompt, support[0].text, span=True, system=self.SPAN_SYSTEM,
                                         max_new_tokens=self.MAX_NEW_TOKENS)
            else:  # a bare generator (no constraint): its free answer goes through the same checks
                prompt = self._fitted_prompt(q, support, self.SYSTEM)
                text = gen.generate(prompt, system=self.SYSTEM, max_new_tokens=self.MAX_NEW_TOKENS)
        except Exception as exc:  # noqa: BLE001 - e.g. a summary server that is down: the answer still comes
            short = " ".join(str(exc).split())[:200] or type(exc).__name__
            return replace(fallback, note=MODEL_ERROR_NOTE.format(error=short))
        text = _WS.sub(" ", text or "").strip()
        if not text:
            return replace(fallback, note=EMPTY_GENERATION_NOTE)
        if _DONT_KNOW.search(text):
            return replace(fallback, note=NO_ANSWER_NOTE)
        ref = _SENTENCE_REF.fullmatch(text)
        if ref and 1 <= int(ref.group(1)) <= len(support) and not re.search(
            rf"(?<![\d.,]){ref.group(1)}(?!\d|[.,]\d)", support[0].text
        ):
            return replace(fallback, note=SENTENCE_REF_NOTE)  # "1": it named a sentence, not an answer
        invented = invented_terms(text, [s.text for s in support])
        if invented:
            what = ", ".join(f"“{t}”" for t in invented[:3])
            return replace(fallback, note=GUARD_NOTE.format(what=what))
        # Checked against support [1] only, the sentence the reader ranked first: the answer text then
        # holds the same sentence as the extractive one, so it can be no less right.
        row, found = backing_sentence(text, [support[0].text])
        if row is None:
            return replace(fallback, note=RELATION_NOTE.format(what="; ".join(found[:2])))
        return Answer(q, f"{text}\n{support[0].text}", False, tuple(support), conf, short=text)


# where one clause ends and the next begins: ", and 15 had since been released", "; the rest ..."
_CLAUSE_BREAK = re.compile(r",\s+(?:and|but|or|while|whereas|which|who|where)\s|;\s")
_LIST_COMMA = re.compile(r",\s")


def one_clause(span: str) -> str:
    """``span`` cut where it runs on past a clause break into the next clause: "29 Kazakh citizens, and 15"
    (of "... had detained 29 Kazakh citizens, and 15 had since been released") is "29 Kazakh citizens".
    A span whose head holds a list comma is a list and stays whole ("Serbia, Croatia, and Slovenia")."""
    m = _CLAUSE_BREAK.search(span)
    if m is None:
        return span
    head = span[: m.start()].rstrip()
    return head if head and not _LIST_COMMA.search(head) else span


def whole_phrase(span: str, rules: str | None, sentence: str) -> str | None:
    """``span`` as the short answer only when it passes the abstractive answers' span constraint (one
    unbroken run of the sentence's words that splits no name or number and cuts off no negation, modal,
    hedge or unit: "2,000" of "more than 2,000 ethnic Kazakhs" does not); else the rules' phrase when it
    holds the span and passes; else None (the sentence leads, and says it all). A span that runs on into
    the next clause is first cut at the break (:func:`one_clause`)."""
    from models.decoding import satisfies

    span = one_clause(span)
    if satisfies(span, sentence, span=True):
        return span
    if rules and span in rules and satisfies(rules, sentence, span=True):
        return rules
    return None


def invented_terms(generated: str, sources: list[str]) -> list[str]:
    """Numbers, names and dates in ``generated`` that no source text contains (the summaries' guard)."""
    return unsupported(generated, sources)
