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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.corpus.article import Article  # noqa: E402
from bot.engines.answerer import READER_FEATURES, Answerer, confidence_from, ReaderWeights, Retriever, _ranked, _z  # noqa: E402
from bot.engines import timeframe  # noqa: E402
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
    wrong: list[str] = field(default_factory=list)  # the multiple-choice options that are not an answer
    asked: float | None = None  # when it was asked (epoch s; RealTime QA: the quiz's date); None = now


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
        gold = {str(a).strip().lower() for a in answers}
        wrong = [str(c) for c in obj.get("choices") or [] if str(c).strip() and str(c).strip().lower() not in gold]
        questions.append(
            Question(str(obj["id"]), obj["question"], [str(a) for a in answers], obj["date"][:7], ids, wrong,
                     asked=timeframe.published(obj["date"]))
        )
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
        a = answerer.answer(q.text, now=q.asked)
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


# ------------------------------------------------------- leave-months-out
@dataclass
class Cands:
    """One question's reader candidates on one index: what every fold needs, computed once."""

    support: list  # the retriever's candidates (Support)
    X: np.ndarray  # reader features
    y: np.ndarray  # candidate holds a gold answer
    cov: np.ndarray  # coverage around each candidate (the confidence's first half)
    dense_max: float
    art: np.ndarray  # each candidate's article coverage (the confidence's third part)
    bm25_top: list[int]  # plain BM25's top-3 sentence rows
    fresh: np.ndarray  # each candidate's article freshness (Answerer.freshness, at the quiz date)


def collect(answerer: Answerer, questions: list[Question], bm25: bool = False) -> dict[str, Cands]:
    index = answerer.index
    out: dict[str, Cands] = {}
    for q in questions:
        pat = answer_pattern(q.answers)
        visible, _ = answerer.in_time(q.text, None, q.asked)  # "this week": the week's articles only
        cands, X, comps = answerer.candidates(q.text, 3, visible, q.asked)
        y = np.array([bool(pat and pat.search(c.text)) for c in cands], dtype=bool)
        cov = X[:, READER_FEATURES.index("context")] if len(cands) else np.zeros(0)
        dense_max = float(np.clip(comps["dense"].max(), 0.0, 1.0)) if comps else 0.0
        terms = answerer.retriever.query_terms(q.text)
        by_article: dict[int, float] = {}
        for c in cands:
            if c.article not in by_article:
                by_article[c.article] = answerer.retriever.article_coverage(q.text, c.article, terms)
        art = np.array([by_article[c.article] for c in cands], dtype=np.float64)
        top_b = [int(i) for i in _ranked(index.bm25_scores(q.text), 3)] if bm25 and len(index) else []
        fresh = np.array([answerer.freshness(c.article, q.asked) for c in cands], dtype=np.float64)
        out[q.id] = Cands(cands, X, y, cov, dense_max, art, top_b, fresh)
    return out


def fit_reader(data: list[Cands], l2: float = 0.1) -> ReaderWeights:
    """Conditional logit over each question's candidates: maximise P(a gold-holding candidate ranks first)."""
    from scipy.optimize import minimize

    usable = [d for d in data if d.y.any() and not d.y.all()]
    if not usable:
        return ReaderWeights()

    def loss(w):
        total, grad = l2 * float(w @ w), 2 * l2 * w
        for d in usable:
            z = d.X @ w
            z = z - z.max()
            e = np.exp(z)
            p = e / e.sum()
            pos = p[d.y].sum()
            total -= float(np.log(pos + 1e-12))
            # d(-log sum_pos p)/dw = E_p[x] - E_{p|pos}[x]
            grad = grad + p @ d.X - (p[d.y] @ d.X[d.y]) / (pos + 1e-12)
        return total, grad

    res = minimize(loss, ReaderWeights().vector(), jac=True, method="L-BFGS-B")
    return ReaderWeights.from_vector(res.x)


def confidence_of(d: Cands, w: ReaderWeights) -> tuple[float, np.ndarray]:
    if not d.support:
        return 0.0, np.zeros(0, dtype=np.int64)
    order = np.argsort(-(d.X @ w.vector()), kind="stable")
    return confidence_from(float(d.cov[order[0]]), d.dense_max, float(d.art[order[0]]),
                           float(d.fresh[order[0]])), order


