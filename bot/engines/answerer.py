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
import scipy.sparse as sp

from ..index.postings import PostingsView
from ..index.sentence_index import SentenceIndex
from . import timeframe
from .chat_question import clean_question
from .answer_phrase import antecedent, best_phrase, pronoun_subject, question_kind, scored_candidates, words
from ..grounding.claims import unsupported
from ..grounding.verifier import backing_sentence

log = logging.getLogger(__name__)

ABSTAIN_MESSAGE = "I couldn't find that in the articles I have."
TIME_ABSTAIN_MESSAGE = "I couldn't find that in the articles I have from {span}."
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


class QuestionError(ValueError):
    """A question that cannot be asked; the message is meant for the user."""


_WS = re.compile(r"\s+")


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
class Support:
    article: int  # article row in index.articles
    position: int  # sentence index within the article
    sentence: int  # global sentence row
    text: str
    score: float


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


@dataclass(frozen=True)
class Weights:
    """Fusion weights. Every evidence array is z-normalised over the corpus and divided by its
    maximum (the best sentence or article scores 1), so the weights are shares of that best."""

    dense: float = 1.0  # dense cosine, next to BM25 (weight 1)
    neighbour: float = 0.3  # best same-article neighbour's fused score
    article: float = 0.8  # BM25 of the whole article
    title: float = 0.5  # title similarity: dense + TF-IDF, half each
    cue: float = 0.25  # answer-type cue: a new number / date / name
    fragment: float = 0.25  # penalty for text that does not end like a sentence (captions, links)

    def without(self, part: str) -> Weights:
        return replace(self, **{part: 0.0})


# Words that make a question a question but say nothing about its topic.
QUESTION_WORDS = frozenset(
    """what which who whom whose when where why how many much did does do done has have had was were
    been being is are am can could would should shall may might must according recent recently
    reportedly reported latest week weeks ago last this that these those following name named
    called known said says tell me please about""".split()
)
_WORD = re.compile(r"(?u)\d+(?:[.,]\d+)*|\w+")
_CAP = re.compile(r"\b[A-Z]\w*")
_NUM = re.compile(r"\d")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s*$")
_NUMBER_WORDS = re.compile(
    r"(?i)\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|dozens|hundreds?|"
    r"thousands?|millions?|billions?|trillions?|percent|half|third|quarter)\b"
)
_DATE = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|"
    r"Sunday|today|yesterday|tomorrow|(?:1[89]|20)\d\d)\b"
)
_HOW = re.compile(r"(?i)\bhow (?:long|old|far|often|big|large|tall|high|fast|soon|many|much)\b")

