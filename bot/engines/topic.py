"""Finding articles (by id, title words or topic) and summarising a topic across articles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..index.sentence_index import SentenceIndex
from .extractive import ExtractiveSummarizer, SentenceInfo, _scale, select_mmr

MIN_DENSE_TITLE = 0.45  # a title this close in meaning matches even with no shared word


@dataclass(frozen=True)
class ArticleMatch:
    article: int  # row in index.articles
    score: float


def match_articles(
    index: SentenceIndex, query: str, limit: int = 10, min_coverage: float = 1.0, visible: np.ndarray | None = None
) -> list[ArticleMatch]:
    """Articles matching ``query`` (an id, title words or topic words), best first.

    An article matches when it holds at least ``min_coverage`` of the query's
    words (title or body, after stemming), or its title is close in meaning.
    ``visible``: one bool per article row (the asking guild's scope); None = all."""
    n = len(index.articles)
    if n == 0 or not query.strip():
        return []
    q = query.strip()
    for i, a in enumerate(index.articles):
        if a.id == q and (visible is None or visible[i]):
            return [ArticleMatch(i, float("inf"))]
    coverage = index.term_coverage(q)
    title_lex = np.asarray((index.title_lex @ index.query_lex(q).T).todense()).ravel()
    qvec = index.encode_query(q)
    title_dense = index.title_scores(qvec)
    bm = index.bm25_scores(q)
    body = np.maximum.reduceat(bm, index.offsets[:-1]) if len(bm) else np.zeros(n)
    body_dense = np.maximum.reduceat(index.dense_scores(qvec), index.offsets[:-1])
    body_norm = body / body.max() if body.max() > 0 else body
    score = 2.0 * title_lex + title_dense + 0.5 * body_norm + 0.5 * body_dense + coverage
    ok = ((coverage >= min_coverage - 1e-6) & (coverage > 0)) | (title_dense >= MIN_DENSE_TITLE)
    if visible is not None:
        ok &= visible
    order = [int(i) for i in np.argsort(-score) if ok[i]]
    return [ArticleMatch(i, float(score[i])) for i in order[:limit]]


def topic_summary(
    index: SentenceIndex, summarizer: ExtractiveSummarizer, topic: str, n: int = 3, max_articles: int = 5,
    visible: np.ndarray | None = None,
) -> tuple[list[ArticleMatch], list[SentenceInfo]]:
    """Non-redundant sentences across the articles that match ``topic`` (and ``visible``)."""
    matches = match_articles(index, topic, limit=max_articles, min_coverage=0.5, visible=visible)
    if not matches:
        return [], []
    best = matches[0].score
    matches = [m for m in matches if m.score >= 0.5 * best] or matches[:1]
    rows = np.concatenate([np.arange(index.offsets[m.article], index.offsets[m.article + 1]) for m in matches])
    qvec = index.encode_query(topic)
    E = index.vectors(rows)
    rel = _scale(E @ qvec) + _scale(index.bm25_scores(topic)[rows])
    central = np.concatenate([_scale(summarizer.scores(m.article, n)[0]) for m in matches])
    score = rel + 0.5 * central
    chosen = select_mmr(score, E @ E.T, n, summarizer.weights.redundancy)
    rank = {m.article: r for r, m in enumerate(matches)}
    picked = [
        SentenceInfo(int(index.sent_article[rows[c]]), int(index.sent_pos[rows[c]]), index.texts[rows[c]], float(score[c]))
        for c in chosen
    ]
    picked.sort(key=lambda s: (rank[s.article], s.index))
    return matches, picked
