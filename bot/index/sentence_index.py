"""Sentence index over the whole corpus.

For every article sentence (and every title) it holds:

* a dense embedding (the configured embedder, cached on disk by text);
* a lexical vector: stemmed, stop-worded terms (bm25s' tokenizer with
  PyStemmer), kept both as a BM25 index for search and as a TF-IDF matrix
  for lexical similarity between sentences.

Everything is flat numpy/scipy arrays built once at load time: a query is a
few matrix operations, never a Python loop over sentences.

Sentence vectors are kept as float16 (half the memory: 300 MB, not 600 MB, for
400k sentences; the embedder itself computes in bfloat16, so nothing is lost
that it had). Read them through :meth:`SentenceIndex.vectors` (float32 rows);
:meth:`SentenceIndex.dense_scores` scores the whole corpus with one torch
half-precision matrix-vector product.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from ..corpus.article import Article
from .cache import EmbeddingCache, text_key

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"(?u)\d+(?:[.,]\d+)*|\w+")


class EmbedderLike(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


def _split(text: str) -> list[str]:
    return [t.replace(",", "") for t in _TOKEN.findall(text)]


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
        memo, stop, stem = self._memo, self._stop, self._stem
        out: list[list[str]] = []
        for t in texts:
            doc: list[str] = []
            for w in _split(t.lower()):
                s = memo.get(w)
                if s is None:
                    s = "" if w in stop else sys.intern(stem(w))
                    if len(memo) < self.MEMO_LIMIT:
                        memo[w] = s
                if s:
                    doc.append(s)
            out.append(doc)
        return out


EMB_DTYPE = np.float16


@dataclass
class SearchHit:
    sentence: int  # global sentence row
    article: int  # article row
    position: int  # index of the sentence within its article
    score: float


_NUMPY_ROWS = 20_000  # up to this many sentences, dense_scores needs no torch


class SentenceIndex:
    def __init__(self, embedder: EmbedderLike, cache: EmbeddingCache | None = None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.lexicon = Lexicon()
        self.articles: list[Article] = []
        self.texts: list[str] = []
        self.sent_article = np.zeros(0, dtype=np.int32)
        self.sent_pos = np.zeros(0, dtype=np.int32)
        self.offsets = np.zeros(1, dtype=np.int64)
        self.dim = int(embedder.dim)
        self.emb = np.zeros((0, embedder.dim), dtype=EMB_DTYPE)
        self._emb_buf: np.ndarray | None = None  # self.emb is its first rows (see _sentence_vectors)
        self.title_emb = np.zeros((0, embedder.dim), dtype=np.float32)
        self.lex = sp.csr_matrix((0, 0), dtype=np.float32)
        self.title_lex = sp.csr_matrix((0, 0), dtype=np.float32)
        self.article_terms = sp.csc_matrix((0, 0), dtype=bool)
        self.vocab: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)
        self.bm25 = None
        self.last_build: dict[str, float] = {}

    # ----------------------------------------------------------------- build
    def embed(self, texts: list[str], progress: bool = False, dtype=np.float32) -> tuple[np.ndarray, int]:
        """Embeddings for texts, from the cache where possible. Returns (matrix, newly embedded)."""
        out = np.zeros((len(texts), self.embedder.dim), dtype=dtype)
        rows_of: dict[bytes, list[int]] = {}
        for i, t in enumerate(texts):
            rows_of.setdefault(text_key(t), []).append(i)
        found = self.cache.fill(rows_of, out) if self.cache is not None else set()
        missing = [k for k in rows_of if k not in found]
        if missing:
            vecs = self.embedder.encode(
                [texts[rows_of[k][0]] for k in missing], progress=progress and len(missing) > 2000
            )
            if self.cache is not None:
                self.cache.put_many(list(zip(missing, vecs)))
            for k, v in zip(missing, vecs):
                out[rows_of[k]] = v
        return out, len(missing)

    def _sentence_vectors(
        self, texts: list[str], articles: list[Article], progress: bool, previous: SentenceIndex | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(vectors view, the buffer it views, newly embedded) for the build.

        The corpus only ever grows, so a reload usually sees the previous
        articles followed by new ones. Then the new index shares the previous
        one's buffer: it writes only the new rows, past the end of what the old
        index (still answering) can see, and a reload does not hold two copies
        of the vectors. The buffer keeps ~10 % spare rows for that; when they run
        out it is copied into a bigger one.
        """
        n = len(texts)
        continues = (
            previous is not None
            and previous.embedder is self.embedder
            and previous._emb_buf is not None
            and 0 < len(previous.articles) <= len(articles)
            and all(a is b for a, b in zip(previous.articles, articles))
        )
        base = len(previous.texts) if continues else 0
        if continues and previous._emb_buf.shape[0] >= n:
            buf = previous._emb_buf
        else:
            buf = np.empty((max(n + 1024, int(n * 1.1)), self.embedder.dim), dtype=EMB_DTYPE)
            if base:
                buf[:base] = previous.emb[:base]
        fresh, new = self.embed(texts[base:], progress=progress, dtype=EMB_DTYPE)
        buf[base:n] = fresh
        return buf[:n], buf, new

    def build(self, articles: list[Article], progress: bool = True, previous: SentenceIndex | None = None) -> None:
        """Index ``articles``. ``previous``: the index being replaced (its vectors are reused when
        ``articles`` starts with its articles)."""
        t0 = time.perf_counter()
        texts: list[str] = []
        sent_article: list[int] = []
        sent_pos: list[int] = []
        offsets = [0]
        for a_i, art in enumerate(articles):
            texts.extend(art.sentences)
            sent_article.extend([a_i] * len(art.sentences))
            sent_pos.extend(range(len(art.sentences)))
            offsets.append(len(texts))
        titles = [a.title for a in articles]
        emb, emb_buf, new_sent = self._sentence_vectors(texts, list(articles), progress, previous)
        title_emb, new_title = self.embed(titles, progress=False)
        t1 = time.perf_counter()

        terms = self.lexicon.terms(texts)
        title_terms = self.lexicon.terms(titles)
        vocab: dict[str, int] = {}
        for doc in terms:
            for w in doc:
                vocab.setdefault(w, len(vocab))
        lex_counts = self._counts(terms, vocab)
        n = max(len(texts), 1)
        df = np.bincount(lex_counts.indices, minlength=len(vocab)).astype(np.float32)
        idf = (np.log((n + 1) / (df + 1)) + 1.0).astype(np.float32)

        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
        bm25 = bm25s.BM25()
        if texts:
            bm25.index(terms, show_progress=False)

        # Swap in all at once, so readers never see a half-built index.
        self.articles = list(articles)
        self.texts = texts
        self.sent_article = np.asarray(sent_article, dtype=np.int32)
        self.sent_pos = np.asarray(sent_pos, dtype=np.int32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.emb = emb
        self._emb_buf = emb_buf
        self.title_emb = title_emb
        self.vocab = vocab
        self.idf = idf
        self.lex = self._tfidf(lex_counts)
        self.title_lex = self._tfidf(self._counts(title_terms, vocab))
        self.bm25 = bm25 if texts else None
        # Which terms each article contains (title or body): for "all words present" matching.
        owner = sp.csr_matrix(
            (np.ones(len(texts), dtype=np.float32), (self.sent_article, np.arange(len(texts)))),
            shape=(len(articles), len(texts)),
        )
        self.article_terms = ((owner @ self.lex) + self.title_lex).astype(bool).tocsc()
        self.last_build = {
            "sentences": float(len(texts)),
            "embedded": float(new_sent + new_title),
            "embed_s": t1 - t0,
            "total_s": time.perf_counter() - t0,
        }
        log.info(
            "indexed %d articles, %d sentences (%d newly embedded) in %.1fs",
            len(articles),
            len(texts),
            new_sent + new_title,
            self.last_build["total_s"],
        )

    @staticmethod
    def _counts(docs: list[list[str]], vocab: dict[str, int]) -> sp.csr_matrix:
        indptr = [0]
        indices: list[int] = []
        for doc in docs:
            ids = [vocab[w] for w in doc if w in vocab]
            indices.extend(ids)
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float32)
        m = sp.csr_matrix((data, np.asarray(indices, dtype=np.int32), np.asarray(indptr)), shape=(len(docs), len(vocab)))
        m.sum_duplicates()
        return m

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        m = counts.copy()
        m.data = (1.0 + np.log(m.data)).astype(np.float32)
        m = m.multiply(self.idf[None, :]).tocsr() if self.idf.size else m
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.diags(1.0 / norms).dot(m).astype(np.float32).tocsr()

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, article_row: int) -> slice:
        return slice(int(self.offsets[article_row]), int(self.offsets[article_row + 1]))

    def query_terms(self, text: str) -> list[str]:
        return self.lexicon.terms([text])[0]

    def term_coverage(self, text: str) -> np.ndarray:
        """Per article: the share of the query's distinct terms it contains (title or body)."""
        terms = set(self.query_terms(text))
        if not terms or not len(self.articles):
            return np.zeros(len(self.articles), dtype=np.float32)
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        if not ids:
            return np.zeros(len(self.articles), dtype=np.float32)
        hits = np.asarray(self.article_terms[:, ids].sum(axis=1)).ravel()
        return (hits / len(terms)).astype(np.float32)

    def query_lex(self, text: str) -> sp.csr_matrix:
        return self._tfidf(self._counts([self.query_terms(text)], self.vocab))

    def encode_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([text])[0]

    def bm25_scores(self, text: str) -> np.ndarray:
        terms = [t for t in self.query_terms(text) if t in self.vocab]
        if self.bm25 is None or not terms:
            return np.zeros(len(self.texts), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(terms), dtype=np.float32)

    def vectors(self, rows) -> np.ndarray:
        """Sentence vectors for ``rows`` (a slice, indices or a mask) as float32."""
        return np.asarray(self.emb[rows], dtype=np.float32)

    def dense_scores(self, qvec: np.ndarray) -> np.ndarray:
        """Cosine of ``qvec`` with every sentence (float32 array)."""
        if not len(self.emb):
            return np.zeros(0, dtype=np.float32)
        if "torch" not in sys.modules and len(self.emb) <= _NUMPY_ROWS:
            # A small corpus is scored by numpy (~1 ms): the ONNX embedder path never imports
            # torch, and importing it for one matvec costs seconds of a first answer.
            return np.asarray(self.emb, dtype=np.float32) @ np.asarray(qvec, dtype=np.float32)
        import torch

        with torch.inference_mode():
            m = torch.from_numpy(self.emb)
            q = torch.from_numpy(np.ascontiguousarray(qvec, dtype=self.emb.dtype))
            return (m @ q).float().numpy()
