"""Scale: corpora of 1k, 5k and 20k articles built by recombining real sentences
from the shared data, each size measured in its own process:

* index build time (embedding cache warm after the first size: the sentences
  are real ones, reused), peak RSS with both models loaded (the embedder and
  the summary model);
* a reload (one article added: the whole index rebuilt while the old one
  serves), its time and the peak RSS with it;
* /ask latency p50/p95 (the full handler, extractive), extractive /summary
  p50/p95 (the full handler);
* arrivals (``--arrivals``): the cost of adding 10 and 100 new articles (new
  sentences, so they are embedded), /ask p95 while 100 are being added, and the
  time from a 10-article file landing in a watched CORPUS_PATH (the bot's
  watcher, its debounce included) until /articles lists them and /ask cites one;
* ``--year``: a simulated year of feed arrivals (``--per-day`` a day, 30-day
  retention, the real embedder) with RSS sampled every 30 days.

    python benchmarks/scale.py [--sizes 1000,5000,20000] [--queries 200] [--cache-dir DIR] [--arrivals]
    python benchmarks/scale.py --year [--days 365] [--per-day 20] [--stub-embedder] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
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


def synthetic_corpus(data: Path, n: int, cache_dir: Path | None = None, seed: int = 7):
    """n articles: a real title each, and 12-28 real sentences drawn from the pool.

    The pool's source articles are split once (the bot's sentence-split cache
    under ``cache_dir``); the synthetic articles are made of whole sentences, so
    they are not split again.
    """
    import contextlib

    from build_speed import real_articles

    from bot.corpus.article import Article
    from bot.corpus.segment import split_cache, splitter_version
    from bot.index.cache import SplitCache

    ctx = split_cache(SplitCache(cache_dir, splitter_version())) if cache_dir else contextlib.nullcontext()
    with ctx:
        base = real_articles(data, 4000)
    pool = [s for a in base for s in a.sentences if 6 <= len(s.split()) <= 60]
    titles = [a.title for a in base if a.title] or ["Untitled"]
    del base
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(12, 28)
        start = rng.randrange(len(pool) - k)
        body = pool[start : start + k // 2] + rng.sample(pool, k - k // 2)  # a coherent run plus others
        out.append(Article(id=f"syn-{i}", title=f"{rng.choice(titles)} ({i})", sentences=tuple(body)))
    return out


def rss_mb() -> float:
    """Current resident set size (Linux), MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def one(size: int, queries: int, cache_dir: Path, data: Path, with_generator: bool) -> dict:
    from bot.config import Settings
    from bot.handlers.core import Handlers
    from bot.app import Precis
    from bot.corpus.article import Article

    t = time.perf_counter()
    arts = synthetic_corpus(data, size, cache_dir / "cache")
    gc.collect()
    make_s = time.perf_counter() - t
    rss_corpus = rss_mb()
    settings = Settings(_env_file=None, data_dir=cache_dir, corpus_path=ROOT / "bot" / "data" / "sample_corpus.txt")
    app = Precis(settings)
    gen_s = 0.0
    if with_generator:
        t = time.perf_counter()
        gen = app.generator.get()
        gen_s = time.perf_counter() - t
        gen.generate("Say hello.", max_new_tokens=4)  # weights are mapped lazily: touch them all, count them
    rss_models = rss_mb()
    t = time.perf_counter()
    app.add_articles(arts)
    build_s = time.perf_counter() - t
    rss_index = rss_mb()
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
    rss_end = rss_mb()
    peak_serving = peak_mb()
    # A reload (the watcher saw a new file): the new index is built while the old one serves.
    t = time.perf_counter()
    extra = Article(id="reload-1", title="One more article", sentences=("A new article arrived for the reload.",))
    assert app.add_articles([extra]), "the reload did not add the article"
    reload_s = time.perf_counter() - t
    arrivals = _arrivals(app, h, arts, cache_dir, rng) if ARRIVALS else {}
    return {
        **arrivals,
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
        "rss_corpus_mb": round(rss_corpus),  # the harness and the article objects
        "rss_models_mb": round(rss_models),  # + both models
        "rss_index_mb": round(rss_index),  # + the index
        "rss_end_mb": round(rss_end),  # after the queries
        "peak_rss_mb": round(peak_serving),  # built and serving
        "reload_s": round(reload_s, 1),
        "peak_reload_mb": round(peak_mb()),  # including one full reload
    }


ARRIVALS = False
RUN = f"{os.getpid()}-{int(time.time())}"  # new articles are new to the embedding cache in every run


