"""Question-answering quality: answer-in-top-3 retrieval, abstention, latency.

Systems, all over the same sentence index (same sentences, same run):
  bm25     the index's bm25s scores for the question as typed
  dense    MiniLM cosine between the question and each sentence
  z-sum    both z-normalised over the corpus and added
  precis   bot.engines.answerer.Retriever (fusion + neighbours + title/article + cues)

Data (defaults point at ../shared/data):
  RealTime QA 2022   corpus = every question's docs, deduplicated by URL; every
                     question searches the whole corpus
  SQuAD v1.1 (part)  corpus = all paragraphs (one article each, titled by the
                     Wikipedia page)

Metrics:
  top-3        among questions whose answer string occurs in some corpus
               sentence, the share with an answer string in a top-3 sentence
               (case-insensitive, whole-word match)
  abstain      questions set aside with their docs (RealTime QA: some months;
               SQuAD: some pages), kept where their answer strings occur
               nowhere in the remaining corpus; share the answerer abstains on
  false abst.  share of answerable questions (answer in the remaining corpus)
               the answerer abstains on, same reduced corpus
  p50/p95 ms   wall time per question (question embedding included)

    python benchmarks/ask_quality.py [--realtimeqa FILE] [--squad DIR] [--limit N]
        [--cache-dir DIR] [--holdout-months 2022/08,2022/11] [--threshold T] [--threads N]

OMP_WAIT_POLICY defaults to PASSIVE here (set it in the environment to
override): on a shared 2-core box, OpenMP threads that spin while waiting made
one MiniLM question embedding take ~420 ms instead of ~15 ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.corpus.article import Article  # noqa: E402
from bot.engines.answerer import Answerer, Retriever, _ranked, _z  # noqa: E402
from bot.index.cache import EmbeddingCache  # noqa: E402
from bot.index.sentence_index import SentenceIndex  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SYSTEMS = ("bm25", "dense", "z-sum", "precis")
# Months tuned on while developing were 2022/07 and 2022/10; report on others.
DEFAULT_HOLDOUT_MONTHS = ("2022/08", "2022/11")
DEFAULT_SQUAD_HOLDOUT = 4  # every 4th Wikipedia page (sorted by title) is set aside


@dataclass
class Question:
    id: str
    text: str
    answers: list[str]
    group: str  # month (RealTime QA) or page title (SQuAD)
    docs: list[str]  # article ids the question came with


# --------------------------------------------------------------------- data
def load_realtimeqa(path: Path, limit: int | None) -> tuple[list[Question], list[Article]]:
    questions: list[Question] = []
    articles: dict[str, Article] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        ids = []
        for d in obj.get("docs") or []:
            url = d.get("url") or d.get("title") or ""
            if url not in articles and (d.get("text") or "").strip():
                articles[url] = Article.build(
                    id=url, title=d.get("title") or "", text=d["text"], date=d.get("publish_date"), url=url
                )
            if url in articles:
                ids.append(url)
        answers = [a for a in obj.get("answers") or [] if str(a).strip()]
        questions.append(Question(str(obj["id"]), obj["question"], [str(a) for a in answers], obj["date"][:7], ids))
        if limit and len(questions) >= limit:
            break
    return questions, list(articles.values())


def load_squad(folder: Path, limit: int | None) -> tuple[list[Question], list[Article]]:
    questions: list[Question] = []
    articles: dict[str, Article] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            aid = f"{obj['title']}#{obj['paragraph_index']}"
            if aid not in articles:
                articles[aid] = Article.build(id=aid, title=obj["title"].replace("_", " "), text=obj["context"])
            answers = list(dict.fromkeys(a for a in obj["answers"]["text"] if a.strip()))
            questions.append(Question(obj["id"], obj["question"], answers, obj["title"], [aid]))
            if limit and len(questions) >= limit:
                break
        if limit and len(questions) >= limit:
            break
    return questions, list(articles.values())


# ------------------------------------------------------------ answer match
def answer_pattern(answers: list[str]) -> re.Pattern | None:
    parts = []
    for a in answers:
        a = " ".join(a.split())
        if not a:
            continue
        p = r"\s+".join(re.escape(w) for w in a.split(" "))
        left = r"(?<!\w)" if a[0].isalnum() else ""
        right = r"(?!\w)" if a[-1].isalnum() else ""
        parts.append(f"{left}{p}{right}")
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


class Matcher:
    """Answer-string search over an index's sentences (one joined string: a search per question)."""

    def __init__(self, index: SentenceIndex) -> None:
        self.texts = index.texts
        self.joined = "\n".join(t.replace("\n", " ") for t in index.texts)

    def in_corpus(self, pat: re.Pattern | None) -> bool:
        return bool(pat and pat.search(self.joined))

    def hit(self, pat: re.Pattern | None, rows) -> bool:
        return bool(pat) and any(pat.search(self.texts[int(r)]) for r in rows)


