"""/ask quality the way members use it: live questions and an archive, leave-months-out on RealTime QA.

RealTime QA 2022 (default ../shared/data/realtimeqa/realtimeqa_2022.jsonl): news quiz questions with the
articles that hold their answers; the corpus is every question's articles, deduplicated by URL. Every
question is asked through the real Answerer with ``asked_at`` (the batch CLI's replay): only articles
published by then are read, and "this week" counts back from it. Two shapes of use:

  live      every question asked at its quiz date against the whole file's articles (those published
            later are invisible then); counted where an article the Answerer reads for it then holds its
            answer: published by then and, for a question that names its time ("this week"), in that span
  archive   the questions that do not name their time ("this week", "this year"), asked at the end of the
            period against all articles

and two constructions of questions the corpus cannot answer:

  (a)       a month's questions, asked at their quiz date, with that month's articles removed
  (b)       one half of the period's questions against the other half's articles only: the later half's
            questions asked at their quiz date (the corpus holds only older news), the earlier half's
            untimed questions asked at the end of the period (it holds only later news)
  (c)       the questions that name their time whose answer is only in articles outside that span (the quiz
            came with an older article that names the answer: "Which volcano erupted in Hawaii this week?"
            with a 2022 article on Mauna Loa naming Kilauea), asked at their quiz date against all articles:
            the Answerer reads none of those, so abstaining is right. ``--answerable any`` counts them as
            live instead (the definition before the eighth session of 2026-12-07). Since the ninth session,
            likewise a question naming a year whose answer is only in articles neither of that year nor naming
            it (``Answerer.year_scope``)

Leave-months-out: each month is held out in turn; the reader's weights and the two abstention thresholds
are fitted on the other months' live and archive questions (the highest threshold that abstains on at most
--max-false of them); every figure is the held-out month's, mean over the months. Reported per protocol:
first line correct / wrong / vague / abstained (the answer as the CLI gives it: the short answer and its
sentence; and the first line alone), top-1 / top-3 support hits, plain BM25's top-1 sentence and top-3
(among the articles published by then), false abstention, p50/p95 latency; abstention on (a) and (b). Then
the shipped configuration (the same fit on all months) in each protocol, which is in-sample.

A match is the gold answer string, whole words, case-insensitive; "wrong" is another multiple-choice
option; "vague" is neither.

Also, for issue 30:

  chat      every live question as a member might type it (:func:`chat_form`: a greeting, a mention,
            "@everyone", "pls", "thanks", lower case; one wrapper per question, the same every run),
            with the live question's weights and thresholds
  --reranker  the reranked configuration beside today's: the cross-encoder's score joins the reader's
            features (its weight fitted like theirs) and the confidence (a fourth share), thresholds
            refitted. ``FILE_STEM=PATH`` gives a file weights not trained on its years (the figures of
            a year are then held out for the reranker too); the fusion is fitted leave-periods-out
  several files  year-out as well: fit on every question of the other years (all files), report on
            one year; and the fusion to ship, fitted on all questions (each file scored by its own
            held-out reranker)
  --quarters FILE_STEM  fold that file by quarter (24 months of 2024-2025 would mean 24 folds)

    python benchmarks/ask_quality.py [--realtimeqa FILE [FILE ...]] [--reranker [STEM=]PATH ...]
        [--quarters STEM] [--cache-dir DIR] [--json OUT] [--abstractive] [--abstractive-limit N]
        [--max-false 0.08] [--squad DIR] [--in-sample]

--squad DIR adds retrieval (answer in top 3: BM25, dense, z-sum, precis) and abstention on SQuAD v1.1
paragraphs (every 4th page set aside), which is not news and has no dates.

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
from bot.engines.answerer import READER_FEATURES, Answerer, confidence_from, ReaderWeights, Retriever  # noqa: E402
from bot.index.search import _ranked, _z  # noqa: E402
from bot.engines import timeframe  # noqa: E402
from bot.index.cache import EmbeddingCache  # noqa: E402
from bot.index.sentence_index import SentenceIndex  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ANSWERABLE = "window"  # --answerable: what makes a live question answerable (see build_setup)
ABSTAIN_TARGET: float | None = None  # --abstain-target: thresholds raised until the training (a) and (b) reach it
SYSTEMS = ("bm25", "dense", "z-sum", "precis")
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
def group_of(date: str, by: str = "month") -> str:
    """A question's fold: its quiz month ("2022-06") or quarter ("2024-Q1")."""
    if by == "quarter":
        return f"{date[:4]}-Q{(int(date[5:7]) - 1) // 3 + 1}"
    return date[:7]


