"""Scale: corpora of 1k, 5k and 20k articles built by recombining real sentences
from the shared data, each size measured in its own process:

* index build time (embedding cache warm after the first size: the sentences
  are real ones, reused), peak RSS with both models loaded (the embedder and
  the summary model);
* /ask latency p50/p95 (the full handler, extractive), extractive /summary
  p50/p95 (the full handler).

    python benchmarks/scale.py [--sizes 1000,5000,20000] [--queries 200] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"


def synthetic_corpus(data: Path, n: int, seed: int = 7):
    """n articles: a real title each, and 12-28 real sentences drawn from the pool."""
    from build_speed import real_articles

    from bot.corpus.article import Article

    base = real_articles(data, 4000)
    pool = [s for a in base for s in a.sentences if 6 <= len(s.split()) <= 60]
    titles = [a.title for a in base if a.title] or ["Untitled"]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(12, 28)
        start = rng.randrange(len(pool) - k)
        body = pool[start : start + k // 2] + rng.sample(pool, k - k // 2)  # a coherent run plus others
        out.append(Article.build(id=f"syn-{i}", title=f"{rng.choice(titles)} ({i})", text="\n".join(body)))
    return out


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def one(size: int, queries: int, cache_dir: Path, data: Path, with_generator: bool) -> dict:
    from bot.config import Settings
    from bot.handlers.core import Handlers
    from bot.app import Precis

    t = time.perf_counter()
    arts = synthetic_corpus(data, size)
    make_s = time.perf_counter() - t
    settings = Settings(_env_file=None, data_dir=cache_dir, corpus_path=ROOT / "bot" / "data" / "sample_corpus.txt")
    app = Precis(settings)
    gen_s = 0.0
    if with_generator:
        t = time.perf_counter()
        app.generator.get()
        gen_s = time.perf_counter() - t
    t = time.perf_counter()
    app.add_articles(arts)
    build_s = time.perf_counter() - t
    h = Handlers(app)
    t = time.perf_counter()
    h.ask("warm up question about the economy")
    answerer_s = time.perf_counter() - t
    rng = random.Random(1)
    ask_ms, sum_ms = [], []
    for _ in range(queries):
        a = arts[rng.randrange(len(arts))]
        words = a.sentences[rng.randrange(len(a.sentences))].split()
        q = " ".join(words[: min(len(words), 10)]) + "?"
        t = time.perf_counter()
        h.ask(q)
        ask_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        r = h.summarize_row(rng.randrange(len(arts)), "extractive", 3)
        sum_ms.append((time.perf_counter() - t) * 1000)
        assert r.ok
    return {
        "articles": size,
        "sentences": len(app.index),
        "synth_s": round(make_s, 1),
        "generator_load_s": round(gen_s, 1),
        "build_s": round(build_s, 1),
        "embedded": int(app.index.last_build.get("embedded", 0)),
        "answerer_init_s": round(answerer_s, 2),
        "ask_p50_ms": round(pct(ask_ms, 0.5), 1),
        "ask_p95_ms": round(pct(ask_ms, 0.95), 1),
        "summary_p50_ms": round(pct(sum_ms, 0.5), 2),
        "summary_p95_ms": round(pct(sum_ms, 0.95), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cache-dir", type=Path, default=None, help="DATA_DIR for caches (default: a temp folder)")
    ap.add_argument("--no-generator", action="store_true", help="do not load the summary model")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-scale-"))
    if args.one:
        import logging

        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(one(args.one, args.queries, cache, args.data, not args.no_generator)))
        return 0
    print(f"{'articles':>8}{'sentences':>10}{'build s':>9}{'embedded':>9}{'ask p50':>9}{'ask p95':>9}"
          f"{'sum p50':>9}{'sum p95':>9}{'RSS MB':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(size), "--queries", str(args.queries),
               "--cache-dir", str(cache), "--data", str(args.data)] + (["--no-generator"] if args.no_generator else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{size}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['articles']:>8}{r['sentences']:>10}{r['build_s']:>9}{r['embedded']:>9}{r['ask_p50_ms']:>9}"
              f"{r['ask_p95_ms']:>9}{r['summary_p50_ms']:>9}{r['summary_p95_ms']:>9}{r['peak_rss_mb']:>8.0f}",
              flush=True)
        print(f"         (model load {r['generator_load_s']} s, answerer init {r['answerer_init_s']} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