# ------------------------------------------------------------------ systems
def build_index(articles: list[Article], embedder, cache_dir: Path, label: str) -> SentenceIndex:
    index = SentenceIndex(embedder, EmbeddingCache(cache_dir, embedder.name, embedder.dim))
    t = time.perf_counter()
    index.build(articles, progress=True)
    print(
        f"[{label}] {len(articles)} articles, {len(index)} sentences indexed in {time.perf_counter() - t:.1f}s "
        f"({int(index.last_build['embedded'])} newly embedded)",
        file=sys.stderr,
    )
    return index


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    return float(np.percentile(np.asarray(xs), p))


def retrieval_eval(index: SentenceIndex, questions: list[Question], k: int = 3) -> dict:
    """Answer-in-top-k for the four systems, and per-system latency."""
    retriever = Retriever(index)
    matcher = Matcher(index)
    hits = {s: 0 for s in SYSTEMS}
    ms = {s: [] for s in SYSTEMS}
    answerable = 0
    for q in questions:
        pat = answer_pattern(q.answers)
        if not matcher.in_corpus(pat):
            continue
        answerable += 1
        t0 = time.perf_counter()
        bm = index.bm25_scores(q.text)
        top_b = _ranked(bm, k)
        t1 = time.perf_counter()
        dn = index.dense_scores(index.encode_query(q.text))
        top_d = _ranked(dn, k)
        t2 = time.perf_counter()
        top_z = _ranked(_z(bm) + _z(dn), k)
        t3 = time.perf_counter()
        top_p = [s.sentence for s in retriever.search(q.text, k)]
        t4 = time.perf_counter()
        for name, top, dt in (
            ("bm25", top_b, t1 - t0),
            ("dense", top_d, t2 - t1),
            ("z-sum", top_z, t3 - t0),
            ("precis", top_p, t4 - t3),
        ):
            hits[name] += matcher.hit(pat, top)
            ms[name].append(dt * 1000)
    return {"answerable": answerable, "questions": len(questions), "hits": hits, "ms": ms}


def abstention_eval(
    index: SentenceIndex, questions: list[Question], set_aside: set[str], threshold: float | None
) -> dict:
    """Abstention on set-aside questions the reduced corpus cannot answer; false abstention on the rest."""
    answerer = Answerer(index, abstain_threshold=threshold)
    matcher = Matcher(index)
    unans = ans = abst_un = abst_ans = 0
    ms: list[float] = []
    confs_un: list[float] = []
    confs_ans: list[float] = []
    for q in questions:
        pat = answer_pattern(q.answers)
        present = matcher.in_corpus(pat)
        if q.group in set_aside and not present:
            kind = "un"
        elif q.group not in set_aside and present:
            kind = "ans"
        else:
            continue
        t = time.perf_counter()
        a = answerer.answer(q.text)
        ms.append((time.perf_counter() - t) * 1000)
        if kind == "un":
            unans += 1
            abst_un += a.abstained
            confs_un.append(a.confidence)
        else:
            ans += 1
            abst_ans += a.abstained
            confs_ans.append(a.confidence)
    return {
        "unanswerable": unans,
        "answerable": ans,
        "abstain": 100.0 * abst_un / unans if unans else float("nan"),
        "false_abstain": 100.0 * abst_ans / ans if ans else float("nan"),
        "ms": ms,
        "confs_un": confs_un,
        "confs_ans": confs_ans,
    }


def reduced_corpus(
    questions: list[Question], articles: list[Article], set_aside: set[str]
) -> list[Article]:
    """Drop the set-aside questions' docs, except docs a kept question also came with."""
    kept_docs = {d for q in questions if q.group not in set_aside for d in q.docs}
    aside_docs = {d for q in questions if q.group in set_aside for d in q.docs} - kept_docs
    return [a for a in articles if a.id not in aside_docs]


def run_dataset(
    label: str,
    questions: list[Question],
    articles: list[Article],
    set_aside: set[str],
    embedder,
    cache_dir: Path,
    threshold: float | None,
) -> dict:
    index = build_index(articles, embedder, cache_dir, label)
    r = retrieval_eval(index, questions)
    reduced = reduced_corpus(questions, articles, set_aside)
    rindex = build_index(reduced, embedder, cache_dir, f"{label}, set-aside removed")
    a = abstention_eval(rindex, questions, set_aside, threshold)
    return {
        "label": label,
        "sentences": len(index),
        "reduced_sentences": len(rindex),
        "retrieval": r,
        "abstention": a,
        "set_aside": sorted(set_aside),
    }