def chat_form(q: Question) -> str:
    """The question as a member might type it in a chat: one wrapper per question, picked by its id (the same
    every run): a greeting, a mention, "@everyone", "pls", "thanks"; lower case for half of them."""
    forms = ("hey, {q}", "<@400> {q}", "{q} pls", "@everyone {q}", "hi all, {q} thanks", "<@!123> hey {q}",
             "quick question: {q}", "anyone know {q}")
    h = sum(ord(c) * (i + 1) for i, c in enumerate(q.id))
    text = forms[h % len(forms)].format(q=q.text.rstrip("?") + ("?" if h % 3 else ""))
    return text.lower() if (h // len(forms)) % 2 else text


def load_realtimeqa(path: Path, limit: int | None, by: str = "month") -> tuple[list[Question], list[Article]]:
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
            Question(str(obj["id"]), obj["question"], [str(a) for a in answers],
                     group_of(obj["date"].replace("/", "-"), by), ids, wrong,
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
# Two shapes of use, both replayed with the bot's own ``asked_at`` (Answerer.answer): only articles
# published by then are read, and "this week" counts back from it.
#   live     every question asked at its quiz date against the whole file's articles
#   archive  the questions that do not name their time, asked at the end of the period against all articles
# Unanswerable, two constructions:
#   (a)      a month's questions, asked at their quiz date, with that month's articles removed
#   (b)      one half of the period's questions against the other half's articles only: the later half's
#            questions asked at their quiz date of the earlier half's articles (live), the earlier half's
#            untimed questions asked at the end of the period of the later half's articles (archive)
# Each fold holds one month out: the reader's weights and the abstention thresholds are fitted on the other
# months' live and archive questions; every figure is the held-out month's, through the real Answerer.
DAY = 86400.0


@dataclass
class Cands:
    """One question's reader candidates in one protocol: what every fold's fit needs, computed once."""

    support: list  # the retriever's candidates (Support)
    X: np.ndarray  # reader features
    y: np.ndarray  # candidate holds a gold answer
    cov: np.ndarray  # coverage around each candidate (the confidence's first part)
    dense: np.ndarray  # each candidate's window cosine (the confidence's second part)
    art: np.ndarray  # each candidate's article coverage (the confidence's third part)
    bm25_top: list[int]  # plain BM25's top-3 sentence rows among the articles published by then
    timed: bool  # the question names its time (its own threshold)


class Visible:
    """Answer strings among the articles an index shows at a given time."""

    def __init__(self, answerer: Answerer) -> None:
        ix = answerer.index
        self.answerer = answerer
        self.texts = []
        for a in range(len(ix.articles)):
            rows = ix.rows(a)
            self.texts.append("\n".join(ix.texts[i].replace("\n", " ") for i in range(rows.start, rows.stop)))
        self.joined = "\n".join(self.texts)

    def mask(self, asked_at: float, question: str = "") -> np.ndarray:
        return self.answerer.in_time(question, None, None, asked_at=asked_at)[0]

    def has(self, pat: re.Pattern | None, asked_at: float, question: str = "") -> bool:
        """Whether an article the index shows at ``asked_at`` holds ``pat``; with ``question``, only the
        articles the Answerer reads for it then (a question that names its time: that span's articles)."""
        if not pat or not pat.search(self.joined):
            return False
        return any(pat.search(self.texts[a]) for a in np.flatnonzero(self.mask(asked_at, question)))


def collect(answerer: Answerer, questions: list[Question], asked: dict[str, float], bm25: bool = False
            ) -> dict[str, Cands]:
    index = answerer.index
    out: dict[str, Cands] = {}
    for q in questions:
        t = asked[q.id]
        pat = answer_pattern(q.answers)
        visible, span = answerer.in_time(q.text, None, None, asked_at=t)
        cands, X, _ = answerer.candidates(q.text, 3, visible, t)
        y = np.array([bool(pat and pat.search(c.text)) for c in cands], dtype=bool)
        cov = X[:, READER_FEATURES.index("context")] if len(cands) else np.zeros(0)
        dense = np.array([c.dense for c in cands], dtype=np.float64)
        art = np.array([c.article_coverage for c in cands], dtype=np.float64)
        top_b: list[int] = []
        if bm25 and len(index):
            bm = np.asarray(index.bm25_scores(q.text), dtype=np.float64)
            seen = answerer.in_time("", None, None, asked_at=t)[0][index.sent_article]
            top_b = [int(i) for i in _ranked(np.where(seen, bm, -np.inf), 3) if seen[i]]
        out[q.id] = Cands(cands, X, y, cov, dense, art, top_b, span is not None)
    return out


RR = READER_FEATURES.index("reranker")


def without_reranker(X: np.ndarray) -> np.ndarray:
    X = X.copy()
    X[:, RR] = 0.0
    return X


def fit_reader(data: list[Cands], l2: float = 0.1, reranked: bool = False) -> ReaderWeights:
    """Conditional logit over each question's candidates: maximise P(a gold-holding candidate ranks first).
    ``reranked``: with the reranker's score as a feature (else its column is left out)."""
    from scipy.optimize import minimize

    usable = [d if reranked else Cands(d.support, without_reranker(d.X), d.y, d.cov, d.dense, d.art, d.bm25_top,
                                       d.timed)
              for d in data if d.y.any() and not d.y.all()]
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


def confidence_of(d: Cands, w: ReaderWeights, reranked: bool = False) -> tuple[float, np.ndarray]:
    """The confidence the Answerer computes for this question under reader weights ``w`` (no model call)."""
    if not d.support:
        return 0.0, np.zeros(0, dtype=np.int64)
    X = d.X if reranked else without_reranker(d.X)
    order = np.argsort(-(X @ w.vector()), kind="stable")
    answers = (float(1.0 / (1.0 + np.exp(-X[order[0], RR])))
               if reranked and Answerer.RERANKER_IN_CONFIDENCE else None)
    return confidence_from(float(d.cov[order[0]]), float(d.dense[order[0]]), float(d.art[order[0]]), answers), order


def choose_thresholds(pairs: list[tuple[bool, float]], max_false: float) -> dict[bool, float]:
    """(timed?, confidence) of answerable questions -> a threshold for timed and one for other questions,
    each the highest that abstains on at most ``max_false`` of them (:func:`choose_threshold`)."""
    return {kind: choose_threshold([], [c for k, c in pairs if k == kind], max_false) for kind in (True, False)}


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


@dataclass
class Setup:
    """Every index, question set and candidate list of the protocols (built once, shared by the folds)."""

    months: list[str]
    by_id: dict[str, Question]
    end: float  # the end of the period: when the archive is asked
    full: Answerer
    live: dict[str, Cands]  # answerable at the quiz date
    archive: dict[str, Cands]  # untimed, answerable at the end
    a_answerer: dict[str, Answerer]  # month -> the index without that month's articles
    a_un: dict[str, list[str]]  # month -> its questions that index cannot answer at their quiz date
    b_answerer: dict[str, Answerer]  # "old" (the first half's articles), "new" (the second half's)
    b_un: dict[str, tuple[str, str]]  # question id -> (which half index, "live" or "archive")
    halves: tuple[list[str], list[str]]
    c_un: list[str] = field(default_factory=list)  # naming their time or a year; answer only outside it (c)
    answerable: str = "window"  # the definition live_q was built with (ANSWERABLE)
    live_rr: dict[str, Cands] | None = None  # the same questions' candidates as the reranker sees them
    archive_rr: dict[str, Cands] | None = None
    span_reader: object | None = None  # --span: the short answer also read by this model (never trained on the file)


def build_setup(questions: list[Question], articles: list[Article], embedder, cache_dir: Path, reranker=None,
                label: str = "RealTime QA", answerable: str | None = None) -> Setup:
    """``reranker``: scores every candidate once here (the reader's ``reranker`` column); the folds choose
    whether to use it."""
    by_id = {q.id: q for q in questions}
    months = sorted({q.group for q in questions})
    t0 = time.perf_counter()
    full = Answerer(build_index(articles, embedder, cache_dir, f"{label}, all articles"), reranker=reranker)
    pub = full.retriever.published
    end = max(max(q.asked for q in questions if q.asked is not None), float(np.nanmax(pub)))
    vis = Visible(full)
    # A question that names its time ("this week") is answerable live only where an article of that span
    # holds its answer: the Answerer reads no other (ANSWERABLE = "window", the default); one naming a year,
    # only where an article of that year or naming it does (Answerer.year_scope, in Answerer.in_time). Those whose answer
    # is only in older articles form construction (c). ANSWERABLE = "any" (--answerable any) is the
    # earlier definition: the answer in any article published by the quiz date.
    any_q = [q for q in questions if vis.has(answer_pattern(q.answers), q.asked)]
    live_q = any_q if (answerable or ANSWERABLE) == "any" else [q for q in any_q
                                                if vis.has(answer_pattern(q.answers), q.asked, q.text)]
    live_ids = {q.id for q in live_q}
    c_un = [q.id for q in any_q if q.id not in live_ids]
    arch_q = [q for q in questions if not timeframe.names_time(q.text) and vis.has(answer_pattern(q.answers), end)]
    full.reranker = None  # today's candidates (Answerer.CANDIDATES), then the reranker's (RERANK_POOL)
    live = collect(full, live_q, {q.id: q.asked for q in live_q}, bm25=True)
    archive = collect(full, arch_q, {q.id: end for q in arch_q}, bm25=True)
    live_rr = archive_rr = None
    if reranker is not None:
        full.reranker = reranker
        live_rr = collect(full, live_q, {q.id: q.asked for q in live_q})
        archive_rr = collect(full, arch_q, {q.id: end for q in arch_q})
    print(f"[setup] live {len(live)} / archive {len(archive)} answerable questions, candidates in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    a_answerer, a_un = {}, {}
    for m in months:
        ans = Answerer(build_index(reduced_corpus(questions, articles, {m}), embedder, cache_dir, f"without {m}"))
        v = Visible(ans)
        a_answerer[m] = ans
        a_un[m] = [q.id for q in questions if q.group == m and not v.has(answer_pattern(q.answers), q.asked)]
    first = months[: (len(months) + 1) // 2]
    second = months[len(first):]
    b_answerer, b_un = {}, {}
    for name, keep_months in (("old", first), ("new", second)):
        aside = set(months) - set(keep_months)
        ans = Answerer(build_index(reduced_corpus(questions, articles, aside), embedder, cache_dir,
                                   f"{name} half's articles only ({', '.join(keep_months)})"))
        b_answerer[name] = ans
        v = Visible(ans)
        for q in questions:
            if name == "old" and q.group in second and not v.has(answer_pattern(q.answers), q.asked):
                b_un[q.id] = ("old", "live")
            if (name == "new" and q.group in first and not timeframe.names_time(q.text)
                    and not v.has(answer_pattern(q.answers), end)):
                b_un[q.id] = ("new", "archive")
    return Setup(months, by_id, end, full, live, archive, a_answerer, a_un, b_answerer, b_un, (first, second),
                 c_un, answerable or ANSWERABLE, live_rr, archive_rr)


def configure(ans: Answerer, w: ReaderWeights, ts: dict[bool, float], reranker=None) -> Answerer:
    """The Answerer as it ships with these weights and thresholds: with ``reranker`` (its own weights and
    thresholds) or without (today's ranking)."""
    ans.reranker = reranker
    ans._rerank_failed = False  # noqa: SLF001
    ans.span_reader = None  # the rules' phrase; evaluate() reads the span reader's beside it
    if reranker is None:
        ans.reader.weights = w
        ans.abstain_threshold, ans.timed_threshold = ts[False], ts[True]
    else:
        ans.reranked_weights = w
        ans.reranked_threshold, ans.reranked_timed_threshold = ts[False], ts[True]
    return ans


def unanswerable_rows(st: Setup, months: set[str]) -> dict[str, list[tuple[str, Answerer, float]]]:
    """Constructions (a), (b) and (c) of ``months``: (question id, the answerer over the corpus it meets, when
    it is asked)."""
    return {"a": [(i, st.a_answerer[st.by_id[i].group], st.by_id[i].asked) for m in months for i in st.a_un.get(m, [])],
            "b": [(i, st.b_answerer[h], st.by_id[i].asked if shape == "live" else st.end)
                  for i, (h, shape) in st.b_un.items() if st.by_id[i].group in months],
            "c": [(i, st.full, st.by_id[i].asked) for i in st.c_un if st.by_id[i].group in months]}


def raise_to_target(train: list[tuple[Setup, set[str]]], w: ReaderWeights, ts: dict[bool, float], target: float
                    ) -> tuple[dict[bool, float], float]:
    """Both thresholds raised by the smallest common delta (steps of 0.005) at which the training periods' (a)
    and (b), pooled, each abstain on at least ``target``: issue 30's abstention bar as the fitting rule, held
    out like the rest. (ts + delta, delta); delta 0.5 at most."""
    confs: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}  # (confidence, its threshold) or (-inf, .)
    for st, months in train:
        rows = unanswerable_rows(st, months)
        for key in ("a", "b"):
            for qid, ans, when in rows[key]:
                text = st.by_id[qid].text
                a = configure(ans, w, ts).answer(text, asked_at=when)
                t = ts[timeframe.window(text) is not None]
                confs[key].append((-np.inf if a.abstained else a.confidence, t))
    for step in range(0, 101):
        delta = step * 0.005
        if all(not v or np.mean([c < t + delta for c, t in v]) >= target for v in confs.values()):
            break
    return {k: v + delta for k, v in ts.items()}, delta


def evaluate(st: Setup, months: set[str], w: ReaderWeights, ts: dict[bool, float], generator=None,
             abstractive_limit: int | None = None, reranker=None) -> dict:
    """The real Answerer, configured with ``w`` and ``ts`` (and ``reranker``, or today's ranking without),
    on the questions of ``months`` in every protocol; "chat" is live with each question in its chat form."""
    out: dict = {}
    index = st.full.index
    for proto, cands in (("live", st.live), ("archive", st.archive), ("chat", st.live)):
        ans = configure(st.full, w, ts, reranker)
        c = {k: 0 for k in ("n", "correct", "wrong", "vague", "abstained", "first_correct", "first_wrong",
                            "first_vague", "top1", "top3", "bm25_correct", "bm25_wrong", "bm25_vague", "bm25_top3",
                            "with_short", "support_shown", "support_extra_hit", "span_first_correct",
                            "span_first_wrong", "span_first_vague", "span_with_short", "spanonly_first_correct",
                            "spanonly_first_wrong", "spanonly_first_vague", "spanonly_with_short")}
        ms: list[float] = []
        items = []
        for qid, d in cands.items():
            q = st.by_id[qid]
            if q.group not in months:
                continue
            pat, wrong = answer_pattern(q.answers), answer_pattern(q.wrong)
            when = st.end if proto == "archive" else q.asked
            t = time.perf_counter()
            a = ans.answer(chat_form(q) if proto == "chat" else q.text, asked_at=when)
            ms.append((time.perf_counter() - t) * 1000)
            c["n"] += 1
            c["bm25_top3"] += any(pat.search(index.texts[r]) for r in d.bm25_top[:3]) if pat else 0
            c["bm25_" + judge(index.texts[d.bm25_top[0]] if d.bm25_top else None, pat, wrong)] += 1
            item = {"id": qid, "question": q.text, "gold": q.answers, "confidence": round(a.confidence, 4)}
            items.append(item)
            if a.abstained:
                c["abstained"] += 1
                item["judged"] = "abstained"
                continue
            hits = [bool(pat and pat.search(s.text)) for s in a.support]
            c["top1"] += any(hits[:1])
            c["top3"] += any(hits[:3])
            j, first = judge(a.answer, pat, wrong), judge(a.lines[0], pat, wrong)
            c[j] += 1
            c["first_" + first] += 1
            c["with_short"] += a.short is not None
            c["support_shown"] += len(a.support)
            c["support_extra_hit"] += sum(hits[1:])
            item.update(judged=j, first=first, answer=a.answer)
            if st.span_reader is not None:  # the same answer with the span reader's phrase (ranking unchanged)
                ans.span_reader, ans._span_failed = st.span_reader, False  # noqa: SLF001
                for mode, key in (("agree", "span_"), ("span", "spanonly_")):
                    ans.PHRASE_MODE = mode
                    text, short, _ = ans.lead(a.question, list(a.support))
                    got = judge(text.split("\n")[0], pat, wrong)
                    c[key + "first_" + got] += 1
                    c[key + "with_short"] += short is not None
                    item.update({key + "first": got, key + "line": text.split("\n")[0]})
                ans.span_reader = None
                del ans.PHRASE_MODE  # back to the class's
        c["ms"] = ms
        out[proto] = c
        out[proto + "_items"] = items
    # unanswerable
    for key, rows in unanswerable_rows(st, months).items():
        n = abst = 0
        items = []
        for qid, ans, when in rows:
            a = configure(ans, w, ts, reranker).answer(st.by_id[qid].text, asked_at=when)
            n += 1
            abst += a.abstained
            items.append({"id": qid, "question": st.by_id[qid].text, "abstained": a.abstained,
                          "confidence": round(a.confidence, 4), "answer": None if a.abstained else a.answer})
        out[f"un_{key}"] = {"n": n, "abstained": abst}
        out[f"un_{key}_items"] = items
    if generator is not None:
        ab = configure(st.full, w, ts)
        ab = Answerer(index, generator, abstain_threshold=ts[False], timed_threshold=ts[True], reader=w,
                      previous=ab)
        c = {k: 0 for k in ("n", "correct", "wrong", "vague", "abstained", "kept", "ext_correct", "ext_wrong",
                            "first_correct", "first_wrong", "ext_first_correct", "ext_first_wrong")}
        ms = []
        per_month: dict[str, int] = {}
        for qid in st.live:
            q = st.by_id[qid]
            if q.group not in months or per_month.get(q.group, 0) >= (abstractive_limit or 10 ** 9):
                continue
            per_month[q.group] = per_month.get(q.group, 0) + 1
            pat, wrong = answer_pattern(q.answers), answer_pattern(q.wrong)
            t = time.perf_counter()
            a = ab.answer(q.text, mode="abstractive", asked_at=q.asked)
            ms.append((time.perf_counter() - t) * 1000)
            c["n"] += 1
            if a.abstained:
                c["abstained"] += 1
                continue
            e = ab.answer(q.text, asked_at=q.asked)
            c["ext_" + judge(e.answer, pat, wrong)] = c.get("ext_" + judge(e.answer, pat, wrong), 0) + 1
            c[judge(a.answer, pat, wrong)] += 1
            c["kept"] += a.note is None
            # the first line, what a member reads first: the short answer where one leads
            for key, x in (("first_", a), ("ext_first_", e)):
                first = x.short or x.answer.split("\n")[0]
                c[key + judge(first, pat, wrong)] = c.get(key + judge(first, pat, wrong), 0) + 1
        c["ms"] = ms
        out["abstractive"] = c
    return out


def train_cands(sts: list[Setup], keep, reranked: bool = False) -> list[Cands]:
    """The live and archive candidates of every setup's questions for which ``keep(question)`` holds (as the
    reranker sees them with ``reranked``)."""
    return [d for st in sts
            for src in ((st.live_rr, st.archive_rr) if reranked else (st.live, st.archive))
            for i, d in src.items() if keep(st.by_id[i])]


def fit_on(train: list[Cands], max_false: float, reranked: bool = False) -> tuple[ReaderWeights, dict[bool, float]]:
    """Reader weights and thresholds from these live and archive candidates."""
    w = fit_reader(train, reranked=reranked)
    pairs = [(d.timed, confidence_of(d, w, reranked)[0]) for d in train]
    return w, choose_thresholds(pairs, max_false)


def fit(st: Setup, months: set[str], max_false: float, reranked: bool = False
        ) -> tuple[ReaderWeights, dict[bool, float]]:
    """Reader weights and thresholds from the live and archive questions of ``months``."""
    return fit_on(train_cands([st], lambda q: q.group in months, reranked), max_false, reranked)


def lmo_eval(st: Setup, generator=None, max_false: float = 0.08, abstractive_limit: int | None = None,
             reranker=None, in_sample: bool = False) -> dict:
    """Every figure per held-out month (fit on the other months), then the mean over months; ``reranker``:
    the reranked configuration (else today's ranking)."""
    folds = []
    rr = reranker is not None
    for m in st.months:
        w, ts = fit(st, set(st.months) - {m}, max_false, rr)
        delta = 0.0
        if ABSTAIN_TARGET is not None and not rr:
            ts, delta = raise_to_target([(st, set(st.months) - {m})], w, ts, ABSTAIN_TARGET)
        res = evaluate(st, {m}, w, ts, generator, abstractive_limit, reranker)
        res.update(month=m, weights=w, thresholds=ts, raised=delta)
        folds.append(res)
        print(f"[lmo{' reranked' if rr else ''}] {m}: thresholds {ts[False]:.3f} / timed {ts[True]:.3f} "
              f"(raised {delta:.3f}), "
              f"weights {w}", file=sys.stderr)
    w_all, ts_all = fit(st, set(st.months), max_false, rr)
    # in-sample: the configuration that ships, on the questions it was fitted on (optional: it doubles the time)
    shipped = evaluate(st, set(st.months), w_all, ts_all, reranker=reranker) if in_sample else None
    return {"folds": folds, "shipped": shipped, "weights_all": w_all, "thresholds_all": ts_all,
            "max_false": max_false, "end": st.end, "halves": st.halves,
            "counts": {"live": len(st.live), "archive": len(st.archive),
                       "a": sum(len(v) for v in st.a_un.values()), "b": len(st.b_un),
                       "c": len(st.c_un), "answerable": st.answerable}}


def year_out_eval(setups: list[Setup], year: str, max_false: float, reranker=None) -> dict:
    """Fit on every question of the other years (all files), report on ``year``'s questions: months of one
    year share stories, so this is the harder held-out figure. ``reranker``: the reranker for ``year``'s
    file, which must not have been trained on ``year``."""
    rr = reranker is not None
    w, ts = fit_on(train_cands([s for s in setups if not rr or s.live_rr is not None],
                               lambda q: not q.group.startswith(year), rr), max_false, rr)
    st = next(s for s in setups if any(m.startswith(year) for m in s.months))
    months = {m for m in st.months if m.startswith(year)}
    delta = 0.0
    if ABSTAIN_TARGET is not None and not rr:
        train = [(s, {m for m in s.months if not m.startswith(year)}) for s in setups]
        ts, delta = raise_to_target([(s, ms) for s, ms in train if ms], w, ts, ABSTAIN_TARGET)
    res = evaluate(st, months, w, ts, reranker=reranker)
    res.update(year=year, weights=w, thresholds=ts, raised=delta)
    print(f"[year-out{' reranked' if rr else ''}] {year}: thresholds {ts[False]:.3f} / timed {ts[True]:.3f} "
          f"(raised {delta:.3f}), "
          f"weights {w}", file=sys.stderr)
    return res


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else float("nan")


def metrics(folds: list[dict]) -> dict[str, float]:
    """The issue's figures from held-out folds: each a mean over the folds of the fold's percentage."""

    def mean(proto: str, key: str, den: str = "n") -> float:
        vals = [_pct(f[proto][key], f[proto][den]) for f in folds if f[proto][den]]
        return float(np.mean(vals)) if vals else float("nan")

    out = {}
    for proto in ("live", "archive", "chat"):
        for key in ("correct", "wrong", "vague", "abstained", "first_correct", "first_wrong", "first_vague", "top1",
                    "top3", "bm25_correct", "bm25_top3", "span_first_correct", "span_first_wrong", "with_short",
                    "span_with_short", "spanonly_first_correct", "spanonly_first_wrong", "spanonly_with_short"):
            out[f"{proto}.{key}"] = mean(proto, key)
        n = sum(f[proto]["n"] - f[proto]["abstained"] for f in folds)
        out[f"{proto}.support_shown"] = sum(f[proto]["support_shown"] for f in folds) / n if n else float("nan")
        out[f"{proto}.n"] = sum(f[proto]["n"] for f in folds)
        ms = [x for f in folds for x in f[proto]["ms"]]
        out[f"{proto}.p50"], out[f"{proto}.p95"] = percentile(ms, 50), percentile(ms, 95)
    for key in ("a", "b", "c"):
        vals = [_pct(f[f"un_{key}"]["abstained"], f[f"un_{key}"]["n"]) for f in folds if f[f"un_{key}"]["n"]]
        out[f"un_{key}"] = float(np.mean(vals)) if vals else float("nan")
        out[f"un_{key}.n"] = sum(f[f"un_{key}"]["n"] for f in folds)
    return out


TABLE_ROWS = (
    ("live", "answer right (short answer + its sentence)", "correct"), ("live", "first line alone right", "first_correct"),
    ("live", "wrong (answer)", "wrong"), ("live", "wrong (first line)", "first_wrong"), ("live", "vague (answer)", "vague"),
    ("live", "abstained", "abstained"), ("live", "support top-1 holds the answer", "top1"),
    ("live", "support top-3 holds the answer", "top3"), ("live", "plain BM25 top-1 sentence right", "bm25_correct"),
    ("archive", "answer right (short answer + its sentence)", "correct"),
    ("archive", "first line alone right", "first_correct"), ("archive", "wrong (answer)", "wrong"),
    ("archive", "wrong (first line)", "first_wrong"), ("archive", "abstained", "abstained"),
    ("archive", "support top-1 holds the answer", "top1"), ("archive", "support top-3 holds the answer", "top3"),
    ("archive", "plain BM25 top-1 sentence right", "bm25_correct"),
    ("chat", "answer right (short answer + its sentence)", "correct"), ("chat", "first line alone right", "first_correct"),
    ("chat", "wrong (answer)", "wrong"), ("chat", "abstained", "abstained"),
)
SPAN_ROWS = tuple(
    row for proto in ("live", "archive", "chat") for row in (
        (proto, "first line alone right, span reader + rules agreeing (--span)", "span_first_correct"),
        (proto, "wrong (first line), span reader + rules agreeing", "span_first_wrong"),
        (proto, "first line alone right, span reader (shipped, kept whole)", "spanonly_first_correct"),
        (proto, "wrong (first line), span reader (shipped)", "spanonly_first_wrong"),
        (proto, "a short answer leads: rules / agreeing / span reader (shipped)", None)))


def print_table(title: str, cols: list[tuple[str, dict[str, float]]], spans: bool = False) -> None:
    """One row per figure, one column per configuration (today's ranking, the reranker)."""
    print()
    print(title)
    print(f"| protocol | figure | " + " | ".join(name for name, _ in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for proto, label, key in TABLE_ROWS + (SPAN_ROWS if spans else ()):
        if key is None:
            print(f"| {proto} | {label} | " + " | ".join(
                f"{m[f'{proto}.with_short']:.1f} / {m[f'{proto}.span_with_short']:.1f} / "
                f"{m[f'{proto}.spanonly_with_short']:.1f} %" for _, m in cols) + " |")
            continue
        print(f"| {proto} | {label} | " + " | ".join(f"{m[f'{proto}.{key}']:.1f} %" for _, m in cols) + " |")
    for proto in ("live", "archive"):
        print(f"| {proto} | supporting sentences shown per answer | "
              + " | ".join(f"{m[f'{proto}.support_shown']:.2f}" for _, m in cols) + " |")
    for key, label in (("un_a", "abstains on (a) a period's questions without its articles"),
                       ("un_b", "abstains on (b) one half's questions, the other half's articles"),
                       ("un_c", "abstains on (c) timed or year-naming questions answered only outside their window")):
        if not any(m[key + ".n"] for _, m in cols):
            continue
        print(f"| unanswerable | {label} | " + " | ".join(f"{m[key]:.1f} % of {m[key + '.n']}" for _, m in cols) + " |")
    print("| live | /ask p50 / p95 (ms, whole corpus of the file) | "
          + " | ".join(f"{m['live.p50']:.0f} / {m['live.p95']:.0f}" for _, m in cols) + " |")
    print("| | questions (live / archive / chat) | "
          + " | ".join(f"{m['live.n']} / {m['archive.n']} / {m['chat.n']}" for _, m in cols) + " |")


def print_lmo(res: dict) -> None:
    folds = res["folds"]

    def mean(proto: str, key: str, den: str = "n") -> float:
        vals = [_pct(f[proto][key], f[proto][den]) for f in folds if f[proto][den]]
        return float(np.mean(vals)) if vals else float("nan")

    first, second = res["halves"]
    c = res["counts"]
    print()
    print(f"RealTime QA, leave-periods-out ({len(folds)} folds; reader weights and thresholds fitted on the "
          f"other months' live and archive questions; max false abstention {res['max_false']:.2f}).")
    print("Every figure below is the held-out month's, mean over the folds, through the real Answerer "
          "with asked_at.")
    print(f"  live: {c['live']} questions asked at their quiz date (later articles hidden) whose answer is in an "
          f"article published by then" + (", within the span the question names, if any"
                                          if c.get("answerable") == "window" else ""))
    print(f"  archive: {c['archive']} questions naming no time, asked at the end of the period "
          f"({time.strftime('%Y-%m-%d', time.gmtime(res['end']))}), answer in the corpus")
    print(f"  (a): {c['a']} questions with their month's articles removed; (b): {c['b']} questions against the "
          f"other half's articles ({'-'.join(first[::max(len(first) - 1, 1)])} | "
          f"{'-'.join(second[::max(len(second) - 1, 1)]) or 'none'}); (c): {c.get('c', 0)} "
          f"questions that name their time or a year, answered only by articles outside it (answerability: {c.get('answerable', '?')})")
    head = f"  {'':<30}{'correct':>9}{'wrong':>8}{'vague':>8}{'abst.':>8}"
    for proto in ("live", "archive"):
        print()
        print(f"{proto}:")
        print(head)
        print(f"  {'answer (short + its sentence)':<30}{mean(proto, 'correct'):9.1f}{mean(proto, 'wrong'):8.1f}"
              f"{mean(proto, 'vague'):8.1f}{mean(proto, 'abstained'):8.1f}")
        print(f"  {'first line alone':<30}{mean(proto, 'first_correct'):9.1f}{mean(proto, 'first_wrong'):8.1f}"
              f"{mean(proto, 'first_vague'):8.1f}{mean(proto, 'abstained'):8.1f}"
              f"   (a short answer leads: {mean(proto, 'with_short'):.1f} %)")
        if any(f[proto]["span_first_correct"] + f[proto]["span_first_wrong"] + f[proto]["span_first_vague"]
               for f in folds):
            for key, name in (("span_", "first line, span + rules agree"),
                              ("spanonly_", "first line, span (shipped)")):
                print(f"  {name:<30}{mean(proto, key + 'first_correct'):9.1f}"
                      f"{mean(proto, key + 'first_wrong'):8.1f}{mean(proto, key + 'first_vague'):8.1f}"
                      f"{mean(proto, 'abstained'):8.1f}   "
                      f"(a short answer leads: {mean(proto, key + 'with_short'):.1f} %)")
        print(f"  {'plain BM25 top-1 sentence':<30}{mean(proto, 'bm25_correct'):9.1f}{mean(proto, 'bm25_wrong'):8.1f}"
              f"{mean(proto, 'bm25_vague'):8.1f}{0.0:8.1f}")
        print(f"  support hits: top-1 {mean(proto, 'top1'):.1f} %, top-3 {mean(proto, 'top3'):.1f} % "
              f"(plain BM25 top-3 {mean(proto, 'bm25_top3'):.1f} %; +{mean(proto, 'top3') - mean(proto, 'bm25_top3'):.1f})")
        print(f"  false abstention: {mean(proto, 'abstained'):.1f} %")
        ms = [x for f in folds for x in f[proto]["ms"]]
        print(f"  latency: p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms over {len(ms)} answers")
    print()
    for key, what in (("a", "(a) a month's questions without that month's articles"),
                      ("b", "(b) one half's questions against the other half's articles"),
                      ("c", "(c) timed or year-naming questions answered only outside their window")):
        if not any(f[f"un_{key}"]["n"] for f in folds):
            continue
        vals = [_pct(f[f"un_{key}"]["abstained"], f[f"un_{key}"]["n"]) for f in folds if f[f"un_{key}"]["n"]]
        pooled = sum(f[f"un_{key}"]["abstained"] for f in folds), sum(f[f"un_{key}"]["n"] for f in folds)
        print(f"abstention on unanswerable, {what}: {np.mean(vals):.1f} % (mean over months; pooled "
              f"{_pct(*pooled):.1f} % of {pooled[1]}); per month "
              + ", ".join(f"{f['month'][5:]}: {_pct(f[f'un_{key}']['abstained'], f[f'un_{key}']['n']):.0f}%"
                          f"/{f[f'un_{key}']['n']}" for f in folds))
    if "abstractive" in folds[0]:
        ab = [f["abstractive"] for f in folds]

        def amean(key: str) -> float:
            return float(np.mean([_pct(x[key], x["n"]) for x in ab if x["n"]]))

        ms = [x for a in ab for x in a["ms"]]
        print(f"abstractive (live, held-out): correct {amean('correct'):.1f} %, wrong {amean('wrong'):.1f} %, "
              f"abstained {amean('abstained'):.1f} %, model's answer kept {amean('kept'):.1f} %; extractive on the "
              f"same questions correct {amean('ext_correct'):.1f} %, wrong {amean('ext_wrong'):.1f} %; latency p50 "
              f"{percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms over {len(ms)}")
        print(f"  first line alone: abstractive correct {amean('first_correct'):.1f} %, wrong "
              f"{amean('first_wrong'):.1f} %; extractive correct {amean('ext_first_correct'):.1f} %, wrong "
              f"{amean('ext_first_wrong'):.1f} %")
    print("per month (live correct / archive correct / (a) / (b) abstention): " + "; ".join(
        f"{f['month']} {_pct(f['live']['correct'], f['live']['n']):.0f}/{_pct(f['archive']['correct'], f['archive']['n']):.0f}"
        f"/{_pct(f['un_a']['abstained'], f['un_a']['n']):.0f}/{_pct(f['un_b']['abstained'], f['un_b']['n']):.0f} "
        f"t={f['thresholds'][False]:.3f}/{f['thresholds'][True]:.3f}" for f in folds))
    sh = res["shipped"]
    if sh is None:
        return
    print()
    print(f"Shipped configuration (fitted on all months; IN-SAMPLE, not a held-out figure): reader "
          f"{res['weights_all']}, threshold {res['thresholds_all'][False]:.3f}, timed "
          f"{res['thresholds_all'][True]:.3f}")
    for proto in ("live", "archive"):
        x = sh[proto]
        print(f"  {proto}: correct {_pct(x['correct'], x['n']):.1f} %, wrong {_pct(x['wrong'], x['n']):.1f} %, "
              f"vague {_pct(x['vague'], x['n']):.1f} %, abstained {_pct(x['abstained'], x['n']):.1f} %; "
              f"first line correct {_pct(x['first_correct'], x['n']):.1f} %; top-3 {_pct(x['top3'], x['n']):.1f} % "
              f"(BM25 {_pct(x['bm25_top3'], x['n']):.1f} %)")
    for key in ("a", "b", "c"):
        x = sh[f"un_{key}"]
        if not x["n"]:
            continue
        print(f"  ({key}) abstention {_pct(x['abstained'], x['n']):.1f} % of {x['n']}")


def per_file(specs: list[str], files: list[Path], load, what: str) -> dict[str, object]:
    """``[STEM=]PATH`` options -> the model loaded for each file's stem (a bare PATH serves every file
    without its own); {} when none is given."""
    out: dict[str, object] = {}
    default = None
    for spec in specs:
        stem, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        model = load(path)
        print(f"{what} {path} for {stem or 'every file'}: {model.path}")
        if stem:
            out[stem] = model
        else:
            default = model
    if specs:
        for f in files:
            out.setdefault(f.stem, default)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realtimeqa", type=Path, nargs="+",
                    default=[DATA / "realtimeqa" / "realtimeqa_2022.jsonl"],
                    help="one or more RealTime QA files; with several, also year-out (fit on the other years)")
    ap.add_argument("--reranker", action="append", default=[], metavar="[FILE_STEM=]PATH",
                    help="also measure the reranked configuration with these cross-encoder weights (a folder); "
                         "FILE_STEM=PATH gives one file its own weights, e.g. one not trained on that file's years "
                         "(realtimeqa_2022=/tmp/rr/f22); a bare PATH serves every file")
    ap.add_argument("--span", action="append", default=[], metavar="[FILE_STEM=]PATH",
                    help="also read the first line's short answer with this span reader (a folder written by "
                         "training/span.py), beside the phrase rules, on the same answers; FILE_STEM=PATH as for "
                         "--reranker (give each file weights not trained on its years)")
    ap.add_argument("--quarters", action="append", default=[], metavar="FILE_STEM",
                    help="fold this file's questions by quarter, not month (the (a) construction then removes a "
                         "quarter's articles); e.g. realtimeqa_2024_2025")
    ap.add_argument("--eval-years", default="",
                    help="report only these years (comma-separated; default all): the other files are still read, "
                         "for the year-out fit and the fusion to ship")
    ap.add_argument("--in-sample", action="store_true", help="also print the shipped fit on all months (in-sample)")
    ap.add_argument("--squad", type=Path, default=None,
                    help="also report retrieval and abstention on SQuAD (a folder of *.jsonl; "
                         f"the data's is {DATA / 'squad'})")
    ap.add_argument("--limit", type=int, default=None, help="questions per set (default: all)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default: a temp folder)")
    ap.add_argument("--precision", default="auto", help="embedder precision: auto (the bot's), float32, bfloat16, int8;"
                    " vectors are cached per model, so give each precision its own --cache-dir")
    ap.add_argument("--backend", default="auto", help="embedder runtime: auto (the bot's), torch, onnx; an ONNX"
                    " graph is exported into --cache-dir/onnx (or a temp folder)")
    ap.add_argument("--squad-holdout", type=int, default=DEFAULT_SQUAD_HOLDOUT, help="set aside every Nth page")
    ap.add_argument("--threshold", type=float, default=None, help="SQuAD abstention threshold (default: the answerer's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    ap.add_argument("--abstractive", action="store_true", help="also judge abstractive answers (loads the model)")
    ap.add_argument("--abstractive-limit", type=int, default=None, help="abstractive: questions per held-out month")
    ap.add_argument("--gen-dtype", default="auto", help="abstractive model dtype (auto: bfloat16 where native)")
    ap.add_argument("--max-false", type=float, default=0.08,
                    help="threshold rule: the highest that abstains on at most this share of the training months' "
                         "answerable live and archive questions")
    ap.add_argument("--abstain-target", type=float, default=None,
                    help="research: raise both fitted thresholds by the smallest common step at which the training "
                         "periods' (a) and (b) each abstain on at least this share (issue 30's bar: 0.85); the "
                         "held-out figures then show what that bar costs. Default: the --max-false rule alone")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    ap.add_argument("--no-timeframe", action="store_true",
                    help="ignore a question's own time words (\"this week\"): every article published by then may "
                         "answer it")
    ap.add_argument("--answerable", choices=("window", "any"), default="window",
                    help="a live question is answerable where an article the Answerer reads for it holds its "
                         "answer (window: a question naming its time or a year reads that span's or year's articles "
                         "only; the rest are construction (c)), or any article published by its quiz date (any: the "
                         "definition before the eighth session of 2026-12-07)")
    args = ap.parse_args(argv)
    global ANSWERABLE, ABSTAIN_TARGET
    ANSWERABLE = args.answerable
    ABSTAIN_TARGET = args.abstain_target
    Answerer.timeframes = not args.no_timeframe
    print("time words (bot.engines.timeframe): " + ("on, counted back from when the question is asked"
                                                     if Answerer.timeframes else "off"))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from models.embedder import Embedder

    graphs = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-graph-"))  # ONNX graphs, when a path takes them
    embedder = Embedder("minilm", threads=args.threads or None, precision=args.precision, backend=args.backend,
                        cache_dir=graphs)
    print(f"embedder precision: {embedder.precision} (path {embedder.path}), {embedder.workers} worker(s)")
    import torch

    print(f"torch threads: {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-ask-"))
    results = []
    lmo = None
    files = [f for f in args.realtimeqa if f.is_file()]
    for f in args.realtimeqa:
        if not f.is_file():
            print(f"skipped RealTime QA: {f} not found")
    from models.reranker import Reranker
    from models.span_reader import open_span_reader

    rerankers = per_file(args.reranker, files, lambda p: Reranker(p, threads=args.threads or None), "reranker")
    # the span reader runs where the embedder runs, as in the bot (bot.app.Precis._default_span_reader)
    where = ({"backend": "onnx", "precision": embedder.precision, "cache_dir": graphs}
             if embedder.backend == "onnx" else {})
    spans = per_file(args.span, files, lambda p: open_span_reader(p, threads=args.threads or None, **where),
                     "span reader")
    eval_years = {y.strip() for y in args.eval_years.split(",") if y.strip()}
    if files:
        generator = None
        if args.abstractive:
            from bot.config import Settings
            from models.generator import open_generator

            st = Settings()
            # the bot's own backend for SUMMARY_MODEL (SUMMARY_BACKEND): llama.cpp for the bundled GGUF
            generator = open_generator(st.summary_model, backend=st.summary_backend, cache_dir=st.data_dir / "models",
                                       threads=args.threads or 1, dtype=args.gen_dtype,
                                       max_concurrency=st.summary_max_concurrency)
            print(f"abstractive: {generator.name}, {generator.describe()}")
        setups, lmo = [], {}
        for f in files:
            qs, arts = load_realtimeqa(f, args.limit, "quarter" if f.stem in args.quarters else "month")
            rr = rerankers.get(f.stem)
            st = build_setup(qs, arts, embedder, cache_dir, rr, f.stem)
            st.span_reader = spans.get(f.stem)
            setups.append(st)
            if eval_years and not any(m[:4] in eval_years for m in st.months):
                continue
            lmo[f.stem] = {"today": lmo_eval(st, generator, args.max_false, args.abstractive_limit,
                                             in_sample=args.in_sample)}
            if rr is not None:
                lmo[f.stem]["reranker"] = lmo_eval(st, None, args.max_false, reranker=rr, in_sample=args.in_sample)
        years = sorted({m[:4] for st in setups for m in st.months})
        year_out: dict[str, dict] = {}
        if len(years) > 1:
            for y in years:
                if eval_years and y not in eval_years:
                    continue
                st = next(s for s in setups if any(m.startswith(y) for m in s.months))
                stem = files[setups.index(st)].stem
                year_out[y] = {"today": year_out_eval(setups, y, args.max_false)}
                if rerankers.get(stem) is not None:
                    year_out[y]["reranker"] = year_out_eval(setups, y, args.max_false, rerankers[stem])
    if args.squad is not None:
        if args.squad.is_dir() and any(args.squad.glob("*.jsonl")):
            qs, arts = load_squad(args.squad, args.limit)
            titles = sorted({q.group for q in qs})
            aside = set(titles[args.squad_holdout - 1 :: args.squad_holdout]) if args.squad_holdout > 0 else set()
            results.append(run_dataset("SQuAD v1.1 dev part", qs, arts, aside, embedder, cache_dir, args.threshold))
        else:
            print(f"skipped SQuAD: {args.squad} not found")
    if results:
        print_report(results)
    for stem, by_config in (lmo or {}).items():
        for config, res in by_config.items():
            print(f"\n===== {stem}: {'today' if config == 'today' else 'the reranker'} =====")
            print_lmo(res)
    for stem, by_config in (lmo or {}).items():
        print_table(f"{stem}, held-out months (leave-{'quarters' if stem in args.quarters else 'months'}-out: "
                    "fusion weights and thresholds fitted on the other periods; mean over the folds)",
                    [(name, metrics(res["folds"])) for name, res in by_config.items()], bool(spans.get(stem)))
    if files and rerankers and any(rerankers.get(f.stem) is not None for f in files):
        # What ships (Answerer.READER_RERANKED, RERANKED_*THRESHOLD): fitted on every question of every file,
        # each file's candidates scored by its own reranker (one not trained on that file's years), so the
        # fusion never learns from a reranker's in-sample scores.
        w, ts = fit_on(train_cands([st for st, f in zip(setups, files) if rerankers.get(f.stem) is not None],
                                   lambda q: True, True), args.max_false, True)
        print(f"\nTo ship with the reranker (fitted on all questions of {', '.join(f.stem for f in files)}): "
              f"READER_RERANKED = {w}; RERANKED_THRESHOLD = {ts[False]:.3f}; RERANKED_TIMED_THRESHOLD = {ts[True]:.3f}")
    for y, by_config in (year_out if files else {}).items():
        print_table(f"{y}, held-out year (fitted on the other years' questions)",
                    [(name, metrics([res])) for name, res in by_config.items()], bool(spans))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "lmo": lmo,
                                         "year_out": year_out if files else None}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