def _ranked(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (argpartition, then a sort of k)."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    return top[np.argsort(-scores[top], kind="stable")]


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    if sd < 1e-9:
        return np.zeros_like(x, dtype=np.float32)
    return ((x - float(x.mean())) / sd).astype(np.float32)


def _zmax(x: np.ndarray) -> np.ndarray:
    z = _z(x)
    top = float(z.max()) if z.size else 0.0
    return z / top if top > 1e-9 else z


class Retriever:
    """Hybrid sentence retrieval over a built :class:`SentenceIndex`; all features precomputed here."""

    def __init__(self, index: SentenceIndex, weights: Weights | None = None, previous: Retriever | None = None
                 ) -> None:
        """Precompute every per-sentence feature; call after ``index.build``. ``previous``: the retriever of
        the version ``index`` grew from - only the new sentences' features are computed."""
        self.index = index
        self.weights = weights or Weights()
        self._build(previous)

    def _build(self, previous: Retriever | None = None) -> None:
        ix = self.index
        base = (
            previous
            if previous is not None and previous is not self and previous._texts is previous.index.texts
            and ix.grew_from(previous.index)
            else None
        )
        self._texts = ix.texts  # the build this Retriever's features belong to
        n = len(ix)
        self.n = n
        self.n_articles = len(ix.articles)
        art = ix.sent_article.astype(np.int64)
        self._art = art
        # Neighbour masks: the previous / next sentence exists and is in the same article.
        self._has_prev = np.zeros(n, dtype=bool)
        self._has_next = np.zeros(n, dtype=bool)
        if n > 1:
            same = art[1:] == art[:-1]
            self._has_prev[1:] = same
            self._has_next[:-1] = same
        # Per-sentence answer-type cues, computed for the sentences the previous retriever did not have.
        n0 = base.n if base is not None else 0
        fresh = ix.texts[n0:]
        fragment = np.array([not _SENTENCE_END.search(t) for t in fresh], dtype=bool)
        has_date = np.array([bool(_DATE.search(t)) for t in fresh], dtype=bool)
        has_num_word = np.array([bool(_NUMBER_WORDS.search(t)) for t in fresh], dtype=bool)
        stems = ix.lexicon.stems
        num_rows: list[list[int]] = []
        cap_rows: list[list[int]] = []
        for t in fresh:
            nums = [w.replace(",", "") for w in _WORD.findall(t) if _NUM.search(w)]
            caps = [m.group(0) for m in _CAP.finditer(t) if m.start() > 0]  # sentence-initial capitals say nothing
            num_rows.append(sorted(set(ix.term_ids(stems(nums)))))
            cap_rows.append(sorted(set(ix.term_ids(stems(caps)))))
        cap0 = base._cap if base is not None else PostingsView.empty()
        num0 = base._num if base is not None else PostingsView.empty()
        # Sentence x term presence of its capitalised words / numbers (stemmed like the index).
        self._cap = cap0.store.append(cap0, cap_rows)
        self._num = num0.store.append(num0, num_rows)
        cap_count = np.array([len(r) for r in cap_rows], dtype=np.float32)
        num_count = np.array([len(r) for r in num_rows], dtype=np.float32)
        if base is not None:
            fragment = np.concatenate([base._fragment, fragment])
            has_date = np.concatenate([base._has_date, has_date])
            has_num_word = np.concatenate([base._has_num_word, has_num_word])
            cap_count = np.concatenate([base._cap_count, cap_count])
            num_count = np.concatenate([base._num_count, num_count])
        else:
            for p in (self._cap, self._num):
                p.store.merge(p)
        if base is not None and (self._cap.needs_merge() or self._num.needs_merge()):
            self._cap.store.merge(self._cap)
            self._num.store.merge(self._num)
        # Each article's publication time (epoch s, NaN unknown): a question about "this week" reads only
        # the articles of this week (bot.engines.timeframe).
        a0 = base.n_articles if base is not None else 0
        pub = np.array([timeframe.published(a.date) for a in ix.articles[a0:]], dtype=np.float64)
        self._published = np.concatenate([base._published, pub]) if base is not None else pub
        self._fragment, self._has_date, self._has_num_word = fragment, has_date, has_num_word
        self._cap_count, self._num_count = cap_count, num_count
        self._max_idf = float(np.log(n + 1) + 1.0) if n else 1.0
        self._median_idf = ix.median_idf()

    @property
    def published(self) -> np.ndarray:
        """Each article row's publication time (epoch s; NaN: undated), of the build the features are from."""
        return self._published

    # ------------------------------------------------------------- querying
    def query_words(self, question: str) -> list[str]:
        """The question's lower-cased words without question words ("how long", "which", "did")."""
        return [w for w in _WORD.findall(_HOW.sub(" ", question).lower()) if w not in QUESTION_WORDS]

    def query_terms(self, question: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(content terms, key terms) as (stemmed term, vocabulary id or -1); key terms are names and numbers."""
        vocab = self.index.vocab
        terms = self.index.lexicon.terms
        content = list(dict.fromkeys(terms([" ".join(self.query_words(question))])[0]))
        keys_raw = [
            m.group(0) for m in _CAP.finditer(question) if m.start() > 0 and m.group(0).lower() not in QUESTION_WORDS
        ]
        keys_raw += [w for w in _WORD.findall(question) if _NUM.search(w)]
        keys = list(dict.fromkeys(terms([" ".join(keys_raw)])[0])) if keys_raw else []
        return [(t, vocab.get(t, -1)) for t in content], [(t, vocab.get(t, -1)) for t in keys]

    def components(self, question: str) -> dict[str, np.ndarray]:
        """Raw per-sentence evidence for one question (all full-length arrays)."""
        ix = self.index
        content, keys = self.query_terms(question)
        known = list(dict.fromkeys(i for _, i in content if i >= 0))
        words = self.query_words(question)
        bm = ix.bm25_scores(" ".join(words) or question) if self.n else np.zeros(0, np.float32)
        qvec = ix.encode_query(question)
        dn = ix.dense_scores(qvec).astype(np.float32)
        if known:
            art_bm = ix.article_bm25(known)
            qlex = ix.query_lex(" ".join(words) or question)
            title_lex = np.asarray((ix.title_lex @ qlex.T).todense()).ravel().astype(np.float32)
        else:
            art_bm = np.zeros(self.n_articles, np.float32)
            title_lex = np.zeros(self.n_articles, np.float32)
        title_dn = ix.title_scores(qvec) if self.n_articles else np.zeros(0, np.float32)
        known_keys = list(dict.fromkeys(i for _, i in keys if i >= 0))
        cap_q = self._cap.column_sum(known_keys, binary=True) if known_keys else np.zeros(self.n, np.float32)
        num_q = self._num.column_sum(known_keys, binary=True) if known_keys else np.zeros(self.n, np.float32)
        return {
            "bm25": np.asarray(bm, dtype=np.float32),
            "dense": dn,
            "article_bm25": art_bm,
            "title_lex": title_lex,
            "title_dense": title_dn,
            "new_caps": self._cap_count - cap_q,  # capitalised names the question does not contain
            "new_nums": self._num_count - num_q,
        }

    def question_type(self, question: str) -> str:
        """The retrieval cue's kind: number, date, name (who / which / where ...) or other."""
        kind = question_kind(question)
        return "name" if kind in ("person", "place") else kind

    def fuse(self, c: dict[str, np.ndarray], qtype: str, w: Weights | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(final score, fused sentence score) from components; vectorised over all sentences."""
        w = w or self.weights
        zb = _zmax(c["bm25"])
        fused = zb + w.dense * _zmax(c["dense"])
        score = fused.copy()
        if w.neighbour:
            prev = np.zeros_like(fused)
            nxt = np.zeros_like(fused)
            prev[1:] = fused[:-1]
            nxt[:-1] = fused[1:]
            prev[~self._has_prev] = 0.0
            nxt[~self._has_next] = 0.0
            score += w.neighbour * np.maximum(np.maximum(prev, nxt), 0.0)
        art = np.zeros(self.n_articles, np.float32)
        if w.article:
            art += w.article * _zmax(c["article_bm25"])
        if w.title:
            art += w.title * 0.5 * (_zmax(c["title_dense"]) + _zmax(c["title_lex"]))
        if self.n_articles:
            score += art[self._art]
        if w.cue:
            if qtype == "number":
                score += w.cue * ((c["new_nums"] > 0) | self._has_num_word)
            elif qtype == "date":
                score += w.cue * self._has_date
            elif qtype == "name":
                score += w.cue * (c["new_caps"] > 0)
        if w.fragment:
            score -= w.fragment * self._fragment
        return score.astype(np.float32), fused

    def search(self, question: str, k: int = 3) -> list[Support]:
        """The k best supporting sentences, best first."""
        return self._search(question, k)[0]

    def _search(self, question: str, k: int, visible: np.ndarray | None = None
                ) -> tuple[list[Support], np.ndarray, dict[str, np.ndarray]]:
        """``visible``: one bool per article row (the asking guild's scope); None = all."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if self.index.texts is not self._texts:
            self._build()  # the index was rebuilt in place since
        if self.n == 0 or not question.strip():
            return [], np.zeros(0, np.float32), {}
        c = self.components(question)
        score, fused = self.fuse(c, self.question_type(question))
        if visible is not None:  # another guild's articles are never ranked, nor count for confidence
            seen = np.asarray(visible, dtype=bool)[self._art]
            score = np.where(seen, score, -np.inf).astype(np.float32)
            c["dense"] = np.where(seen, c["dense"], -1.0).astype(np.float32)
            k = min(k, int(seen.sum()))
            if k == 0:
                return [], fused, {}
        top = _ranked(score, k)
        ix = self.index
        out = [
            Support(
                article=int(ix.sent_article[i]),
                position=int(ix.sent_pos[i]),
                sentence=int(i),
                text=ix.texts[i],
                score=float(score[i]),
            )
            for i in top
        ]
        return out, fused, c

    # ------------------------------------------------------------ confidence
    def coverage(self, question: str, sentence: int, terms=None) -> float:
        """Idf-weighted share of the question's terms found around ``sentence`` (neighbours, title).

        Names and numbers from the question weigh double. Terms the corpus
        never saw count as missing: a name or number with the highest idf, any
        other word with the median idf (in a small corpus "take" is unseen too).
        """
        content, keys = terms if terms is not None else self.query_terms(question)
        if not content and not keys:
            return 0.0
        lo, hi = self.window(sentence)
        window = set(self.index.row_terms(lo, hi + 1).tolist())
        window.update(self.index.title_terms(int(self._art[sentence])).tolist())
        idf = self.index.idf
        total = got = 0.0
        for terms, unseen in ((content, self._median_idf), (keys, self._max_idf)):
            for _, t in terms:  # key terms are in both lists: double weight
                wt = float(idf[t]) if t >= 0 else unseen
                total += wt
                if t >= 0 and t in window:
                    got += wt
        return got / total if total else 0.0

    def window(self, sentence: int) -> tuple[int, int]:
        """(first, last) row of ``sentence`` and its same-article neighbours."""
        lo = sentence - 1 if sentence > 0 and self._has_prev[sentence] else sentence
        hi = sentence + 1 if sentence < self.n - 1 and self._has_next[sentence] else sentence
        return lo, hi

    def window_dense(self, dense: np.ndarray, sentence: int) -> float:
        """The question's best dense cosine (``dense``: one per sentence) with ``sentence`` or a same-article
        neighbour, clipped to [0, 1]: how close the answer itself comes to the question in meaning."""
        lo, hi = self.window(sentence)
        return float(np.clip(np.max(dense[lo : hi + 1]), 0.0, 1.0))

    def article_coverage(self, question: str, article: int, terms=None) -> float:
        """Idf-weighted share of the question's content terms found anywhere in the article (its sentences
        and title); a term the corpus never saw counts as missing, with the median idf."""
        content, _ = terms if terms is not None else self.query_terms(question)
        if not content:
            return 0.0
        rows = self.index.rows(article)
        have = set(self.index.row_terms(rows.start, rows.stop).tolist())
        have.update(self.index.title_terms(article).tolist())
        return self._share(content, have)

    def sentence_coverage(self, content: list[tuple[str, int]], sentence: int) -> float:
        """Idf-weighted share of the question's content terms in the one sentence (no neighbours, no title)."""
        if not content:
            return 0.0
        return self._share(content, set(self.index.row_terms(sentence).tolist()))

    def _share(self, content: list[tuple[str, int]], have: set[int]) -> float:
        """Idf-weighted share of ``content`` terms in ``have`` (unseen terms: missing, the median idf)."""
        idf = self.index.idf
        total = got = 0.0
        for _, t in content:
            wt = float(idf[t]) if t >= 0 else self._median_idf
            total += wt
            got += wt if t >= 0 and t in have else 0.0
        return got / total if total else 0.0


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
    """Reranks the retriever's top candidates by whether they answer the question."""

    def __init__(self, retriever: Retriever, weights: ReaderWeights | None = None) -> None:
        self.retriever = retriever
        self.weights = weights or ReaderWeights()

    def features(self, question: str, cands: list[Support], now: float | None = None,
                 reranked: np.ndarray | None = None) -> np.ndarray:
        """One row of :data:`READER_FEATURES` per candidate; ``now``: when it is asked (epoch s; default: the
        clock); ``reranked``: the reranker's score of each candidate (None: no reranker, the column is 0)."""
        now = time.time() if now is None else float(now)
        pub = self.retriever.published
        kind = question_kind(question)
        terms = self.retriever.query_terms(question)
        content = terms[0]
        qwords = set(words(question))
        top = cands[0].score if cands else 0.0
        phrases = [scored_candidates(question, c.text, kind) for c in cands]
        cand_words = [set(words(c.text)) for c in cands]
        X = np.zeros((len(cands), len(READER_FEATURES)), dtype=np.float64)
        for i, c in enumerate(cands):
            X[i, 0] = c.score - top
            X[i, 3] = self.retriever.sentence_coverage(content, c.sentence)
            X[i, 4] = 1.0 / (1.0 + c.position)
            X[i, 6] = self.retriever.coverage(question, c.sentence, terms)
            age = abs(now - pub[c.article]) / 86400.0 if c.article < len(pub) else float("nan")
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
    timeframes = True  # a question's "this week" narrows it to the week's articles (benchmarks switch it off)
    # with the span constraint: the answer is words of sentence 1, so ask for the fewest that answer
    SPAN_SYSTEM = (
        "You answer questions about news articles. Answer with the few words of sentence 1 that answer the "
        "question: a name, a number, a place or a short phrase, not the whole sentence."
    )
    MAX_NEW_TOKENS = 24  # a short answer; keeps abstractive /ask near 2 s on 2 cores

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
    ) -> None:
        """``previous``: the answerer of the index version ``index`` grew from (its features are reused).
        ``reranker``: an object with ``score(question, [(sentence, title, sentence before), ...])`` -> one
        logit each (:class:`models.reranker.Reranker`); None, or one that fails, ranks as before.
        ``span_reader``: an object with ``read(question, sentence, title, sentence before)`` -> a span with
        ``.text`` or None (:class:`models.span_reader.SpanReader`): it picks the short answer in support [1];
        None, or one that fails, leaves the phrase to the rules (:func:`answer_phrase.best_phrase`)."""
        self.index = index
        self.generator = generator
        self.reranker = reranker
        self.span_reader = span_reader
        self._span_failed = False
        self.reranked_weights = self.READER_RERANKED
        self.reranked_threshold = self.RERANKED_THRESHOLD
        self.reranked_timed_threshold = self.RERANKED_TIMED_THRESHOLD
        self._rerank_failed = False
        self.retriever = Retriever(index, previous=previous.retriever if previous is not None else None)
        self.reader = Reader(self.retriever, reader or self.READER)
        self.abstain_threshold = self.DEFAULT_THRESHOLD if abstain_threshold is None else float(abstain_threshold)
        # a question naming its time is read against that span's articles only: fewer, so lower confidences
        self.timed_threshold = self.TIMED_THRESHOLD if timed_threshold is None else float(timed_threshold)

    def confidence(self, question: str, support: list[Support], components: dict[str, np.ndarray],
                   now: float | None = None, answers: float | None = None) -> float:
        """(coverage + window cosine + article coverage) / 3, in [0, 1] (:func:`confidence_from`).

        Coverage: the idf-weighted share of the question's terms found around
        the best sentence (:meth:`Retriever.coverage`). Window cosine: the
        question's highest cosine with that sentence or a same-article neighbour
        (:meth:`Retriever.window_dense`). Article
        coverage: the share of the question's words its article holds
        (:meth:`Retriever.article_coverage`): an answer from an article about
        something else ("Starbucks' holiday drinks" for "Which new treat did
        McDonald's add?") lacks some of them. ``now`` is not used: the answer's age is
        no evidence that it is wrong.
        """
        if not support:
            return 0.0
        cov = self.retriever.coverage(question, support[0].sentence)
        art = self.retriever.article_coverage(question, support[0].article)
        dense = self.retriever.window_dense(components["dense"], support[0].sentence) if components else 0.0
        return confidence_from(cov, dense, art, answers)

    def rerank_scores(self, question: str, cands: list[Support]) -> np.ndarray | None:
        """The reranker's score of each candidate; None without a reranker or when it fails (logged once:
        the answer then comes from the reader's ranking alone, and this answerer does not call it again; the
        next snapshot's answerer tries once more)."""
        if self.reranker is None or self._rerank_failed or not cands:
            return None
        ix = self.index
        items = [
            (c.text, ix.articles[c.article].title or "", ix.texts[c.sentence - 1] if c.position > 0 else "")
            for c in cands
        ]
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

    def candidates(self, question: str, k: int = 3, visible: np.ndarray | None = None, now: float | None = None
                   ) -> tuple[list[Support], np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
        """The retriever's top candidates (at least k), their reader features, the retrieval components and
        the reranker's scores (None without one). ``visible``: one bool per article row (the asking guild's
        scope); None = all. ``now``: when asked."""
        pool = self.RERANK_POOL if self.reranker is not None and not self._rerank_failed else self.CANDIDATES
        cands, _, comps = self.retriever._search(question, max(k, pool), visible)  # noqa: SLF001
        rr = self.rerank_scores(question, cands)
        return cands, self.reader.features(question, cands, now, rr), comps, rr

    def rank(self, question: str, k: int = 3, visible: np.ndarray | None = None, now: float | None = None
             ) -> tuple[list[Support], dict[str, np.ndarray], float | None]:
        """The k best supporting sentences after the reader's reranking (score = the reader's), the retrieval
        components, and the reranker's probability that support [1] answers (None without a reranker).
        Support after the first whose odds fall under :attr:`SUPPORT_MIN_ODDS` of the first's is left out."""
        cands, X, comps, rr = self.candidates(question, k, visible, now)
        if not cands:
            return [], comps, None
        w = self.reader.weights if rr is None else self.reranked_weights
        sc = X @ w.vector()
        order = np.argsort(-sc, kind="stable")[:k]
        floor = float(np.log(self.SUPPORT_MIN_ODDS)) if self.SUPPORT_MIN_ODDS > 0 else -np.inf
        keep = [i for n, i in enumerate(order) if n == 0 or sc[i] - sc[order[0]] >= floor]
        answers = None if rr is None else float(1.0 / (1.0 + np.exp(-rr[order[0]])))
        return [replace(cands[i], score=float(sc[i])) for i in keep], comps, answers

    def lead(self, question: str, support: list[Support]) -> tuple[str, str | None, list[Support]]:
        """(the text a member reads first, the short answer or None, the support): the phrase, then the
        sentence it is from. When a who-question's verb has "he"/"she" for subject in support [1]
        ("..., he said, estimating ..."), the answer is the person the sentence before names; that
        sentence then joins the support as [2], so the phrase is still word for word from a support."""
        top = support[0].text
        first = support[0]
        if first.position > 0 and pronoun_subject(question, top):
            row = first.sentence - 1
            rows = self.index.rows(first.article)
            person = antecedent(question, self.index.texts[row], " ".join(self.index.texts[rows.start : rows.stop]))
            if person is not None:
                before = Support(first.article, first.position - 1, row, self.index.texts[row], first.score)
                rest = [s for s in support[1:] if s.sentence != row]
                return f"{person.text}\n{top}", person.text, [first, before, *rest][: max(len(support), 2)]
        found = best_phrase(question, top, [s.text for s in support[1:]])
        short = found.text if found is not None else None
        read = self.read_span(question, first)
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

    def read_span(self, question: str, first: Support):
        """The span reader's best span in ``first`` (even one under "no answer here": its ``margin`` says),
        None when it has none, False when there is no span reader or it failed (logged once; this answerer
        then keeps to the rules)."""
        if self.span_reader is None or self._span_failed:
            return False
        ix = self.index
        before = ix.texts[first.sentence - 1] if first.position > 0 else ""
        try:
            return self.span_reader.read(question, first.text, ix.articles[first.article].title or "", before,
                                         always=True)
        except Exception as exc:  # noqa: BLE001 - a broken span reader leaves the phrase to the rules
            from models.registry import ModelUnavailable

            self._span_failed = True
            if not isinstance(exc, ModelUnavailable):  # the loader has logged why, once
                log.warning("the /ask span reader failed (%s: %s): phrases by the rules", type(exc).__name__, exc)
            return False

    def in_time(self, question: str, visible: np.ndarray | None = None, now: float | None = None,
                asked_at: float | None = None) -> tuple[np.ndarray | None, float | None]:
        """(``visible`` narrowed to the articles that could answer the question when it is asked, the span
        the question names or None).

        ``asked_at`` (epoch s; a replay, the batch CLI's ``"asked_at"``): the question is read as it would
        have been then - articles published after it are hidden (undated ones always count) and its "this
        week" counts back from it. Without it the question is asked now (``now``, default the clock): every
        article in the corpus has been published by then, and an article dated up to
        :data:`timeframe.FUTURE_SLACK` ahead of ``now`` still counts for "this week" (time zones, date-only
        stamps)."""
        span = timeframe.window(question) if self.timeframes else None
        if span is None and asked_at is None:
            return visible, None
        if asked_at is not None:
            now = float(asked_at)
        now = time.time() if now is None else float(now)
        if self.index.texts is not self.retriever._texts:
            self.retriever._build()  # the index was rebuilt in place since: its articles' dates too
        pub = self.retriever._published
        with np.errstate(invalid="ignore"):
            ok = ~(pub > now) if asked_at is not None else np.ones(pub.shape, dtype=bool)  # NaN: undated, kept
            if span is not None:
                slack = 0.0 if asked_at is not None else timeframe.FUTURE_SLACK
                ok &= np.isnan(pub) | ((pub >= now - span) & (pub <= now + slack))
        return (ok if visible is None else ok & np.asarray(visible, dtype=bool)), span

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
        visible, span = self.in_time(q, visible, now, asked_at)
        if asked_at is not None:
            now = float(asked_at)
        support, components, answers = self.rank(q, k, visible, now)
        conf = self.confidence(q, support, components, now, answers if self.RERANKER_IN_CONFIDENCE else None)
        if answers is None:
            threshold = self.abstain_threshold if span is None else self.timed_threshold
        else:
            threshold = self.reranked_threshold if span is None else self.reranked_timed_threshold
        if not support or conf < threshold:
            message = ABSTAIN_MESSAGE if span is None else TIME_ABSTAIN_MESSAGE.format(span=timeframe.describe(span))
            return Answer(q, message, True, (), conf)
        text, short, support = self.lead(q, support)
        extractive = Answer(q, text, False, tuple(support), conf, short=short)
        if mode == "extractive":
            return extractive
        if self.generator is None:
            return replace(extractive, note=NO_GENERATOR_NOTE)
        return self._abstractive(q, support, conf, extractive)

    # ----------------------------------------------------------- abstractive
    def prompt(self, question: str, support: list[Support]) -> str:
        lines = [f"{n}. {s.text}" for n, s in enumerate(support, 1)]
        return "Sentences:\n" + "\n".join(lines) + f"\n\nQuestion: {question}\nShort answer:"

    def _abstractive(self, q: str, support: list[Support], conf: float, fallback: Answer) -> Answer:
        """The model's short answer, kept only when ONE supporting sentence says it with the same bindings
        (:func:`bot.grounding.verifier.backing_sentence`); otherwise the extractive answer with a note."""
        gen = self.generator
        try:
            if callable(getattr(gen, "generate_copy", None)):
                # the copy constraint in its span form (models/decoding.py), in whatever form the backend takes
                # it: the answer is one unbroken run of words of support [1] that splits no name or number and
                # cuts off no negation, modal or hedge; '' when the model cannot give one
                text = gen.generate_copy(self.prompt(q, support), support[0].text, span=True, system=self.SPAN_SYSTEM,
                                         max_new_tokens=self.MAX_NEW_TOKENS)
            else:  # a bare generator (no constraint): its free answer goes through the same checks
                text = gen.generate(self.prompt(q, support), system=self.SYSTEM, max_new_tokens=self.MAX_NEW_TOKENS)
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


def whole_phrase(span: str, rules: str | None, sentence: str) -> str | None:
    """``span`` as the short answer only when it passes the abstractive answers' span constraint (one
    unbroken run of the sentence's words that splits no name or number and cuts off no negation, modal,
    hedge or unit: "2,000" of "more than 2,000 ethnic Kazakhs" does not); else the rules' phrase when it
    holds the span and passes; else None (the sentence leads, and says it all)."""
    from models.decoding import satisfies

    if satisfies(span, sentence, span=True):
        return span
    if rules and span in rules and satisfies(rules, sentence, span=True):
        return rules
    return None


def invented_terms(generated: str, sources: list[str]) -> list[str]:
    """Numbers, names and dates in ``generated`` that no source text contains (the summaries' guard)."""
    return unsupported(generated, sources)
