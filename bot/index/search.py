"""One search boundary: the question in, candidate sentences out, with every feature the ranking needs.

:class:`Retriever` scores every sentence of a built :class:`SentenceIndex` at once with numpy/scipy array
operations (the fusion of BM25, dense cosine, neighbours, article BM25, title similarity and answer-type cues
is described in :mod:`bot.engines.answerer`). Its one call, :meth:`Retriever.search_candidates`, takes the
question, its cue kind ("number", "date", "name", "other": the engine reads the question), the asking
server's scope (one bool per article row), the time window (published-before / published-between bounds in
epoch seconds, computed by the engine) and k, and returns :class:`Candidate` sentences that carry the
retriever's score and the reader's, reranker's and span reader's inputs. Anything else that can serve
:class:`SentenceSearch` (a PostgreSQL/pgvector home, later) can stand in for it; the reader, reranker and span
reader sit on top of either.

``bot/index`` reads neither questions nor dates itself: the cue kind is passed in, and the retriever is
given how to read an article's date (``published``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .postings import PostingsView
from .sentence_index import SentenceIndex, aliases

@dataclass(frozen=True)
class Support:
    article: int  # article row in index.articles
    position: int  # sentence index within the article
    sentence: int  # global sentence row
    text: str
    score: float


@dataclass(frozen=True)
class Candidate(Support):
    """A candidate sentence with every feature the ranking reads (:meth:`Retriever.search_candidates`).

    coverage          idf-weighted share of the question's content terms in the sentence itself
    context           idf-weighted share of the question's terms around it: it, its same-article
                      neighbours and its article's title (names and numbers double)
    article_coverage  idf-weighted share of the question's content terms anywhere in its article
    dense             the question's best dense cosine with it or a same-article neighbour, in [0, 1]
    published         its article's publication time (epoch s; NaN: undated)
    title             its article's title ("" when none)
    before            the sentence before it in its article ("" for an article's first sentence)
    """

    coverage: float
    context: float
    article_coverage: float
    dense: float
    published: float
    title: str
    before: str


class SentenceSearch(Protocol):
    """What the answerer searches: one call from a question to its candidate sentences, and the text of an
    article (for the who-question antecedent rule)."""

    def search_candidates(self, question: str, kind: str, k: int, visible: np.ndarray | None = None,
                          published_before: float | None = None,
                          published_between: tuple[float, float] | None = None) -> list[Candidate]: ...

    def article_text(self, article: int) -> str: ...


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
# "Who said ...?", "Which agency reported ...?": the reporting verb is what the question asks about (who
# did the reporting), not a filler word as in "It was reported that ...": it then stays a content term.
_ASKS_REPORTER = re.compile(
    r"(?i)^\W*(?:who|which(?:\s+(?!(?:is|are|was|were|be|been|being)\b)[\w'’-]+){1,3}?|"
    r"what\s+(?:company|country|agency|organi[sz]ation|group|newspaper|outlet|official|minister|leader|firm|"
    r"state|city)s?)\s+(?:(?:recently|reportedly|also|first|just|has|have|had)\s+)?(said|says|reported)\b"
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


def query_words(question: str) -> list[str]:
    """A question's lower-cased words without question words ("how long", "which", "did"); a reporting
    verb whose subject is the question word ("Who reported ...?") is kept."""
    m = _ASKS_REPORTER.search(question)
    keep = m.group(1).lower() if m else None
    return [w for w in _WORD.findall(_HOW.sub(" ", aliases(question)).lower()) if w == keep or w not in QUESTION_WORDS]


def window_mask(pub: np.ndarray, visible: np.ndarray | None, published_before: float | None,
                published_between: tuple[float, float] | None) -> np.ndarray:
    """One bool per article (``pub``: their publication times, NaN undated): in ``visible`` (None: all) and
    published in the window; undated articles are always in it."""
    with np.errstate(invalid="ignore"):
        ok = ~(pub > published_before) if published_before is not None else np.ones(pub.shape, dtype=bool)
        if published_between is not None:
            lo, hi = published_between
            ok &= np.isnan(pub) | ((pub >= lo) & (pub <= hi))
    return ok if visible is None else ok & np.asarray(visible, dtype=bool)


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
    """Hybrid sentence retrieval over a built :class:`SentenceIndex`; all features precomputed here. Serves
    :class:`SentenceSearch`."""

    def __init__(self, index: SentenceIndex, weights: Weights | None = None, previous: Retriever | None = None,
                 *, published: Callable[[str | None], float]) -> None:
        """Precompute every per-sentence feature; call after ``index.build``. ``previous``: the retriever of
        the version ``index`` grew from - only the new sentences' features are computed. ``published``: an
        article's date string as epoch seconds (NaN: none or unreadable; the engine's
        :func:`bot.engines.timeframe.published`)."""
        self.index = index
        self.weights = weights or Weights()
        self._published_time = published
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
            caps = [m.group(0) for m in _CAP.finditer(aliases(t)) if m.start() > 0]  # sentence-initial capitals say nothing
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
        # the articles of this week (bot.engines.timeframe, which computes the window passed in).
        a0 = base.n_articles if base is not None else 0
        pub = np.array([self._published_time(a.date) for a in ix.articles[a0:]], dtype=np.float64)
        self._published = np.concatenate([base._published, pub]) if base is not None else pub
        self._fragment, self._has_date, self._has_num_word = fragment, has_date, has_num_word
        self._cap_count, self._num_count = cap_count, num_count
        self._max_idf = float(np.log(n + 1) + 1.0) if n else 1.0
        self._median_idf = ix.median_idf()

    def sync(self) -> None:
        """Rebuild the features now if the index was rebuilt in place since (a search does it itself)."""
        if self.index.texts is not self._texts:
            self._build()

    @property
    def published(self) -> np.ndarray:
        """Each article row's publication time (epoch s; NaN: undated), of the build the features are from."""
        return self._published

    # ------------------------------------------------------------- querying
    def query_words(self, question: str) -> list[str]:
        """The question's lower-cased words without question words ("how long", "which", "did")."""
        return query_words(question)

    def query_terms(self, question: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(content terms, key terms) as (stemmed term, vocabulary id or -1); key terms are names and numbers."""
        vocab = self.index.vocab
        terms = self.index.lexicon.terms
        content = list(dict.fromkeys(terms([" ".join(self.query_words(question))])[0]))
        keys_raw = [
            m.group(0) for m in _CAP.finditer(aliases(question))
            if m.start() > 0 and m.group(0).lower() not in QUESTION_WORDS
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
        """The retrieval cue's kind (number, date, name or other) when none is passed in: ``bot/index`` does
        not read questions, so only a retriever the engine extends (:class:`bot.engines.answerer.Retriever`)
        knows it."""
        raise TypeError("pass the question's cue kind: bot.index does not read questions")

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

    def search(self, question: str, k: int = 3, kind: str | None = None) -> list[Support]:
        """The k best supporting sentences, best first. ``kind``: the question's cue kind (default:
        :meth:`question_type`)."""
        return self._search(question, k, kind=kind)[0]

    def search_candidates(self, question: str, kind: str, k: int, visible: np.ndarray | None = None,
                          published_before: float | None = None,
                          published_between: tuple[float, float] | None = None) -> list[Candidate]:
        """The one search call: the k best candidate sentences for ``question``, best first, each with every
        feature the ranking needs (:class:`Candidate`).

        ``kind``: the question's cue kind ("number", "date", "name" or "other"; the engine reads it).
        ``visible``: one bool per article row (the asking server's scope); None = all. ``published_before``
        (epoch s): articles published after it are not read; ``published_between`` ((first, last), epoch s):
        only articles published in it are read. Undated articles are always read.
        """
        visible = self.in_window(visible, published_before, published_between)
        found, _, c = self._search(question, k, visible, kind)
        if not found:
            return []
        content, keys = terms = self.query_terms(question)
        pub = self._published
        articles = self.index.articles
        texts = self.index.texts
        by_article: dict[int, float] = {}
        out = []
        for s in found:
            if s.article not in by_article:
                by_article[s.article] = self.article_coverage(question, s.article, terms)
            out.append(Candidate(
                article=s.article,
                position=s.position,
                sentence=s.sentence,
                text=s.text,
                score=s.score,
                coverage=self.sentence_coverage(content, s.sentence),
                context=self.coverage(question, s.sentence, terms),
                article_coverage=by_article[s.article],
                dense=self.window_dense(c["dense"], s.sentence),
                published=float(pub[s.article]) if s.article < len(pub) else float("nan"),
                title=articles[s.article].title or "",
                before=texts[s.sentence - 1] if s.position > 0 else "",
            ))
        return out

    def in_window(self, visible: np.ndarray | None = None, published_before: float | None = None,
                  published_between: tuple[float, float] | None = None) -> np.ndarray | None:
        """``visible`` (one bool per article row; None = all) narrowed to the articles published in the time
        window (see :meth:`search_candidates`); ``visible`` itself when there is no window."""
        if published_before is None and published_between is None:
            return visible
        if self.index.texts is not self._texts:
            self._build()  # the index was rebuilt in place since: its articles' dates too
        return window_mask(self._published, visible, published_before, published_between)

    def articles_holding(self, word: str) -> np.ndarray:
        """One bool per article row of the build the features are from: its sentences or title hold ``word``
        (:meth:`SentenceIndex.articles_holding`)."""
        self.sync()
        return self.index.articles_holding(word)[: self.n_articles]

    def article_text(self, article: int) -> str:
        """The document lookup: an article's sentences joined by spaces."""
        rows = self.index.rows(article)
        return " ".join(self.index.texts[rows.start : rows.stop])

    def _search(self, question: str, k: int, visible: np.ndarray | None = None, kind: str | None = None
                ) -> tuple[list[Support], np.ndarray, dict[str, np.ndarray]]:
        """``visible``: one bool per article row (the asking guild's scope); None = all. ``kind``: the
        question's cue kind (default: :meth:`question_type`)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if self.index.texts is not self._texts:
            self._build()  # the index was rebuilt in place since
        if self.n == 0 or not question.strip():
            return [], np.zeros(0, np.float32), {}
        c = self.components(question)
        score, fused = self.fuse(c, kind if kind is not None else self.question_type(question))
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