def _fresh(arts, n: int, tag: str, rng) -> list:
    """n new articles: sentences of existing ones, changed (so they are new to the embedding cache)."""
    from bot.corpus.article import Article

    out = []
    for i in range(n):
        a = arts[rng.randrange(len(arts))]
        sents = tuple(f"{s.rstrip('.')} ({tag} {i}, run {RUN})." for s in a.sentences[:12])
        out.append(Article(id=f"{tag}-{i}", title=f"{a.title} [{tag} {i}]", sentences=sents))
    return out


class RssSampler:
    """The highest RSS seen while it runs (sampled every 5 ms in a thread)."""

    def __init__(self) -> None:
        import threading

        self.max_mb = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_mb = max(self.max_mb, rss_mb())
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.max_mb = max(self.max_mb, rss_mb())


def _arrivals(app, h, arts, cache_dir: Path, rng) -> dict:
    import threading

    out = {}
    app.index.wait_merged()
    with RssSampler() as rss:
        for k in (10, 100):
            batch = _fresh(arts, k, f"add{k}", rng)
            t = time.perf_counter()
            assert len(app.add_articles(batch)) == k
            out[f"add{k}_s"] = round(time.perf_counter() - t, 2)
            out[f"add{k}_incremental"] = bool(app.index.last_build.get("incremental"))
            app.index.wait_merged()
    out["peak_add_mb"] = round(rss.max_mb)  # the highest RSS while adding (models loaded)
    # /ask while the postings merge runs (forced after each of 8 small additions, the whole index each time)
    lat, merge_s = [], []
    for r in range(8):
        assert len(app.add_articles(_fresh(arts, 2, f"merge{r}", rng))) == 2
        ix = app.index
        ix.wait_merged()
        t = time.perf_counter()
        ix.merge(wait=False, force=True)  # what a merge after many additions costs: all rows
        while ix._merger is not None and ix._merger.is_alive():  # noqa: SLF001
            a = arts[rng.randrange(len(arts))]
            q = " ".join(a.sentences[0].split()[:10]) + "?"
            t1 = time.perf_counter()
            h.ask(q)
            lat.append((time.perf_counter() - t1) * 1000)
        merge_s.append(time.perf_counter() - t)
    out["ask_during_merge_p95_ms"] = round(pct(lat, 0.95), 1) if lat else None
    out["ask_during_merge_n"] = len(lat)
    out["merge_s"] = round(pct(merge_s, 0.5), 2)
    # /ask while 100 articles are being added (the index rebuilt in the background, the old one answering)
    batch = _fresh(arts, 100, "during", rng)
    worker = threading.Thread(target=app.add_articles, args=(batch,))
    lat = []
    worker.start()
    while worker.is_alive() or len(lat) < 5:
        a = arts[rng.randrange(len(arts))]
        q = " ".join(a.sentences[0].split()[:10]) + "?"
        t = time.perf_counter()
        h.ask(q)
        lat.append((time.perf_counter() - t) * 1000)
    worker.join()
    out["ask_during_add_p95_ms"] = round(pct(lat, 0.95), 1)
    out["ask_during_add_n"] = len(lat)
    # A file of 10 articles lands in the watched CORPUS_PATH: until /articles lists them and /ask cites one.
    from bot.corpus.watch import BackgroundWatch

    folder = Path(tempfile.mkdtemp(prefix="precis-land-", dir=cache_dir))
    landing = _fresh(arts, 10, "landed", rng)
    loads: list[float] = []

    def reload():
        t = time.perf_counter()
        app.load(folder, progress=False)
        loads.append(time.perf_counter() - t)

    watch = BackgroundWatch(folder, reload).start()
    time.sleep(1.0)
    lines = [json.dumps({"id": a.id, "title": a.title, "text": " ".join(a.sentences)}) for a in landing]
    t0 = time.perf_counter()
    (folder / "landed.jsonl").write_text("\n".join(lines) + "\n")
    listed = cited = None
    target = landing[0]
    # its sentences are others' with a tag added ("… (landed 0)."): the tag makes the question its own
    question = " ".join(target.sentences[1].split()[:12]) + f" (landed 0, run {RUN})?"
    while time.perf_counter() - t0 < 300 and (listed is None or cited is None):
        if listed is None and target.title in {x.title for x in h.articles(target.title, per_page=25).articles}:
            listed = time.perf_counter() - t0
        if cited is None:
            r = h.ask(question)
            if any(s.article_id.startswith("landed-") for s in r.supporting):
                cited = time.perf_counter() - t0
        time.sleep(0.05)
    watch.stop()
    out["landed_load_s"] = round(loads[-1], 2) if loads else None  # of which the reload itself
    out["landed_listed_s"] = round(listed, 2) if listed is not None else None
    out["landed_cited_s"] = round(cited, 2) if cited is not None else None
    return out


