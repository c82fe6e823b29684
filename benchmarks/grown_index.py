"""A grown index answers as a rebuilt one: the /ask benchmark's questions asked of both.

The RealTime QA 2022 corpus (every question's documents) is indexed twice:

* rebuilt - one build from scratch over all the articles;
* grown   - the articles arriving in ``--steps`` batches in date order, each
  batch added to the previous version (``SentenceIndex.build(previous=...)``,
  the way feeds and a watched CORPUS_PATH add them), the answerer's features
  grown with it, postings merged in the background as the bot does.

Every question then goes through the /ask engine (retriever + reader + the
abstention rule) on both, and the script prints the share with the same
top-3 supporting sentences, the same first line and the same abstain/answer
decision, the largest BM25 difference over all sentences, and the grow time.

    python benchmarks/grown_index.py [--realtimeqa FILE] [--steps 40] [--cache-dir DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realtimeqa", type=Path, default=DATA / "realtimeqa" / "realtimeqa_2022.jsonl")
    ap.add_argument("--steps", type=int, default=40, help="batches the grown index receives the articles in")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default: a temp folder)")
    ap.add_argument("--limit", type=int, default=None, help="questions (default: all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.realtimeqa.is_file():
        print(f"no data: {args.realtimeqa} not found")
        return 2
    from ask_quality import load_realtimeqa

    from bot.engines.answerer import Answerer
    from bot.index.cache import EmbeddingCache
    from bot.index.sentence_index import SentenceIndex
    from models.embedder import Embedder

    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-grown-"))
    embedder = Embedder("minilm", cache_dir=cache_dir)
    print(f"embedder: {embedder.path}")
    questions, articles = load_realtimeqa(args.realtimeqa, args.limit)
    articles.sort(key=lambda a: (a.date or "", a.id))  # arrivals in date order
    cache = EmbeddingCache(cache_dir, embedder.name, embedder.dim)

    t = time.perf_counter()
    rebuilt = SentenceIndex(embedder, cache)
    rebuilt.build(articles, progress=False)
    rebuilt_s = time.perf_counter() - t
    ans_rebuilt = Answerer(rebuilt)

    cuts = np.linspace(0, len(articles), args.steps + 1).astype(int)[1:]
    grown = SentenceIndex(embedder, cache)
    grown.build(articles[: cuts[0]], progress=False)
    answerer = Answerer(grown)
    add_s = []
    for c in cuts[1:]:
        nxt = SentenceIndex(embedder, cache)
        t = time.perf_counter()
        nxt.build(articles[:c], progress=False, previous=grown)
        answerer = Answerer(nxt, previous=answerer)
        add_s.append(time.perf_counter() - t)
        assert nxt.last_build["incremental"] == 1.0, "the index was rebuilt, not grown"
        grown = nxt
    grown.wait_merged()
    print(f"{len(articles)} articles, {len(rebuilt)} sentences; rebuilt in {rebuilt_s:.1f} s; grown in "
          f"{len(cuts)} batches of ~{len(articles) // len(cuts)} (median add {np.median(add_s):.2f} s, embeddings cached)")

    same_top = same_first = same_decision = 0
    max_bm = 0.0
    for q in questions:
        a = ans_rebuilt.answer(q.text, now=q.asked)
        b = answerer.answer(q.text, now=q.asked)  # "this week": from the quiz date
        same_top += [s.text for s in a.support] == [s.text for s in b.support]
        same_first += a.answer == b.answer
        same_decision += a.abstained == b.abstained
        bm_a, bm_b = rebuilt.bm25_scores(q.text), grown.bm25_scores(q.text)
        max_bm = max(max_bm, float(np.max(np.abs(bm_a - bm_b))) if bm_a.size else 0.0)
    n = len(questions)
    print(f"questions: {n}")
    print(f"same top-3 supporting sentences: {same_top / n:.1%}")
    print(f"same first line:                 {same_first / n:.1%}")
    print(f"same abstain/answer decision:    {same_decision / n:.1%}")
    print(f"largest BM25 difference:         {max_bm:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
