"""What the /ask span reader costs: one read of one sentence (p50/p95) and the RSS it adds beside the
embedder, on the runtime path this CPU takes (torch bf16 where native, else dynamic int8).

    python benchmarks/span_speed.py [--model precis-span] [--realtimeqa FILE] [--n 200] [--threads 1]

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
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