def timed(q: Question) -> bool:
    """Whether the question names its own time ("this week"): then only that span's articles answer it, and
    it has its own abstention threshold (see bot.engines.timeframe)."""
    return Answerer.timeframes and timeframe.window(q.text) is not None


def choose_thresholds(pairs: list[tuple[bool, float, bool]], max_false: float) -> dict[bool, float]:
    """(timed?, confidence, unanswerable?) per question -> a threshold for timed and one for other
    questions, each by :func:`choose_threshold`."""
    out = {}
    for kind in (True, False):
        cu = [c for k, c, u in pairs if k == kind and u]
        ca = [c for k, c, u in pairs if k == kind and not u]
        out[kind] = choose_threshold(cu, ca, max_false)
    return out


def choose_threshold(conf_un: list[float], conf_ans: list[float], max_false: float) -> float:
    """The highest threshold that abstains on at most ``max_false`` of the answerable questions."""
    ans = np.sort(np.asarray(conf_ans))
    if not ans.size:
        return Answerer.DEFAULT_THRESHOLD
    k = int(np.floor(max_false * ans.size))  # at most k answerable confidences may fall under t
    return float(ans[k]) if k < ans.size else float(ans[-1])


def judge(text: str | None, pat, wrong) -> str:
    if text and pat and pat.search(text):
        return "correct"
    if text and wrong and wrong.search(text):
        return "wrong"
    return "vague"


