"""Corpus build throughput: sentence embeddings per second, cold, on this machine,
against a plain ``SentenceTransformer.encode`` over the same sentences in the
same run (alternating rounds, median); then a cold start and warm restarts of
the bot on an N-article corpus, each a new process with the bot's own settings
(corpus files parsed and split, embeddings, BM25/TF-IDF).

    python benchmarks/build_speed.py [--sentences 4000] [--rounds 3] [--articles 2000] [--data DIR]
        [--variants torch:float32,torch:int8] [--graph-dir DIR]

The throughput table always has the bot's embedder three times, each with the
path that ran (``onnx-int8``, ``torch-bfloat16``...) and its cosine to float32:
as this CPU runs it (``EMBED_PRECISION`` as set; bf16 where the CPU has it
natively), with bf16 disabled (``NO_BF16=true``: the CPU treated as one without
native bf16, so the row is what such a CPU runs by default - ONNX int8), and
exact float32 (``EMBED_PRECISION=float32``: ONNX float32).

Sentences and articles come from the shared development data (CNN/DailyMail,
BBC, RealTime QA documents).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
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


def _rate(fn, texts) -> float:
    t = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - t)


def _variant(spec: str) -> tuple[str, str]:
    """``backend:precision`` (or a bare precision, any backend the bot would pick)."""
    backend, _, precision = spec.strip().rpartition(":")
    return (backend or "auto"), (precision or "auto")


def throughput(sentences: list[str], rounds: int, variants: list[str], graph_dir: Path) -> None:
    """Plain SentenceTransformer.encode (torch's default threads, batch 32) against the
    Embedder as the bot builds it - on this CPU as it is, with bf16 disabled (NO_BF16:
    what a CPU without native bf16 runs by default) and in exact float32
    (EMBED_PRECISION=float32) - in alternating rounds; the median rate of each, and
    each one's cosine to float32 (plain encode)."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from bot.config import Settings
    from models.embedder import Embedder
    from models import runtime

    default_threads = torch.get_num_threads()
    settings = Settings(_env_file=None)
    threads = settings.model_threads or None
    plain = SentenceTransformer(Embedder("minilm", device="cpu", precision="float32", backend="torch").spec.path,
                                device="cpu")
    torch.set_num_threads(settings.model_threads or default_threads)

    native_bf16 = runtime.cpu_has_bf16()  # as the bot sees it (NO_BF16 in the environment counts)

    def make(backend: str, precision: str, no_bf16: bool = False):
        t = time.perf_counter()
        runtime.disable_bf16(no_bf16 or settings.no_bf16)  # read when the Embedder picks its path
        try:
            emb = Embedder("minilm", device="cpu", threads=threads, precision=precision, backend=backend,
                           cache_dir=graph_dir)
        finally:
            runtime.disable_bf16(False)
        return emb, time.perf_counter() - t

    ours = {
        "bot": make(settings.embed_backend, settings.embed_precision),
        "no-bf16": make(settings.embed_backend, settings.embed_precision, no_bf16=True),
        "float32": make(settings.embed_backend, "float32"),
    }
    for v in variants:
        ours[v] = make(*_variant(v))

    def run_plain(texts):
        torch.set_num_threads(default_threads)
        try:
            return plain.encode(texts, batch_size=32, normalize_embeddings=True)
        finally:
            torch.set_num_threads(settings.model_threads or default_threads)

    ref = run_plain(sentences)  # also the warm-up
    for emb, _ in ours.values():
        emb.encode(sentences[:256])
    rates: dict[str, list[float]] = {"plain": []}
    rates.update({k: [] for k in ours})
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        rates["plain"].append(_rate(run_plain, sentences))
        for k, (emb, _) in ours.items():
            rates[k].append(_rate(emb.encode, sentences))
        loads.append(os.getloadavg()[0])
    base = float(np.median(rates["plain"]))
    print(f"machine: {os.cpu_count()} cores, native bf16: {'yes' if native_bf16 else 'no'}; load average "
          f"{min(loads):.2f}-{max(loads):.2f} during the rounds; torch default threads {default_threads}; "
          f"bot: MODEL_THREADS={settings.model_threads}, EMBED_PRECISION={settings.embed_precision}, "
          f"EMBED_BACKEND={settings.embed_backend}")
    print(f"{len(sentences)} distinct sentences, {rounds} alternating rounds, median rate (min-max)\n")
    print(f"{'embedder':<72}{'path':>16}{'sent/s':>9}{'range':>12}{'x plain':>9}{'cos mean':>10}{'cos min':>9}"
          f"{'load s':>8}")
    lo, hi = min(rates["plain"]), max(rates["plain"])
    print(f"{'SentenceTransformer.encode (batch 32, ' + str(default_threads) + ' threads)':<72}{'torch-float32':>16}"
          f"{base:9.1f}{f'{lo:.0f}-{hi:.0f}':>12}{1.0:9.2f}{1.0:10.4f}{1.0:9.4f}{'':>8}")
    for k, (emb, load_s) in ours.items():
        rate = float(np.median(rates[k]))
        cos = np.sum(emb.encode(sentences) * ref, axis=1)
        who = {"bot": "the bot, this CPU as it is", "no-bf16": "the bot, bf16 disabled (NO_BF16=true)",
               "float32": "the bot, exact float32 (EMBED_PRECISION=float32)"}
        label = f"precis Embedder: {who.get(k, 'variant ' + k)}, {emb.workers}x{threads or default_threads} thr"
        lo, hi = min(rates[k]), max(rates[k])
        print(f"{label:<72}{emb.path:>16}{rate:9.1f}{f'{lo:.0f}-{hi:.0f}':>12}{rate / base:9.2f}"
              f"{cos.mean():10.4f}{cos.min():9.4f}{load_s:8.2f}")
    print("\npath: runtime-numerics that ran; load s: Embedder() time (an ONNX graph is exported, and quantised "
          "for int8, on the first load only, then read from the cache); cos: to plain encode's float32 vectors")


def restart_run(data_dir: Path, corpus: Path) -> dict:
    """One process start as the bot does it: models, corpus files, index (``--restart-run``)."""
    t0 = time.perf_counter()
    from bot.app import Precis
    from bot.config import Settings

    settings = Settings(_env_file=None, data_dir=data_dir, corpus_path=corpus)
    app = Precis(settings)
    t1 = time.perf_counter()
    report = app.load(progress=False)
    t2 = time.perf_counter()
    return {
        "articles": report.articles,
        "sentences": len(app.index),
        "embedded": int(app.index.last_build.get("embedded", 0)),
        "split_hits": app.split_cache.hits,
        "start_s": t1 - t0,
        "load_s": t2 - t1,
        "total_s": t2 - t0,
    }


def restarts(articles, keep: Path | None) -> None:
    folder = keep or Path(tempfile.mkdtemp(prefix="precis-build-"))
    corpus = folder / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for a in articles:
            f.write(json.dumps({"id": a.id, "title": a.title, "text": "\n".join(a.sentences), "date": a.date}) + "\n")
    data_dir = folder / "data"
    runs = []
    for label in ("cold start (empty DATA_DIR)", "warm restart (same DATA_DIR)", "warm restart again"):
        cmd = [sys.executable, __file__, "--restart-run", str(data_dir), str(corpus)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{label}: failed\n{proc.stderr[-2000:]}")
            return
        runs.append((label, json.loads(proc.stdout.strip().splitlines()[-1])))
    r0 = runs[0][1]
    print(f"\ncorpus: {r0['articles']} articles, {r0['sentences']} sentences, as one JSONL file; each start a new process")
    print(f"{'':<30}{'corpus+index s':>15}{'models s':>10}{'embedded':>10}{'splits cached':>15}")
    for label, r in runs:
        print(f"{label:<30}{r['load_s']:15.2f}{r['start_s']:10.2f}{r['embedded']:10d}{r['split_hits']:15d}")
    for label, r in runs[1:]:
        print(f"{label}: {r0['load_s'] / r['load_s']:.0f}x faster than cold (corpus+index); "
              f"{r0['total_s'] / r['total_s']:.0f}x counting model load")
    if keep is None:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sentences", type=int, default=4000, help="sentences for the throughput rounds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default="torch:float32,torch:int8",
                    help="more embedders to time: backend:precision, comma list ('' none); e.g. onnx:float32")
    ap.add_argument("--graph-dir", type=Path, default=None,
                    help="where ONNX graphs are exported/cached (default: a temp folder, so the first load exports)")
    ap.add_argument("--articles", type=int, default=2000, help="articles for the cold/warm start (0: skip)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the corpus and DATA_DIR of the restarts here")
    ap.add_argument("--restart-run", nargs=2, type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.restart_run:
        import logging

        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(restart_run(*args.restart_run)))
        return 0
    articles = real_articles(args.data, max(args.articles, 400))
    if not articles:
        print(f"no data under {args.data}", file=sys.stderr)
        return 2
    if args.sentences:
        sentences = list(dict.fromkeys(s for a in articles for s in a.sentences))[: args.sentences]
        graph_dir = args.graph_dir or Path(tempfile.mkdtemp(prefix="precis-graphs-"))
        throughput(sentences, args.rounds, [v for v in args.variants.split(",") if v.strip()], graph_dir)
        if args.graph_dir is None:
            shutil.rmtree(graph_dir, ignore_errors=True)
    if args.articles:
        restarts(articles[: args.articles], args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
