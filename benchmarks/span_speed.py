"""What the /ask span reader costs: one read of one sentence (p50/p95) and the RSS it adds beside the
embedder, on the runtime path this CPU takes (torch bf16 where native, else dynamic int8).

    python benchmarks/span_speed.py [--model precis-span] [--realtimeqa FILE] [--n 200] [--threads 1]
    python benchmarks/span_speed.py --ask 0,3 [--n 200] [--threads 1]

--ask N,...: instead, /ask end to end on the sample corpus (bot/data/sample_corpus.txt) with the span reader
reading the reader's best N candidates (Answerer.SPAN_RERANK_N; 0: support [1] only, as before issue 30's
rerank), p50/p95 per N, the configurations interleaved question by question; the questions are RealTime
QA's (most abstain on two articles) and eight about the sample's articles, five times each (reported
apart: the answered questions pay the span reads).

Questions and sentences: RealTime QA's questions with their evidence passages (cut to 300 characters,
about a sentence), with a title and a sentence before, as /ask reads them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="precis-span")
    ap.add_argument("--realtimeqa", type=Path, default=DATA / "realtimeqa" / "realtimeqa_2022.jsonl")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ask", default="", help="N,...: /ask on the sample corpus with the span reader reranking N")
    args = ap.parse_args(argv)
    if args.ask:
        return ask_speed(args)
    from models.embedder import Embedder
    from models.span_reader import SpanReader

    rows = [json.loads(x) for x in args.realtimeqa.read_text(encoding="utf-8").splitlines() if x.strip()]
    items = [(r["question"], (r.get("evidence") or "No evidence.")[:300]) for r in rows][: args.n]
    emb = Embedder("minilm", threads=args.threads)  # the bot has it loaded already: count only what is added
    emb.encode(["warm up"])
    gc.collect()
    before = rss_mb()
    reader = SpanReader(args.model, threads=args.threads)
    reader.read("Who warms up?", "The model warms up.")
    gc.collect()
    added = rss_mb() - before
    ms = []
    for q, s in items:
        t = time.perf_counter()
        reader.read(q, s, "A news article's title", "The sentence before this one in the article.")
        ms.append((time.perf_counter() - t) * 1000)
    print(f"span reader {reader.describe()}, {args.threads} thread(s): one read p50 {np.percentile(ms, 50):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms over {len(ms)}; RSS +{added:.0f} MB beside the embedder")
    return 0


SAMPLE_QUESTIONS = (
    "What did Japan decide about travelers?", "How many ethnic Kazakhs is China allowing to leave?",
    "How many new coronavirus cases were reported in Tokyo?", "Which newspaper reported the travel ban?",
    "hey, what did Japan decide about travelers?", "Where are Uighurs and Kazakhs detained?",
    "Who said China is allowing Kazakhs to leave?", "What is the population of Kazakhstan?",
)


def ask_speed(args) -> int:
    import tempfile

    from bot.corpus.loader import load_corpus
    from bot.engines.answerer import Answerer
    from bot.index.cache import EmbeddingCache
    from bot.index.sentence_index import SentenceIndex
    from models.embedder import Embedder
    from models.span_reader import SpanReader

    ns = [int(x) for x in args.ask.split(",") if x.strip()]
    rows = [json.loads(x) for x in args.realtimeqa.read_text(encoding="utf-8").splitlines() if x.strip()]
    questions = list(SAMPLE_QUESTIONS) * 5 + [r["question"] for r in rows][: args.n]
    emb = Embedder("minilm", threads=args.threads)
    ix = SentenceIndex(emb, EmbeddingCache(Path(tempfile.mkdtemp()), emb.name, emb.dim))
    ix.build(load_corpus(ROOT / "bot" / "data" / "sample_corpus.txt").articles, progress=False)
    reader = SpanReader(args.model, threads=args.threads)
    answerers = {}
    for n in ns:
        a = Answerer(ix, span_reader=reader)
        a.SPAN_RERANK_N = n
        answerers[n] = a
    for a in answerers.values():  # warm up
        a.answer(SAMPLE_QUESTIONS[0])
    ms = {n: [] for n in ns}
    ms_answered = {n: [] for n in ns}
    for q in questions:
        for n, a in answerers.items():
            t = time.perf_counter()
            got = a.answer(q)
            ms[n].append((time.perf_counter() - t) * 1000)
            if not got.abstained:
                ms_answered[n].append(ms[n][-1])
    for n in ns:
        x = ms_answered[n]
        print(f"/ask on the sample corpus, span reader {reader.describe()} reading the best {n or 1} "
              f"candidate(s){' (support [1] only)' if n < 2 else ''}, {args.threads} thread(s): p50 "
              f"{np.percentile(ms[n], 50):.1f} ms, p95 {np.percentile(ms[n], 95):.1f} ms over {len(ms[n])} "
              f"questions; the {len(x)} answered: p50 {np.percentile(x, 50) if x else float('nan'):.1f} ms, "
              f"p95 {np.percentile(x, 95) if x else float('nan'):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