def lmo_eval(
    questions: list[Question], articles: list[Article], embedder, cache_dir: Path, generator=None,
    max_false: float = 0.07, abstractive_limit: int | None = None,
) -> dict:
    """Every figure per held-out month (fit on the other months), then the mean over months."""
    index = build_index(articles, embedder, cache_dir, "RealTime QA 2022 (leave-months-out)")
    matcher = Matcher(index)
    base = Answerer(index)
    months = sorted({q.group for q in questions})
    answerable = [q for q in questions if matcher.in_corpus(answer_pattern(q.answers))]
    t0 = time.perf_counter()
    full = collect(base, answerable, bm25=True)
    print(f"[lmo] candidates for {len(answerable)} questions in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    reduced: dict[str, tuple[dict[str, Cands], set[str], set[str]]] = {}
    for m in months:
        rarts = reduced_corpus(questions, articles, {m})
        rindex = build_index(rarts, embedder, cache_dir, f"without {m}")
        rmatch = Matcher(rindex)
        un = {q.id for q in questions if q.group == m and not rmatch.in_corpus(answer_pattern(q.answers))}
        ans = {q.id for q in questions if q.group != m and rmatch.in_corpus(answer_pattern(q.answers))}
        keep = [q for q in questions if q.id in un or q.id in ans]
        reduced[m] = (collect(Answerer(rindex), keep), un, ans)
    by_id = {q.id: q for q in questions}
    per_month: list[dict] = []
    weights_by_month: dict[str, ReaderWeights] = {}
    for m in months:
        w = fit_reader([full[q.id] for q in answerable if q.group != m])
        weights_by_month[m] = w
        pairs = []
        for m2 in months:
            if m2 == m:
                continue
            data, un, ans = reduced[m2]
            pairs += [(timed(by_id[i]), confidence_of(data[i], w)[0], True) for i in un]
            pairs += [(timed(by_id[i]), confidence_of(data[i], w)[0], False) for i in ans if by_id[i].group != m]
        ts = choose_thresholds(pairs, max_false)
        held = [q for q in answerable if q.group == m]
        row = {"month": m, "n": len(held), "threshold": ts[False], "timed_threshold": ts[True], "weights": w}
        counts = {f"{mode}_{v}": 0 for mode in ("ext", "short", "bm25") for v in ("correct", "wrong", "vague")}
        counts.update(ext_abstained=0, top1=0, top3=0, retr_top3=0, bm25_top3=0, with_short=0)
        items = row["items"] = []  # per question, for reading the misses (--json)
        for q in held:
            d = full[q.id]
            pat, wrong = answer_pattern(q.answers), answer_pattern(q.wrong)
            conf, order = confidence_of(d, w)
            counts["top1"] += bool(d.y[order[:1]].any())
            counts["top3"] += bool(d.y[order[:3]].any())
            counts["retr_top3"] += bool(d.y[:3].any())
            counts["bm25_top3"] += matcher.hit(pat, d.bm25_top[:3])
            counts["bm25_" + judge(index.texts[d.bm25_top[0]] if d.bm25_top else None, pat, wrong)] += 1
            item = {"id": q.id, "question": q.text, "gold": q.answers, "wrong": q.wrong, "confidence": round(conf, 4)}
            items.append(item)
            if conf < ts[timed(q)]:
                counts["ext_abstained"] += 1
                item["judged"] = "abstained"
                continue
            support = [d.support[i] for i in order[:3]]
            text, short, support = base.lead(q.text, support)
            item.update(judged=judge(text, pat, wrong), answer=text, short=short,
                        gold_in_top3=bool(d.y[order[:3]].any()), gold_in_candidates=bool(d.y.any()))
            counts["ext_" + judge(text, pat, wrong)] += 1
            counts["short_" + judge(short, pat, wrong)] += 1
            counts["with_short"] += short is not None
        data, un, ans = reduced[m]
        row["unanswerable"] = len(un)
        row["abstain"] = sum(confidence_of(data[i], w)[0] < ts[timed(by_id[i])] for i in un)
        row["answerable_reduced"] = len(ans)
        row["false_abstain"] = sum(confidence_of(data[i], w)[0] < ts[timed(by_id[i])] for i in ans)
        row["unanswerable_items"] = [
            {"id": i, "question": by_id[i].text, "confidence": round(confidence_of(data[i], w)[0], 4),
             "threshold": ts[timed(by_id[i])], "top": data[i].support[confidence_of(data[i], w)[1][0]].text
             if data[i].support else None} for i in sorted(un)]
        for kind, label in ((True, "timed"), (False, "plain")):
            row[f"un_{label}"] = [bool(confidence_of(data[i], w)[0] < ts[kind]) for i in un if timed(by_id[i]) == kind]
            row[f"ans_{label}"] = [bool(confidence_of(data[i], w)[0] < ts[kind]) for i in ans if timed(by_id[i]) == kind]
        if generator is not None:
            ab = Answerer(index, generator, abstain_threshold=ts[False], timed_threshold=ts[True], reader=w)
            sub = held[:abstractive_limit] if abstractive_limit else held
            for v in ("correct", "wrong", "vague", "abstained", "kept", "short_correct", "short_wrong",
                      "ext_correct", "ext_wrong", "ext_vague", "ext_abstained"):
                counts[f"abs_{v}"] = 0
            ms = row.setdefault("abs_ms", [])
            row["abs_n"] = len(sub)
            for q in sub:
                pat, wrong = answer_pattern(q.answers), answer_pattern(q.wrong)
                t1 = time.perf_counter()
                a = ab.answer(q.text, mode="abstractive", now=q.asked)
                ms.append((time.perf_counter() - t1) * 1000)
                if a.abstained:  # the same confidence: the extractive answer abstains too
                    counts["abs_abstained"] += 1
                    counts["abs_ext_abstained"] += 1
                    continue
                e = ab.answer(q.text, now=q.asked)  # the extractive answer to the same question, for a like-for-like figure
                counts["abs_ext_" + ("abstained" if e.abstained else judge(e.answer, pat, wrong))] += 1
                counts["abs_" + judge(a.answer, pat, wrong)] += 1
                if a.note is None:
                    counts["abs_kept"] += 1
                    j = judge(a.short, pat, wrong)
                    if j != "vague":
                        counts[f"abs_short_{j}"] += 1
        row.update(counts)
        per_month.append(row)
        print(f"[lmo] {m}: {row['n']} answerable, thresholds {ts[False]:.3f} / timed {ts[True]:.3f}, weights {w}",
              file=sys.stderr)
    # The shipped defaults: the same procedure on every month.
    w_all = fit_reader([full[q.id] for q in answerable])
    pairs = []
    for m2 in months:
        data, un, ans = reduced[m2]
        pairs += [(timed(by_id[i]), confidence_of(data[i], w_all)[0], True) for i in un]
        pairs += [(timed(by_id[i]), confidence_of(data[i], w_all)[0], False) for i in ans]
    ts_all = choose_thresholds(pairs, max_false)
    return {"per_month": per_month, "answerable": len(answerable), "weights_all": w_all,
            "threshold_all": ts_all[False], "timed_threshold_all": ts_all[True],
            "max_false": max_false}


def print_lmo(res: dict) -> None:
    pm = res["per_month"]

    def mean(key: str, denom: str = "n") -> float:
        vals = [100.0 * r[key] / r[denom] for r in pm if r.get(denom)]
        return float(np.mean(vals)) if vals else float("nan")

    print()
    print(
        f"RealTime QA 2022, leave-months-out ({len(pm)} folds, one month held out each; reader weights and "
        f"abstention threshold fitted on the other months). {res['answerable']} answerable questions."
    )
    print("Every figure: the held-out month's percentage, mean over the folds (all held-out).")
    print(f"  {'':<34}{'correct':>9}{'wrong':>8}{'vague':>8}{'abst.':>8}")
    print(f"  {'extractive answer text':<34}{mean('ext_correct'):9.1f}{mean('ext_wrong'):8.1f}"
          f"{mean('ext_vague'):8.1f}{mean('ext_abstained'):8.1f}")
    print(f"  {'  its short answer alone':<34}{mean('short_correct'):9.1f}{mean('short_wrong'):8.1f}"
          f"{mean('short_vague'):8.1f}{mean('ext_abstained'):8.1f}   (short answer given: {mean('with_short'):.1f} %)")
    print(f"  {'plain BM25 top-1 sentence':<34}{mean('bm25_correct'):9.1f}{mean('bm25_wrong'):8.1f}"
          f"{mean('bm25_vague'):8.1f}{0.0:8.1f}")
    if "abs_n" in pm[0]:
        print(f"  {'abstractive answer text':<34}{mean('abs_correct', 'abs_n'):9.1f}{mean('abs_wrong', 'abs_n'):8.1f}"
              f"{mean('abs_vague', 'abs_n'):8.1f}{mean('abs_abstained', 'abs_n'):8.1f}"
              f"   (model's answer kept: {mean('abs_kept', 'abs_n'):.1f} %; of all, its short answer right "
              f"{mean('abs_short_correct', 'abs_n'):.1f} %, wrong {mean('abs_short_wrong', 'abs_n'):.1f} %)")
        print(f"  {'  extractive, same questions':<34}{mean('abs_ext_correct', 'abs_n'):9.1f}"
              f"{mean('abs_ext_wrong', 'abs_n'):8.1f}{mean('abs_ext_vague', 'abs_n'):8.1f}"
              f"{mean('abs_ext_abstained', 'abs_n'):8.1f}")
        ms = [x for r in pm for x in r.get("abs_ms", [])]
        print(f"  abstractive latency: p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms "
              f"over {len(ms)} questions")
    print(f"  support hits: top-1 {mean('top1'):.1f} %, top-3 {mean('top3'):.1f} % "
          f"(retriever alone top-3 {mean('retr_top3'):.1f} %, plain BM25 top-3 {mean('bm25_top3'):.1f} %)")
    print(f"  abstention on unanswerable (month's docs set aside): {mean('abstain', 'unanswerable'):.1f} %; "
          f"false abstention on answerable: {mean('false_abstain', 'answerable_reduced'):.1f} %")
    for label, what in (("timed", "questions naming their time (\"this week\")"), ("plain", "the others")):
        un = [x for r in pm for x in r.get(f"un_{label}", [])]
        an = [x for r in pm for x in r.get(f"ans_{label}", [])]
        if un or an:
            print(f"    {what}, pooled over the folds: abstention {100.0 * np.mean(un) if un else float('nan'):.1f} % "
                  f"of {len(un)}; false abstention {100.0 * np.mean(an) if an else float('nan'):.1f} % of {len(an)}")
    print("  per month: " + "; ".join(
        f"{r['month']} n={r['n']} ext {100.0 * r['ext_correct'] / max(r['n'], 1):.0f}% "
        f"abst {100.0 * r['abstain'] / max(r['unanswerable'], 1):.0f}%/{r['unanswerable']} t={r['threshold']:.3f}"
        f"/{r['timed_threshold']:.3f}"
        for r in pm))
    print(f"  fitted on all months (the shipped defaults): reader {res['weights_all']}, "
          f"threshold {res['threshold_all']:.3f}, for questions naming their time {res['timed_threshold_all']:.3f} "
          f"(max false abstention {res['max_false']:.2f} each)")


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
    ap.add_argument("--abstractive", action="store_true", help="also judge abstractive answers (loads the model)")
    ap.add_argument("--abstractive-limit", type=int, default=None, help="abstractive: questions per held-out month")
    ap.add_argument("--gen-dtype", default="auto", help="abstractive model dtype (auto: bfloat16 where native)")
    ap.add_argument("--max-false", type=float, default=0.07,
                    help="threshold rule: the highest that abstains on at most this share of answerable questions")
    ap.add_argument("--lmo-only", action="store_true", help="only the RealTime QA leave-months-out figures")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    ap.add_argument("--age-weight", type=float, default=None,
                    help="the abstention confidence's AGE_WEIGHT (default: the shipped one)")
    ap.add_argument("--no-timeframe", action="store_true",
                    help="ignore a question's own time words (\"this week\"): every article may answer it")
    args = ap.parse_args(argv)
    Answerer.timeframes = not args.no_timeframe
    import bot.engines.answerer as answerer_module

    if args.age_weight is not None:
        answerer_module.AGE_WEIGHT = args.age_weight
    print(f"abstention: freshness weight (AGE_WEIGHT) {answerer_module.AGE_WEIGHT}")
    print("time words (bot.engines.timeframe): " + ("on, measured from the quiz date" if Answerer.timeframes
                                                     else "off"))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from models.embedder import Embedder

    embedder = Embedder("minilm", threads=args.threads or None, precision=args.precision, backend=args.backend,
                        cache_dir=args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-graph-")))
    print(f"embedder precision: {embedder.precision} (path {embedder.path}), {embedder.workers} worker(s)")
    import torch

    print(f"torch threads: {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-ask-"))
    results = []
    lmo = None
    if args.realtimeqa.is_file():
        qs, arts = load_realtimeqa(args.realtimeqa, args.limit)
        generator = None
        if args.abstractive:
            from bot.config import Settings
            from models.generator import Generator

            st = Settings()
            generator = Generator(st.summary_model, cache_dir=st.data_dir / "models", threads=args.threads or 1,
                                  dtype=args.gen_dtype)
            print(f"abstractive: {generator.name}, {str(generator.dtype).removeprefix('torch.')}")
        lmo = lmo_eval(qs, arts, embedder, cache_dir, generator, args.max_false, args.abstractive_limit)
        if not args.lmo_only:
            months = {m.strip() for m in args.holdout_months.split(",") if m.strip()}
            results.append(run_dataset("RealTime QA 2022", qs, arts, months, embedder, cache_dir, args.threshold))
    else:
        print(f"skipped RealTime QA: {args.realtimeqa} not found")
    if args.lmo_only:
        pass
    elif args.squad.is_dir() and any(args.squad.glob("*.jsonl")):
        qs, arts = load_squad(args.squad, args.limit)
        titles = sorted({q.group for q in qs})
        aside = set(titles[args.squad_holdout - 1 :: args.squad_holdout]) if args.squad_holdout > 0 else set()
        results.append(run_dataset("SQuAD v1.1 dev part", qs, arts, aside, embedder, cache_dir, args.threshold))
    else:
        print(f"skipped SQuAD: {args.squad} not found")
    if results:
        print_report(results)
    if lmo:
        print_lmo(lmo)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "lmo": lmo}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
