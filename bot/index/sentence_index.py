"""Sentence index over the whole corpus.

For every article sentence (and every title) it holds:

* a dense embedding (the configured embedder, cached on disk by text);
* its stemmed, stop-worded terms (bm25s' stop words, PyStemmer) as raw term
  counts, from which it scores BM25 and TF-IDF similarity.

Built to grow: an index *version* is immutable for the requests reading it,
and :meth:`SentenceIndex.build` given the previous version and a corpus that
continues it only adds what is new - the new sentences' split, embeddings and
postings (:mod:`bot.index.postings`), and the corpus-wide statistics (document
frequencies, lengths) updated by the new rows alone. Those statistics are
applied when a query is scored, not baked into stored weights, so a grown
index scores exactly as one built from scratch over the same articles: BM25
(bm25s' Lucene variant, k1=1.5, b=0.75; ``tests/test_index.py`` checks it
against bm25s itself) and TF-IDF cosine (idf = ln((n+1)/(df+1)) + 1, rows
L2-normalised) included. Anything else (a retired article, another order)
builds from scratch.

Sentence and title vectors are kept as float16 (half the memory: 300 MB, not 600 MB, for
400k sentences; the embedder itself computes in bfloat16, so nothing is lost
that it had). Read them through :meth:`SentenceIndex.vectors` (float32 rows);
:meth:`SentenceIndex.dense_scores` (:meth:`SentenceIndex.title_scores`) scores the whole corpus
with one torch half-precision matrix-vector product.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from ..corpus.article import Article
from ..memory import scratch_returned
from .cache import EmbeddingCache, text_key
from .postings import PostingsView, Rows

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"(?u)\d+(?:[.,]\d+)*|\w+")


class EmbedderLike(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


def _split(text: str) -> list[str]:
    return [t.replace(",", "") for t in _TOKEN.findall(text)]


# The country a news text writes as "US", "U.S.", "U.S.A.", "USA" or "the United States" (and a member
# types as "the us"): one term, ``usa``, so that a question's "US" meets an article's "U.S." or "United
# States" and no longer the pronoun "us". "United States" keeps its own words too.
_USA = re.compile(r"\bU\.S\.(?:A\.)?(?!\w)|\bUSA?\b|(?i:(?<=\bthe )us\b)|(?i:\bunited states\b)")


# A phrasal verb and the noun news makes of it are one term too: "Tokyo may be locked down" meets "a lockdown
# of Tokyo", "shop shut-downs" meets "the shutdown". The verb's forms (and the hyphenated noun) are followed by
# the noun. Chosen from the words, not fitted: news nouns whose verb is written apart, leaving out those whose
# verb reads literally as often ("turn out", "come back", "hand over", "break down" in tears); "walked out of
# the room" is no walkout.
_COMPOUNDS: dict[tuple[str, str], str] = {}
for _noun, _verbs, _particle in (
    ("lockdown", "lock locks locked locking", "down"),
    ("shutdown", "shut shuts shutting", "down"),
    ("crackdown", "crack cracks cracked cracking", "down"),
    ("clampdown", "clamp clamps clamped clamping", "down"),
    ("meltdown", "melt melts melted melting", "down"),
    ("slowdown", "slow slows slowed slowing", "down"),
    ("layoff", "lay lays laid laying", "off"),
    ("selloff", "sell sells sold selling", "off"),
    ("standoff", "stand stands stood standing", "off"),
    ("kickoff", "kick kicks kicked kicking", "off"),
    ("bailout", "bail bails bailed bailing", "out"),
    ("lockout", "lock locks locked locking", "out"),
    ("walkout", "walk walks walked walking", "out"),
    ("buyout", "buy buys bought buying", "out"),
    ("payout", "pay pays paid paying", "out"),
    ("rollout", "roll rolls rolled rolling", "out"),
    ("blackout", "black blacks blacked blacking", "out"),
    ("outbreak", "break breaks broke broken breaking", "out"),
    ("takeover", "take takes took taken taking", "over"),
    ("setback", "set sets setting", "back"),
    ("cutback", "cut cuts cutting", "back"),
    ("breakup", "break breaks broke broken breaking", "up"),
):
    for _verb in _verbs.split():
        _COMPOUNDS[(_verb, _particle)] = _noun
_PARTICLE = re.compile(r"(?i)(?<=[a-z])(\s+|-)(down|off|out|over|back|up)(s?)\b")
_PARTICLE_CUE = re.compile(r"(?i)[\s-](?:down|off|out|over|back|up)")  # most sentences: no _phrasal at all
_LAST_WORD = re.compile(r"(?i)([a-z]+)$")
_OF = re.compile(r"(?i)\s+of\b")
_NEXT_WORD = re.compile(r"\s+([A-Za-z]+)")


def _phrasal(text: str) -> str:
    """``text`` with each phrasal verb of :data:`_COMPOUNDS` followed by its noun."""
    out, last = [], 0
    for m in _PARTICLE.finditer(text):
        verb = _LAST_WORD.search(text, max(0, m.start() - 8), m.start())
        sep, particle, plural = m.group(1), m.group(2).lower(), m.group(3)
        if verb is None or (verb.start() > 0 and text[verb.start() - 1].isalpha()):
            continue
        noun = _COMPOUNDS.get((verb.group(1).lower(), particle))
        if noun is None or (sep == "-" and noun == "outbreak") or (plural and sep != "-"):
            continue  # "broke-out" is no noun; "lock downs" is no verb
        after = _NEXT_WORD.match(text, m.end())
        if sep != "-" and particle == "out" and _OF.match(text, m.end()):
            continue  # "walked out of the room"
        if after and after.group(1).lower() == noun:
            continue  # already followed by its noun (a question is read twice: query_words, then terms)
        out += [text[last:m.end()], " ", noun]
        last = m.end()
    return "".join(out) + text[last:] if out else text


def aliases(text: str) -> str:
    """``text`` with the United States' short forms written ``USA`` and "United States" followed by it, and a
    phrasal verb followed by its noun ("locked down lockdown"); applied to articles and questions alike before
    their terms are taken (:meth:`Lexicon.terms`, :func:`bot.index.search.query_words`, the names in
    :class:`bot.index.search.Retriever`)."""
    if "U" in text or " us" in text or "united" in text:  # most sentences: no regex at all
        text = _USA.sub(lambda m: m.group(0) + " USA" if m.group(0).lower() == "united states" else "USA", text)
    if _PARTICLE_CUE.search(text):
        text = _phrasal(text)
    return text


class Lexicon:
    """Turns text into stemmed terms: bm25s' English stop words, Snowball stemmer (PyStemmer).

    Each distinct word is stemmed once and its stem shared: a 400k-sentence
    corpus holds ~6M term references, not ~6M string objects.
    """

    MEMO_LIMIT = 500_000  # distinct words remembered (news vocabularies stay far below)

    def __init__(self) -> None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self._stem = Stemmer.Stemmer("english").stemWord
        self._stop = frozenset(STOPWORDS_EN)
        self._memo: dict[str, str] = {}  # word -> its stem ("" for a stop word)

    def terms(self, texts: list[str]) -> list[list[str]]:
        return [self.stems(_split(aliases(t).lower())) for t in texts]

    def stems(self, words: list[str]) -> list[str]:
        """Stems of already-split words (lower-cased first), stop words dropped."""
        memo, stop, stem = self._memo, self._stop, self._stem
        out: list[str] = []
        for w in words:
            w = w.lower()
            s = memo.get(w)
            if s is None:
                s = "" if w in stop else sys.intern(stem(w))
                if len(memo) < self.MEMO_LIMIT:
                    memo[w] = s
            if s:
                out.append(s)
        return out


EMB_DTYPE = np.float16
CLAIM_CHUNK = 2000  # texts embedded per claim of a shared vector store (bot.index.pgvectors)

BM25_K1, BM25_B = 1.5, 0.75  # bm25s' defaults (Lucene variant)


@dataclass
class SearchHit:
    sentence: int  # global sentence row
    article: int  # article row
    position: int  # index of the sentence within its article
    score: float


_NUMPY_ROWS = 20_000  # up to this many sentences, dense_scores needs no torch


class VocabView(Mapping):
    """An index version's vocabulary: the terms some sentence of it holds, with their column ids.

    Term ids come from one dictionary that only grows and is shared by the
    versions of a growing index; a version sees the ids below its width whose
    sentence frequency is above zero (a term only a title or a later article
    holds is unknown to it, as in an index built from scratch)."""

    def __init__(self, ids: dict[str, int], width: int, df: np.ndarray) -> None:
        self._ids, self.width, self._df = ids, width, df

    def get(self, term, default=None):
        i = self._ids.get(term)
        if i is None or i >= self.width or self._df[i] <= 0:
            return default
        return i

    def __getitem__(self, term) -> int:
        i = self.get(term)
        if i is None:
            raise KeyError(term)
        return i

    def __contains__(self, term) -> bool:
        return self.get(term) is not None

    def __iter__(self):
        return (t for t, i in list(self._ids.items()) if i < self.width and self._df[i] > 0)

    def __len__(self) -> int:
        return self.width  # the width of the version's term matrices


class _LexRows:
    """``index.lex[rows]``: TF-IDF rows (L2-normalised) with the version's current idf."""

    def __init__(self, index: SentenceIndex) -> None:
        self._ix = index

    def __getitem__(self, rows) -> sp.csr_matrix:
        ix = self._ix
        return ix._tfidf(ix._sent.csr(ix.width, rows))

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self._ix.texts), self._ix.width)


