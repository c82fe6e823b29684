"""Corpus build throughput: sentence embeddings per second, cold, on this machine,
against a plain ``SentenceTransformer.encode`` over the same sentences in the
same run; then a cold build and a warm restart (embedding cache hit) of an
N-article corpus.

    python benchmarks/build_speed.py [--sentences 4000] [--articles 2000] [--data DIR]

Sentences and articles come from the shared development data (CNN/DailyMail,
BBC, RealTime QA documents).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def real_articles(data: Path, limit: int):
    from bot.corpus.article import Article
    from bot.corpus.loader import parse_plain

    out = []
    rtqa = data / "realtimeqa" / "realtimeqa_2022.jsonl"
    seen = set()
    if rtqa.is_file():
        for line in rtqa.read_text().splitlines():
            for d in json.loads(line).get("docs", []):
                if d.get("url") in seen or not d.get("text"):
                    continue
                seen.add(d.get("url"))
                out.append(Article.build(title=d.get("title") or "", text=d["text"], date=d.get("publish_date")))
                if len(out) >= limit:
                    return out
    cnn = data / "cnndm" / "cnndm_dev.jsonl"
    if cnn.is_file():
        for line in cnn.read_text().splitlines():
            obj = json.loads(line)
            out.append(Article.build(id=obj["id"], title="", text=obj["article"]))
    for p in sorted((data / "bbc-news-summary" / "News Articles").glob("*/*.txt")):
        out.extend(parse_plain(p.read_text(encoding="utf-8", errors="replace"), str(p)))
        if len(out) >= limit:
            break
    return out[:limit]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sentences", type=int, default=4000)
    ap.add_argument("--articles", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from models.embedder import Embedder

    articles = real_articles(args.data, args.articles)
    sentences = list(dict.fromkeys(s for a in articles for s in a.sentences))[: args.sentences]
    print(f"machine: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"{len(sentences)} distinct sentences from {len(articles)} articles")

    rows = []
    from sentence_transformers import SentenceTransformer

    ours = Embedder("minilm", device="cpu")
    plain = SentenceTransformer(ours.spec.path, device="cpu")
    plain.encode(sentences[:64])  # warm-up, both
    ours.encode(sentences[:64])
    t = time.perf_counter()
    ref = plain.encode(sentences, normalize_embeddings=True)
    rows.append(("SentenceTransformer.encode (batch 32)", len(sentences) / (time.perf_counter() - t), 1.0))
    variants = [("precis Embedder (fp32)", ours)]
    if os.environ.get("PRECIS_BENCH_INT8", "1") == "1":
        variants.append(("precis Embedder (int8 dynamic)", Embedder("minilm", device="cpu", quantize=True)))
    for name, emb in variants:
        emb.encode(sentences[:64])
        t = time.perf_counter()
        vecs = emb.encode(sentences)
        rate = len(sentences) / (time.perf_counter() - t)
        rows.append((name, rate, float(np.mean(np.sum(vecs * ref, axis=1)))))
    base = rows[0][1]
    print(f"\n{'embedder':<40}{'sent/s':>9}{'x plain':>9}{'cos vs plain':>14}")
    for name, rate, cos in rows:
        print(f"{name:<40}{rate:9.1f}{rate / base:9.2f}{cos:14.4f}")

    # Cold build vs warm restart of the whole corpus.
    from bot.index.cache import EmbeddingCache
    from bot.index.sentence_index import SentenceIndex

    with tempfile.TemporaryDirectory() as d:
        cold = SentenceIndex(ours, EmbeddingCache(Path(d), ours.name, ours.dim))
        t = time.perf_counter()
        cold.build(articles, progress=False)
        cold_s = time.perf_counter() - t
        cold.cache.close()
        warm = SentenceIndex(ours, EmbeddingCache(Path(d), ours.name, ours.dim))  # a restart: new objects
        t = time.perf_counter()
        warm.build(articles, progress=False)
        warm_s = time.perf_counter() - t
    n_sent = len(cold)
    print(f"\ncorpus: {len(articles)} articles, {n_sent} sentences")
    print(f"cold build   {cold_s:8.1f} s  ({n_sent / cold_s:.0f} sentences/s)")
    print(f"warm restart {warm_s:8.2f} s  ({cold_s / warm_s:.0f}x faster; embedded {int(warm.last_build['embedded'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
