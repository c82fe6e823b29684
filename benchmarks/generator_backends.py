"""The abstractive engine on each generator backend, one run, same articles, same CPU.

Backends (models/generator.py ``open_generator``):
  transformers  the bundled SmolLM2 GGUF de-quantised into torch weights (logits-processor constraint)
  llamacpp      the same GGUF on llama.cpp in the bot's process (xllamacpp; GBNF-grammar constraint)
  server        the same GGUF behind a llama.cpp server on 127.0.0.1 (xllamacpp's own server, a separate
                process), the bot pointed at it with SUMMARY_MODEL=http://127.0.0.1:PORT/v1

Each backend runs in a fresh process with a fresh model cache folder (a fresh DATA_DIR): ``cold load`` is
the generator's load there (for transformers it includes de-quantising the GGUF; for llama.cpp all its
workers, one after the other: xllamacpp holds the GIL while it loads, so loading them in the background
would stall the first summary's Python), ``cold 1st reply`` the
load plus the first 3-sentence summary (what a new user waits for), ``warm load`` a second load in the same
process (the cache folder filled, files in the page cache). Then every article: ROUGE-1/2/Lsum, entity
precision, subseq (share of summary lines that are compressions of one article sentence: its words a
subsequence of it), p50/p95 seconds per summary, the bot process's peak RSS (embedder + generator; for the
server row the server's own peak is given apart). ``same as llamacpp``: share of articles whose server
summary equals the in-process llama.cpp one (same model, greedy). The CPU path is printed per row.

    nice python benchmarks/generator_backends.py [--limit N] [--backends transformers,llamacpp,server]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import summary_quality as sq  # noqa: E402

BACKENDS = ("transformers", "llamacpp", "server")


def cpu_path(gen) -> str:
    if getattr(gen, "backend", "") == "transformers":
        from models.runtime import cpu_has_bf16

        return f"torch {str(gen.dtype).removeprefix('torch.')} (CPU native bf16: {'yes' if cpu_has_bf16() else 'no'})"
    if getattr(gen, "backend", "") == "llama.cpp":
        return f"llama.cpp Q4_1, {gen.workers} worker(s) x {gen.threads} thread, {gen.cpu}"
    return "llama.cpp server Q4_1 (separate process, 1 slot)"


def child(args) -> None:
    from bot.engines.abstractive import AbstractiveSummarizer
    from bot.engines.extractive import ExtractiveSummarizer
    from bot.index.cache import EmbeddingCache
    from bot.index.sentence_index import SentenceIndex
    from models.embedder import Embedder
    from models.generator import open_generator
    from models.runtime import set_threads

    set_threads(args.threads)
    if args.no_bf16:  # what a CPU without native bf16 runs: transformers in float32
        from models.runtime import disable_bf16

        disable_bf16()
    items = sq.load_cnndm(args.cnndm, args.limit)
    embedder = Embedder("minilm")
    tmp = Path(tempfile.mkdtemp(prefix="precis-bench-"))
    index = SentenceIndex(embedder, EmbeddingCache(tmp / "emb", embedder.name, embedder.dim))
    index.build([a for a, _, _ in items], progress=False)
    extractive = ExtractiveSummarizer(index)
    kw = dict(cache_dir=tmp / "models", threads=args.threads, max_concurrency=args.workers)
    if args.child == "server":
        model, backend = args.url, "openai"
        kw["api_key"] = os.environ.get("SUMMARY_API_KEY")
    else:
        model, backend = "smollm2-135m-instruct", args.child
    t = time.perf_counter()
    gen = open_generator(model, backend=backend, **kw)
    cold_load = time.perf_counter() - t
    summ = AbstractiveSummarizer(index, extractive, gen)
    t = time.perf_counter()
    summ(0, 3)
    first_reply = time.perf_counter() - t
    summaries: list[list[str]] = []

    def run(i, a, n):
        lines = [x.text for x in summ(i, n).lines]
        summaries.append(lines)
        return lines

    row = sq.evaluate_abs(args.child, items, run)
    rss = sq.peak_rss_mb()
    pss = _pss_mb()
    path = cpu_path(gen)
    gc.collect()
    t = time.perf_counter()
    # a second load beside the first (RSS was taken before); kept referenced: tearing an xllamacpp
    # server down was seen to hang, and os._exit below ends the process without it
    gen2 = open_generator(model, backend=backend, **kw)  # noqa: F841
    warm_load = time.perf_counter() - t
    out = {"row": row, "cold_load": cold_load, "first_reply": first_reply, "warm_load": warm_load,
           "rss": rss, "pss": pss, "cpu": path, "summaries": summaries}
    Path(args.out).write_text(json.dumps(out))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no teardown of the models: measured already, and not what this times


def serve(args) -> None:
    """A llama.cpp server on 127.0.0.1 serving the bundled GGUF, until stdin closes."""
    import secrets

    import xllamacpp

    from models.llamacpp import server_params
    from models.registry import resolve

    spec = resolve("smollm2-135m-instruct", "generator")
    key = secrets.token_urlsafe(16)
    # the bot's in-process settings (threads, prompt-lookup speculation): same model, same decoding
    srv = xllamacpp.Server(server_params(Path(spec.path) / spec.gguf_file, threads=args.threads, api_key=key))
    print(json.dumps({"url": f"{srv.listening_address}/v1", "key": key}), flush=True)
    sys.stdin.read()
    os._exit(0)  # no teardown: the process ends here


def _pss_mb() -> float:
    """This process's proportional set size now (MB): pages shared with others (or mapped twice, as
    llama.cpp's workers map the one GGUF file) counted once, split between their users."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _peak_rss_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnndm", type=Path, default=sq.DATA / "cnndm" / "cnndm_dev.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="articles (default: all)")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--threads", type=int, default=1, help="generator threads (the bot's MODEL_THREADS)")
    ap.add_argument("--workers", type=int, default=3,
                    help="requests at once (the bot's SUMMARY_MAX_CONCURRENCY): llama.cpp in-process runs this many "
                         "single-thread workers and the engine sends a summary's sentences to them at once; the "
                         "server row's client sends this many (its server has one slot); transformers takes one at "
                         "a time")
    ap.add_argument("--no-bf16", action="store_true",
                    help="act as a CPU without native bf16 (transformers then runs in float32, as there)")
    ap.add_argument("--save", default=None, help="also write the results (JSON) here, after each backend")
    ap.add_argument("--load", default=None, help="print the table from a --save file (and run the backends"
                    " it lacks)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return 0
    if args.child:
        child(args)
        return 0

    results: dict[str, dict] = {}
    server_rss = float("nan")
    if args.load and Path(args.load).is_file():
        saved = json.loads(Path(args.load).read_text())
        results, server_rss = saved["results"], saved["server_rss"]
    base = [sys.executable, __file__, "--cnndm", str(args.cnndm), "--threads", str(args.threads),
            "--workers", str(args.workers)] + (["--no-bf16"] if args.no_bf16 else [])
    if args.limit:
        base += ["--limit", str(args.limit)]
    for b in [x.strip() for x in args.backends.split(",") if x.strip()]:
        if b in results:
            continue
        out = tempfile.mktemp(suffix=".json")
        env = dict(os.environ)
        srv = None
        cmd = base + ["--child", b, "--out", out]
        if b == "server":
            srv = subprocess.Popen(base + ["--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   stderr=subprocess.DEVNULL)
            info = json.loads(srv.stdout.readline())
            cmd += ["--url", info["url"]]
            env["SUMMARY_API_KEY"] = info["key"]
        print(f"[{b}] running ...", file=sys.stderr, flush=True)
        subprocess.run(cmd, env=env, check=True)
        if srv is not None:
            server_rss = _peak_rss_of(srv.pid)
            srv.stdin.close()
            try:
                srv.wait(timeout=30)
            except subprocess.TimeoutExpired:
                srv.kill()
        results[b] = json.loads(Path(out).read_text())
        os.unlink(out)
        if args.save:
            Path(args.save).write_text(json.dumps({"results": results, "server_rss": server_rss}))

    n = len(next(iter(results.values()))["summaries"]) if results else 0
    print(f"\nCNN/DailyMail dev, abstractive, {n} articles, 3 sentences vs highlights; generator threads "
          f"{args.threads}, llama.cpp workers {args.workers}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'backend':<14}{'R1':>6}{'R2':>6}{'RLsum':>7}{'ent.prec':>9}{'subseq':>8}{'p50 s':>7}{'p95 s':>7}"
          f"{'cold load':>10}{'cold 1st reply':>15}{'warm load':>10}{'peak RSS MB':>12}{'PSS MB':>9}  CPU path")
    for b, r in results.items():
        row = r["row"]
        rss = f"{r['rss']:.0f}" + (f" +{server_rss:.0f}" if b == "server" else "")
        print(f"{b:<14}{row['R1']:6.1f}{row['R2']:6.1f}{row['RLsum']:7.1f}{row['entity_precision']:9.3f}"
              f"{row['subsequence']:8.1%}{row['p50_s']:7.2f}{row['p95_s']:7.2f}{r['cold_load']:10.2f}"
              f"{r['cold_load'] + r['first_reply']:15.2f}{r['warm_load']:10.2f}{rss:>12}{r.get('pss', float('nan')):9.0f}"
              f"  {r['cpu']}")
    if "server" in results and "llamacpp" in results:
        a, b = results["llamacpp"]["summaries"], results["server"]["summaries"]
        same = sum(x == y for x, y in zip(a, b))
        print(f"server summaries identical to in-process llama.cpp: {same}/{len(a)} ({same / max(len(a), 1):.0%})")
    if "server" in results:
        print("server row: peak RSS = the bot's process + the llama.cpp server process")
    print("PSS: the bot's process at the end, shared pages split (llama.cpp's workers each map the one GGUF file,"
          " which RSS counts once per worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