def print_report(results: list[dict]) -> None:
    print()
    for res in results:
        r, a = res["retrieval"], res["abstention"]
        n = r["answerable"]
        print(
            f"{res['label']}: {res['sentences']} sentences; {n} of {r['questions']} questions have an answer "
            f"string in the corpus"
        )
        print(f"  {'system':<8}{'top-3 %':>9}{'p50 ms':>9}{'p95 ms':>9}")
        for s in SYSTEMS:
            pct = 100.0 * r["hits"][s] / n if n else float("nan")
            print(f"  {s:<8}{pct:9.1f}{percentile(r['ms'][s], 50):9.1f}{percentile(r['ms'][s], 95):9.1f}")
        print(
            f"  abstention (set aside: {', '.join(res['set_aside'])}; {res['reduced_sentences']} sentences left): "
            f"{a['abstain']:.1f} % of {a['unanswerable']} unanswerable; "
            f"false abstention {a['false_abstain']:.1f} % of {a['answerable']} answerable; "
            f"answer p50 {percentile(a['ms'], 50):.1f} ms, p95 {percentile(a['ms'], 95):.1f} ms"
        )
    print()
    print(f"{'system':<8}" + "".join(f"{res['label'][:18]:>20}" for res in results))
    for s in SYSTEMS:
        row = f"{s:<8}"
        for res in results:
            r = res["retrieval"]
            row += f"{100.0 * r['hits'][s] / max(r['answerable'], 1):19.1f}%"
        print(row)
    for key, name in (("abstain", "abstain on unanswerable"), ("false_abstain", "false abstain on answerable")):
        print(f"{name:<28}" + "  ".join(f"{res['label'][:14]}: {res['abstention'][key]:.1f} %" for res in results))
    for res in results:
        ms = res["retrieval"]["ms"]["precis"]
        print(f"precis search latency {res['label']}: p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realtimeqa", type=Path, default=DATA / "realtimeqa" / "realtimeqa_2022.jsonl")
    ap.add_argument("--squad", type=Path, default=DATA / "squad")
    ap.add_argument("--limit", type=int, default=None, help="questions per set (default: all)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default: a temp folder)")
    ap.add_argument("--precision", default="auto", help="embedder precision: auto (the bot's), float32, bfloat16, int8;"
                    " vectors are cached per model, so give each precision its own --cache-dir")
    ap.add_argument("--backend", default="auto", help="embedder runtime: auto (the bot's), torch, onnx; an ONNX"
                    " graph is exported into --cache-dir/onnx (or a temp folder)")
    ap.add_argument(
        "--holdout-months",
        default=",".join(DEFAULT_HOLDOUT_MONTHS),
        help="RealTime QA months (YYYY/MM) set aside for the unanswerable questions",
    )
    ap.add_argument("--squad-holdout", type=int, default=DEFAULT_SQUAD_HOLDOUT, help="set aside every Nth page")
    ap.add_argument("--threshold", type=float, default=None, help="abstention threshold (default: the answerer's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from models.embedder import Embedder

    embedder = Embedder("minilm", threads=args.threads or None, precision=args.precision, backend=args.backend,
                        cache_dir=args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-graph-")))
    print(f"embedder precision: {embedder.precision} (path {embedder.path}), {embedder.workers} worker(s)")
    import torch

    print(f"torch threads: {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-ask-"))
    results = []
    if args.realtimeqa.is_file():
        qs, arts = load_realtimeqa(args.realtimeqa, args.limit)
        months = {m.strip() for m in args.holdout_months.split(",") if m.strip()}
        results.append(run_dataset("RealTime QA 2022", qs, arts, months, embedder, cache_dir, args.threshold))
    else:
        print(f"skipped RealTime QA: {args.realtimeqa} not found")
    if args.squad.is_dir() and any(args.squad.glob("*.jsonl")):
        qs, arts = load_squad(args.squad, args.limit)
        titles = sorted({q.group for q in qs})
        aside = set(titles[args.squad_holdout - 1 :: args.squad_holdout]) if args.squad_holdout > 0 else set()
        results.append(run_dataset("SQuAD v1.1 dev part", qs, arts, aside, embedder, cache_dir, args.threshold))
    else:
        print(f"skipped SQuAD: {args.squad} not found")
    if results:
        print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