class _Lineage:
    """Identity shared by the versions of one growing index (a from-scratch build starts a new one)."""

    rows = 0  # sentences of its newest version


class SentenceIndex:
    def __init__(self, embedder: EmbedderLike, cache: EmbeddingCache | None = None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.lexicon = Lexicon()
        self.dim = int(embedder.dim)
        self.last_build: dict[str, float] = {}
        self._merger: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        """An empty index (a build from scratch starts here)."""
        self.articles: list[Article] = []
        self.texts: list[str] = []
        self.sent_article = np.zeros(0, dtype=np.int32)
        self.sent_pos = np.zeros(0, dtype=np.int32)
        self.offsets = np.zeros(1, dtype=np.int64)
        self._emb_rows = Rows((self.dim,), EMB_DTYPE)
        self.emb = self._emb_rows.view(0)
        self._title_rows = Rows((self.dim,), EMB_DTYPE)
        self.title_emb = self._title_rows.view(0)
        self._ids: dict[str, int] = {}
        self.width = 0
        self._df = np.zeros(0, dtype=np.float64)  # sentences holding each term
        self.idf = np.zeros(0, dtype=np.float32)
        self._sent = PostingsView.empty()  # sentence x term counts
        self._title = PostingsView.empty()  # article title x term counts
        self._body = PostingsView.empty()  # article x term: sentences of the article holding the term
        self._sent_len_rows = Rows((), np.float32)
        self._sent_len = self._sent_len_rows.view(0)  # terms per sentence (BM25 length)
        self._tokens = 0.0
        self._art_df = np.zeros(0, dtype=np.float64)
        self._art_len_rows = Rows((), np.float32)
        self._art_len = self._art_len_rows.view(0)
        self._lineage = _Lineage()
        self._title_lex: sp.csr_matrix | None = None


    # ----------------------------------------------------------------- build
    def embed(self, texts: list[str], progress: bool = False, dtype=np.float32) -> tuple[np.ndarray, int]:
        """Embeddings for texts, from the cache where possible. Returns (matrix, newly embedded)."""
        out = np.zeros((len(texts), self.embedder.dim), dtype=dtype)
        rows_of: dict[bytes, list[int]] = {}
        for i, t in enumerate(texts):
            rows_of.setdefault(text_key(t), []).append(i)
        # A cache shared by several processes (bot.index.pgvectors) is claimed while looking up, embedding and
        # writing, a chunk of texts at a time: another process embedding the same texts meanwhile waits, then
        # reads them, and waits no longer than one chunk's embedding for texts of its own.
        claim = getattr(self.cache, "claim", None)
        keys = list(rows_of)
        step = CLAIM_CHUNK if claim is not None else max(1, len(keys))
        embedded = 0
        for i in range(0, len(keys), step):
            part = {k: rows_of[k] for k in keys[i : i + step]}
            with claim() if claim is not None else contextlib.nullcontext():
                found = self.cache.fill(part, out) if self.cache is not None else set()
                missing = [k for k in part if k not in found]
                if missing:
                    with scratch_returned():  # the activations go back to the OS, not into the heap for good
                        vecs = self.embedder.encode(
                            [texts[part[k][0]] for k in missing], progress=progress and len(missing) > 2000
                        )
                    if self.cache is not None:
                        self.cache.put_many(list(zip(missing, vecs)))
                    for k, v in zip(missing, vecs):
                        out[part[k]] = v
                    embedded += len(missing)
        return out, embedded

    @property
    def _emb_buf(self) -> np.ndarray:
        """The buffer ``emb`` views (it has spare rows a next version writes into)."""
        return self._emb_rows._buf

    def continues(self, previous: SentenceIndex | None, articles: list[Article]) -> bool:
        """Whether ``articles`` are ``previous``'s articles followed by new ones (then it only grows)."""
        return (
            previous is not None
            and previous.embedder is self.embedder
            and 0 < len(previous.articles) <= len(articles)
            and all(a is b for a, b in zip(previous.articles, articles))
        )

    def grew_from(self, other: SentenceIndex) -> bool:
        """Whether this version holds ``other``'s rows as its first rows (it grew from it)."""
        return other._lineage is self._lineage and len(other.texts) <= len(self.texts)

    def build(self, articles: list[Article], progress: bool = True, previous: SentenceIndex | None = None) -> None:
        """Index ``articles``. ``previous``: the version being replaced; when ``articles`` continue its
        articles only the new ones are processed (its rows are shared, not copied)."""
        t0 = time.perf_counter()
        articles = list(articles)
        base = previous if self.continues(previous, articles) else None
        if base is None:
            self._reset()
        else:
            self._take(base)
            if base._lineage.rows != len(base.texts):  # a version grew from base already: branch off
                self._lineage = _Lineage()
        new = articles[len(self.articles) :]
        n0, a0 = len(self.texts), len(self.articles)
        texts: list[str] = []
        sent_article: list[int] = []
        sent_pos: list[int] = []
        ends: list[int] = []
        for a_i, art in enumerate(new, a0):
            texts.extend(art.sentences)
            sent_article.extend([a_i] * len(art.sentences))
            sent_pos.extend(range(len(art.sentences)))
            ends.append(n0 + len(texts))
        titles = [a.title for a in new]
        vecs, new_sent = self.embed(texts, progress=progress, dtype=EMB_DTYPE)
        emb_rows, emb = self._emb_rows.append(n0, vecs)
        tvecs, new_title = self.embed(titles, progress=False, dtype=EMB_DTYPE)
        title_rows, title_emb = self._title_rows.append(a0, tvecs)
        t1 = time.perf_counter()

        ids = self._ids
        sent_ids = [[ids.setdefault(w, len(ids)) for w in doc] for doc in self.lexicon.terms(texts)]
        title_ids = [[ids.setdefault(w, len(ids)) for w in doc] for doc in self.lexicon.terms(titles)]
        width = len(ids)
        sent = self._sent.store.append(self._sent, sent_ids)
        title = self._title.store.append(self._title, title_ids)
        # An article's body row: each term once per sentence holding it (its count = that number).
        row_start = np.concatenate([[n0], ends[:-1]]).astype(np.int64) if ends else np.zeros(0, np.int64)
        fresh_ptr = sent.indptr[n0:] - sent.indptr[n0]
        fresh_idx = sent.indices[int(sent.indptr[n0]) :]
        body_ids = [
            fresh_idx[int(fresh_ptr[s - n0]) : int(fresh_ptr[e - n0])].tolist() for s, e in zip(row_start, ends)
        ]
        body = self._body.store.append(self._body, body_ids)
        df = np.zeros(width, dtype=np.float64)
        df[: self._df.size] = self._df
        df += np.bincount(fresh_idx, minlength=width)
        art_df = np.zeros(width, dtype=np.float64)
        art_df[: self._art_df.size] = self._art_df
        art_df += np.bincount(body.indices[int(body.indptr[a0]) :], minlength=width)
        lengths = np.fromiter((len(d) for d in sent_ids), dtype=np.float32, count=len(sent_ids))
        len_rows, sent_len = self._sent_len_rows.append(n0, lengths)
        body_len = np.array([len(b) for b in body_ids], dtype=np.float32)
        art_len_rows, art_len = self._art_len_rows.append(a0, body_len)
        n = n0 + len(texts)
        idf = (np.log((n + 1) / (df + 1)) + 1.0).astype(np.float32)

        # Swap in all at once, so readers never see a half-built index.
        self.articles = articles
        self.texts = self.texts + texts
        self.sent_article = np.concatenate([self.sent_article, np.asarray(sent_article, dtype=np.int32)])
        self.sent_pos = np.concatenate([self.sent_pos, np.asarray(sent_pos, dtype=np.int32)])
        self.offsets = np.concatenate([self.offsets, np.asarray(ends, dtype=np.int64)])
        self._emb_rows, self.emb = emb_rows, emb
        self._title_rows, self.title_emb = title_rows, title_emb
        self.width, self._df, self.idf = width, df, idf
        self._sent, self._title, self._body = sent, title, body
        self._sent_len_rows, self._sent_len = len_rows, sent_len
        self._tokens += float(lengths.sum())
        self._art_df, self._art_len_rows, self._art_len = art_df, art_len_rows, art_len
        self._title_lex = None
        self._lineage.rows = n
        if base is None:
            self.merge(wait=True)  # a build from scratch: column reads get their CSC now
        elif any(p.needs_merge() for p in (self._sent, self._body, self._title)):
            self.merge(wait=False)  # in the background: results do not change, column reads get faster
        self.last_build = {
            "sentences": float(n),
            "added_sentences": float(len(texts)),
            "embedded": float(new_sent + new_title),
            "embed_s": t1 - t0,
            "total_s": time.perf_counter() - t0,
            "incremental": float(base is not None),
        }
        log.info(
            "indexed %d articles, %d sentences (%d new, %d newly embedded%s) in %.2fs",
            len(articles),
            n,
            len(texts),
            new_sent + new_title,
            ", grown from the previous index" if base is not None else "",
            self.last_build["total_s"],
        )

    def _take(self, base: SentenceIndex) -> None:
        """Start from ``base``'s state (shared stores; this version appends past its rows)."""
        for name in (
            "lexicon", "articles", "texts", "sent_article", "sent_pos", "offsets", "_emb_rows", "emb",
            "_title_rows", "title_emb", "_ids", "width", "_df", "idf", "_sent", "_title", "_body",
            "_sent_len_rows", "_sent_len", "_tokens", "_art_df", "_art_len_rows", "_art_len", "_lineage",
        ):
            setattr(self, name, getattr(base, name))

    def merge(self, wait: bool = True, force: bool = False) -> None:
        """Give column reads one CSC over all rows (:class:`Postings`); ``wait=False`` runs it in a thread.
        ``force``: even when the rows are merged already (benchmarks time it)."""
        views = (self._sent, self._body, self._title)

        def run() -> None:
            t = time.perf_counter()
            done = [v.store.merge(v, force) for v in views]
            if any(done):
                log.debug("index postings merged (%d sentences) in %.2fs", len(self.texts), time.perf_counter() - t)

        if wait:
            run()
            return
        self._merger = threading.Thread(target=run, name="precis-index-merge", daemon=True)
        self._merger.start()

    def wait_merged(self, timeout: float | None = None) -> None:
        if self._merger is not None:
            self._merger.join(timeout)

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        m = counts.astype(np.float32, copy=True)
        m.data = (1.0 + np.log(m.data)).astype(np.float32)
        idf = self.idf[: m.shape[1]] * (self._df[: m.shape[1]] > 0)  # a term no sentence holds is unknown
        m = m.multiply(idf[None, :]).tocsr() if idf.size else m
        m.eliminate_zeros()
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.diags(1.0 / norms).dot(m).astype(np.float32).tocsr()

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.texts)

    @property
    def vocab(self) -> VocabView:
        return VocabView(self._ids, self.width, self._df)

    @property
    def lex(self) -> _LexRows:
        """``lex[rows]``: the TF-IDF rows of those sentences."""
        return _LexRows(self)

    @property
    def title_lex(self) -> sp.csr_matrix:
        """TF-IDF of every title (articles x terms), computed on first use for this version."""
        m = self._title_lex
        if m is None:
            m = self._title_lex = self._tfidf(self._title.csr(self.width))
        return m

    def rows(self, article_row: int) -> slice:
        return slice(int(self.offsets[article_row]), int(self.offsets[article_row + 1]))

    def row_terms(self, lo: int, hi: int | None = None) -> np.ndarray:
        """Term ids in sentences lo..hi-1 (hi defaults to lo + 1)."""
        return self._sent.row_ids(lo, hi)

    def title_terms(self, article_row: int) -> np.ndarray:
        return self._title.row_ids(article_row)

    def query_terms(self, text: str) -> list[str]:
        return self.lexicon.terms([text])[0]

    def articles_holding(self, word: str) -> np.ndarray:
        """One bool per article row: the article's sentences or title hold ``word`` (stemmed as the index's
        terms; a stop word or a word the index never saw: none)."""
        out = np.zeros(len(self.articles), dtype=bool)
        stem = self.lexicon.stems([word])
        t = self._ids.get(stem[0]) if stem else None
        if t is None:
            return out
        for view in (self._body, self._title):
            rows = view.columns([t])[0]
            out[rows[rows < out.size]] = True
        return out

    def term_ids(self, terms: list[str]) -> list[int]:
        """Ids for stemmed terms, new ones registered (for features kept beside the index, e.g. the
        answerer's names and numbers); a term no sentence holds stays unknown to :attr:`vocab`."""
        ids = self._ids
        return [ids.setdefault(t, len(ids)) for t in terms]

    def _known(self, terms: list[str]) -> list[int]:
        v = self.vocab
        return [i for i in (v.get(t) for t in terms) if i is not None]

    def term_coverage(self, text: str) -> np.ndarray:
        """Per article: the share of the query's distinct terms it contains (title or body)."""
        terms = set(self.query_terms(text))
        n_art = len(self.articles)
        if not terms or not n_art:
            return np.zeros(n_art, dtype=np.float32)
        ids = self._known(sorted(terms))
        if not ids:
            return np.zeros(n_art, dtype=np.float32)
        r1, j1, _ = self._body.columns(ids)
        r2, j2, _ = self._title.columns(ids)
        pairs = np.unique(np.concatenate([r1, r2]) * len(ids) + np.concatenate([j1, j2]))
        hits = np.bincount(pairs // len(ids), minlength=n_art)[:n_art]
        return (hits / len(terms)).astype(np.float32)

    def query_lex(self, text: str) -> sp.csr_matrix:
        ids = self._known(self.query_terms(text))
        m = sp.csr_matrix(
            (np.ones(len(ids), np.float32), (np.zeros(len(ids), np.int64), np.asarray(ids, np.int64))),
            shape=(1, self.width),
        )
        m.sum_duplicates()
        return self._tfidf(m)

    def encode_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([text])[0]

    def bm25_scores(self, text: str) -> np.ndarray:
        """BM25 of every sentence for ``text`` (bm25s' Lucene variant; a repeated query term counts again)."""
        ids = self._known(self.query_terms(text))
        n = len(self.texts)
        if not ids or not n:
            return np.zeros(n, dtype=np.float32)
        uniq, mult = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        rows, which, tf = self._sent.columns(uniq)
        df = self._df[uniq]
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        avg = self._tokens / n if self._tokens else 1.0
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * self._sent_len[rows] / avg)
        w = (mult * idf)[which] * tf / (tf + norm)
        return np.bincount(rows, weights=w, minlength=n).astype(np.float32)

    def article_bm25(self, ids: list[int], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
        """BM25 of every article over the distinct term ids (tf = the article's sentences holding the term)."""
        n_art = len(self.articles)
        if not ids or not n_art:
            return np.zeros(n_art, dtype=np.float32)
        uniq = np.asarray(list(dict.fromkeys(ids)), dtype=np.int64)
        rows, which, tf = self._body.columns(uniq)
        df = self._art_df[uniq]
        idf = np.log(1.0 + (n_art - df + 0.5) / (df + 0.5))
        avg = float(self._art_len.mean()) or 1.0
        norm = k1 * (1.0 - b + b * self._art_len[rows] / avg)
        w = idf[which] * tf * (k1 + 1.0) / (tf + norm)
        return np.bincount(rows, weights=w, minlength=n_art).astype(np.float32)

    def median_idf(self) -> float:
        known = self.idf[self._df > 0]
        return float(np.median(known)) if known.size else 1.0

    def vectors(self, rows) -> np.ndarray:
        """Sentence vectors for ``rows`` (a slice, indices or a mask) as float32."""
        return np.asarray(self.emb[rows], dtype=np.float32)

    def dense_scores(self, qvec: np.ndarray) -> np.ndarray:
        """Cosine of ``qvec`` with every sentence (float32 array)."""
        return _matvec(self.emb, qvec)

    def title_scores(self, qvec: np.ndarray) -> np.ndarray:
        """Cosine of ``qvec`` with every article title (float32 array)."""
        return _matvec(self.title_emb, qvec)


def _matvec(m: np.ndarray, qvec: np.ndarray) -> np.ndarray:
    """``m @ qvec`` as float32 for a float16 matrix: one torch half-precision product (numpy has no fast
    float16 product); numpy for a small matrix when torch was never imported (the ONNX embedder path:
    importing torch for one product costs seconds of a first answer)."""
    if not len(m):
        return np.zeros(0, dtype=np.float32)
    if "torch" not in sys.modules and len(m) <= _NUMPY_ROWS:
        return np.asarray(m, dtype=np.float32) @ np.asarray(qvec, dtype=np.float32)
    import torch

    with torch.inference_mode():
        t = torch.from_numpy(m)
        q = torch.from_numpy(np.ascontiguousarray(qvec, dtype=m.dtype))
        return (t @ q).float().numpy()