class StubEmbedder:
    """Deterministic random unit vectors (``--stub-embedder``): the year without the model's own memory."""

    name, dim = "stub", 384

    def encode(self, texts, batch_size=64, progress=False):
        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            v = np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def year(days: int, per_day: int, cache_dir: Path, data: Path, stub: bool = False) -> list[dict]:
    """A simulated year of feed arrivals with 30-day retention; RSS every 30 days."""
    from bot.app import Precis
    from bot.config import Settings
    from bot.corpus.article import Article

    base = synthetic_corpus(data, 300, cache_dir / "cache")
    pool = sorted({s for a in base for s in a.sentences})[:5000]
    settings = Settings(_env_file=None, data_dir=cache_dir, corpus_path=ROOT / "bot" / "data" / "sample_corpus.txt",
                        max_article_age_days=30)
    app = Precis(settings, embedder=StubEmbedder() if stub else None)
    app.load(progress=False)
    rng = random.Random(3)
    t0 = time.time()  # simulated days run forward from now (add_articles retires by the real clock)
    rows = []
    for d in range(days):
        now = t0 + d * 86400
        batch = [Article(id=f"d{d}-{i}", title=f"Day {d} story {i}", sentences=tuple(rng.sample(pool, 4)), arrived=now,
                         guild_id=1) for i in range(per_day)]
        app.add_articles(batch)
        app.retire(now)
        if d % 30 == 29 or d == days - 1:
            gc.collect()
            rows.append({"day": d + 1, "articles": len(app.corpus), "sentences": len(app.index),
                         "rss_mb": round(rss_mb()), "peak_mb": round(peak_mb())})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cache-dir", type=Path, default=None, help="DATA_DIR for caches (default: a temp folder)")
    ap.add_argument("--no-generator", action="store_true", help="do not load the summary model")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--arrivals", action="store_true", help="also measure adding 10/100 articles and a landing file")
    ap.add_argument("--year", action="store_true", help="simulate a year of arrivals with retention instead")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--per-day", type=int, default=20)
    ap.add_argument("--stub-embedder", action="store_true", help="--year with random vectors instead of the model")
    args = ap.parse_args(argv)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-scale-"))
    global ARRIVALS
    ARRIVALS = args.arrivals
    if args.year:
        import logging

        logging.basicConfig(level=logging.WARNING)
        year(args.days, args.per_day, cache, args.data, args.stub_embedder)
        return 0
    if args.one:
        import logging

        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(one(args.one, args.queries, cache, args.data, not args.no_generator)))
        return 0
    print(f"{'articles':>8}{'sentences':>10}{'build s':>9}{'embedded':>9}{'ask p50':>9}{'ask p95':>9}"
          f"{'sum p50':>9}{'sum p95':>9}{'peak MB':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(size), "--queries", str(args.queries),
               "--cache-dir", str(cache), "--data", str(args.data)] + (["--no-generator"] if args.no_generator else []) \
            + (["--arrivals"] if args.arrivals else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{size}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['articles']:>8}{r['sentences']:>10}{r['build_s']:>9}{r['embedded']:>9}{r['ask_p50_ms']:>9}"
              f"{r['ask_p95_ms']:>9}{r['summary_p50_ms']:>9}{r['summary_p95_ms']:>9}{r['peak_rss_mb']:>9.0f}",
              flush=True)
        print(f"         (summary model load {r['generator_load_s']} s, /ask features {r['answerer_init_s']} s; "
              f"RSS MB: corpus {r['rss_corpus_mb']}, +models {r['rss_models_mb']}, +index {r['rss_index_mb']}, "
              f"after queries {r['rss_end_mb']}; a reload takes {r['reload_s']} s, peak with it {r['peak_reload_mb']})",
              flush=True)
        if args.arrivals:
            grown = "grown in place" if r["add10_incremental"] and r["add100_incremental"] else "REBUILT"
            print(f"         arrivals ({grown}): +10 in {r['add10_s']} s, +100 in {r['add100_s']} s, highest RSS while "
                  f"adding {r['peak_add_mb']} MB; /ask p95 while adding 100: {r['ask_during_add_p95_ms']} ms "
                  f"(n={r['ask_during_add_n']}); while a postings merge runs ({r['merge_s']} s): "
                  f"{r['ask_during_merge_p95_ms']} ms (n={r['ask_during_merge_n']}); "
                  f"a 10-article file listed after {r['landed_listed_s']} s, cited after {r['landed_cited_s']} s "
                  f"(the reload itself {r['landed_load_s']} s)",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
