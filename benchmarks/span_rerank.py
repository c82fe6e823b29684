"""/ask with the span reader as a reranker and as the abstention signal (issue 30), held out on RealTime QA.

The shipped span reader (``models/span_reader.py``) reads one sentence and scores its best answer span
against "no answer here" (``Span.margin``, SQuAD 2.0 style). Today ``/ask`` reads only the sentence the
reader ranked first. Here it reads the reader's top N candidates (N = 3..10) and:

  rerank     the reader's score plus ``alpha x margin`` over those N (one weight, ``alpha``, fitted on the
             training folds by grid search for the most right answers; N also fitted there, or fixed);
             the short answer is then read from the chosen sentence, as today;
  abstain    today's confidence (three shares) of the chosen sentence, or the best margin over the N alone,
             or both as one score (the confidence with ``sigmoid(best margin)`` as a fourth share), or
             either (abstain when the confidence or the best margin is under its threshold); every threshold
             the highest that abstains on at most --max-false of the training folds' answerable live and
             archive questions (half of it each for "either"), timed and untimed questions apart, as today.

Also "switch N", with no weight: the reader's first unless the span reader reads no answer in it and does in
one of the reader's next N - 1 (the first such). And "To ship": alpha and the thresholds fitted on every question
with the shipped reader weights (``Answerer.READER``).

Everything is computed once per question and protocol (live, archive, chat, (a), (b): see
``benchmarks/ask_quality.py``, whose setup and candidate collection this reuses): the reader's 20
candidates with their features, and the span reader's read of every one of them (so any fold's reader
weights and any N can be replayed offline), with what ``Answerer.lead`` would show were each one support
[1]. The folds then only re-index. ``--dump FILE`` keeps that (pickle), ``--load FILE`` reuses it.

    python benchmarks/span_rerank.py --realtimeqa FILE [FILE ...] --span STEM=PATH ... [--quarters STEM]
        [--cache-dir DIR] [--threads 1] [--dump OUT.pkl | --load OUT.pkl ...] [--ns 3,5,7,10] [--max-false 0.08]
        [--read-top 20] [--wrong-cost 0]

Each file's span reader must not have been trained on that file's years (the shipped weights saw 2024-2025:
give 2024-2025 weights trained with ``training/span.py --years 2022``). Folds as ask_quality.py: leave-months
(or quarters) out within a file, and year-out across files.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ask_quality as aq  # noqa: E402
from bot.engines.answerer import Answerer, ReaderWeights, confidence_from, validate_question  # noqa: E402

NO_SPAN = -20.0  # the margin of a sentence the span reader finds no span in at all
POOL = 20  # the reader's candidates (Answerer.CANDIDATES): all read, so every fold's top N is known


class MemoSpan:
    """A span reader that reads each (question, sentence, title, before) once."""

    def __init__(self, reader) -> None:
        self.reader = reader
        self.memo: dict = {}
        self.reads = 0
        self.seconds = 0.0

    def read_many(self, question, items, always=False):
        todo = [it for it in items if (question, *it) not in self.memo]
        if todo:
            t = time.perf_counter()
            for i in range(0, len(todo), 10):
                chunk = todo[i:i + 10]
                for it, sp in zip(chunk, self.reader.read_many(question, chunk, always=True)):
                    self.memo[(question, *it)] = sp
            self.seconds += time.perf_counter() - t
            self.reads += len(todo)
        out = [self.memo[(question, *it)] for it in items]
        return out if always else [s if s is not None and s.margin > 0 else None for s in out]

    def read(self, question, sentence, title="", before="", always=False):
        return self.read_many(question, [(sentence, title, before)], always)[0]


@dataclass
class Q:
    """One question in one protocol: the reader's candidates and what each would give as support [1]."""

    id: str
    group: str
    timed: bool
    X: np.ndarray  # reader features (n x 9)
    cov: np.ndarray
    dense: np.ndarray
    art: np.ndarray
    margin: np.ndarray  # the span reader's best margin in each candidate (NO_SPAN: none)
    answer: list[str]  # judge() of the answer as /ask shows it were this candidate support [1]
    first: list[str]  # judge() of its first line
    short: list[bool] = field(default_factory=list)  # a short answer leads
    y: np.ndarray | None = None  # each candidate holds a gold answer (read or not)


READ_TOP = POOL  # --read-top: read only the reader's best this many (by the shipped weights); the rest NaN


def gather(ans: Answerer, memo: MemoSpan, q: aq.Question, text: str, when: float, st_group: str) -> Q:
    pat, wrong = aq.answer_pattern(q.answers), aq.answer_pattern(q.wrong)
    visible, span = ans.in_time(text, None, None, asked_at=when)
    cands, X, _ = ans.candidates(text, 3, visible, when)
    n = len(cands)
    read = set(np.argsort(-(X @ Answerer.READER.vector()), kind="stable")[:READ_TOP].tolist()) if n else set()
    idx = sorted(read)
    spans = dict(zip(idx, memo.read_many(text, [(cands[i].text, cands[i].title, cands[i].before) for i in idx],
                                         always=True)))
    margin = np.array([(spans[i].margin if spans[i] is not None else NO_SPAN) if i in spans else np.nan
                       for i in range(n)], dtype=np.float64)
    answers, firsts, shorts = [], [], []
    ans.span_reader, ans._span_failed = memo, False  # noqa: SLF001
    for i in range(n):
        if i not in spans:  # not read: never chosen unless a fold's reader ranks it in its top N (counted)
            answers.append("unread")
            firsts.append("unread")
            shorts.append(False)
            continue
        others = [c for j, c in enumerate(cands) if j != i][:2]
        line, short, _ = ans.lead(text, [cands[i], *others])
        answers.append(aq.judge(line, pat, wrong))
        firsts.append(aq.judge(line.split("\n")[0], pat, wrong))
        shorts.append(short is not None)
    return Q(q.id, st_group, span is not None, X,
             np.array([c.context for c in cands]), np.array([c.dense for c in cands]),
             np.array([c.article_coverage for c in cands]), margin, answers, firsts, shorts,
             np.array([bool(pat and pat.search(c.text)) for c in cands], dtype=bool))


def dump_file(path: Path, by: str, embedder, cache_dir: Path, reader, label: str, limit: int | None = None
              ) -> dict:
    qs, arts = aq.load_realtimeqa(path, limit, by)
    st = aq.build_setup(qs, arts, embedder, cache_dir, None, label)
    memo = MemoSpan(reader)
    out: dict[str, list[Q]] = {k: [] for k in ("live", "archive", "chat", "a", "b", "c")}
    t0 = time.perf_counter()
    for proto, cands in (("live", st.live), ("archive", st.archive)):
        for qid in cands:
            q = st.by_id[qid]
            out[proto].append(gather(st.full, memo, q, q.text, st.end if proto == "archive" else q.asked, q.group))
    print(f"[{label}] live + archive read: {memo.reads} sentences in {memo.seconds:.0f}s "
          f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    for qid in st.live:
        q = st.by_id[qid]
        out["chat"].append(gather(st.full, memo, q, validate_question(aq.chat_form(q)), q.asked, q.group))
    for m, ids in st.a_un.items():
        for qid in ids:
            q = st.by_id[qid]
            out["a"].append(gather(st.a_answerer[m], memo, q, q.text, q.asked, q.group))
    for qid, (half, shape) in st.b_un.items():
        q = st.by_id[qid]
        out["b"].append(gather(st.b_answerer[half], memo, q, q.text, q.asked if shape == "live" else st.end, q.group))
    for qid in st.c_un:  # construction (c) of ask_quality.py: timed, answered only outside their span
        q = st.by_id[qid]
        out["c"].append(gather(st.full, memo, q, q.text, q.asked, q.group))
    print(f"[{label}] all protocols: {memo.reads} sentences read in {memo.seconds:.0f}s "
          f"({1000 * memo.seconds / max(memo.reads, 1):.1f} ms a sentence, batches of 10); "
          + ", ".join(f"{k} {len(v)}" for k, v in out.items()), file=sys.stderr, flush=True)
    return {"months": st.months, "data": out, "answerable": st.answerable}


# ------------------------------------------------------------------ offline
def hit(q: Q, i: int) -> bool:
    return q.answer[i] == "correct"


def reader_cands(qs: list[Q]) -> list[aq.Cands]:
    return [aq.Cands([None] * len(q.answer), q.X,
                     q.y if q.y is not None else np.array([a == "correct" for a in q.answer], dtype=bool),
                     q.cov, q.dense, q.art, [], q.timed) for q in qs if len(q.answer)]


def choose(q: Q, w: np.ndarray, n: int, alpha: float) -> tuple[int, np.ndarray]:
    """(the chosen candidate, the top-n by the reader) with the margin fused at ``alpha`` (n = 0: today)."""
    sc = q.X @ w
    order = np.argsort(-sc, kind="stable")
    if n <= 1 or alpha == 0.0:
        return int(order[0]), order[:max(n, 1)]
    top = order[:n]
    if alpha < 0:  # "switch": the reader's first unless the span reader reads no answer in it and does in another
        m = np.nan_to_num(q.margin[top], nan=NO_SPAN)
        ok = m > 0
        if alpha in GUARDS.values() and alpha != SWITCH:  # the one switched to must also be as well supported
            ok &= guard_key(q, top, alpha) >= guard_key(q, top[:1], alpha)[0]
        if m[0] > 0 or not ok.any():
            return int(top[0]), top
        return int(top[int(np.argmax(ok))]), top
    fused = sc[top] + alpha * np.nan_to_num(q.margin[top], nan=NO_SPAN)
    return int(top[int(np.argmax(fused))]), top


SWITCH = -1.0
# "switch N" and its guarded forms (alpha codes): the candidate switched to must hold at least the first's
# confidence (three shares), or at least its coverage of the question's terms around it (context).
GUARDS = {"switch": SWITCH, "switch/conf": -2.0, "switch/cov": -3.0}


def guard_key(q: Q, idx: np.ndarray, alpha: float) -> np.ndarray:
    if alpha == GUARDS["switch/cov"]:
        return q.cov[idx]
    return np.array([confidence_from(float(q.cov[i]), float(q.dense[i]), float(q.art[i])) for i in idx])


def scores(q: Q, w: np.ndarray, n: int, alpha: float) -> dict[str, float]:
    """The abstention scores of the configuration's answer: today's confidence, the best margin, both."""
    i, top = choose(q, w, n, alpha)
    conf = confidence_from(float(q.cov[i]), float(q.dense[i]), float(q.art[i]))
    pool = top if n > 1 else np.argsort(-(q.X @ w), kind="stable")[:1]
    best = float(np.max(np.nan_to_num(q.margin[pool], nan=NO_SPAN)))
    sig = float(1.0 / (1.0 + np.exp(-best)))
    both = confidence_from(float(q.cov[i]), float(q.dense[i]), float(q.art[i]), sig)
    return {"i": i, "conf": conf, "margin": best, "both": both}


ABSTAIN = ("conf", "margin", "both", "either")


def thresholds(train: list[Q], w, n, alpha, max_false) -> dict[str, dict[bool, float]]:
    """Per abstention rule, per timed/untimed: the highest threshold abstaining on <= max_false of train."""
    rows = [(q.timed, scores(q, w, n, alpha)) for q in train if len(q.answer)]
    out = {}
    for key in ("conf", "margin", "both"):
        out[key] = aq.choose_thresholds([(t, s[key]) for t, s in rows], max_false)
    out["either"] = {"conf": aq.choose_thresholds([(t, s["conf"]) for t, s in rows], max_false / 2),
                     "margin": aq.choose_thresholds([(t, s["margin"]) for t, s in rows], max_false / 2)}
    return out


def abstains(s: dict, ts: dict, rule: str, timed: bool) -> bool:
    if rule == "either":
        return s["conf"] < ts["either"]["conf"][timed] or s["margin"] < ts["either"]["margin"][timed]
    return s[rule] < ts[rule][timed]


WRONG_COST = 0.0  # --wrong-cost: alpha and N maximise right - this x wrong answers on the training folds


def gain(q: Q, i: int) -> float:
    return 1.0 if q.answer[i] == "correct" else -WRONG_COST if q.answer[i] == "wrong" else 0.0


def fit_alpha(train: list[Q], w: np.ndarray, n: int) -> float:
    """The fusion weight with the most right answers on ``train`` (less WRONG_COST x wrong ones; ties: the
    smallest)."""
    best, best_a = -np.inf, 0.0
    for a in np.round(np.arange(0.0, 3.01, 0.1), 2):
        got = sum(gain(q, choose(q, w, n, float(a))[0]) for q in train if len(q.answer))
        if got > best:
            best, best_a = got, float(a)
    return best_a


def evaluate(data: dict[str, list[Q]], keep, w, n, alpha, ts) -> dict:
    """Counts per protocol for the questions ``keep`` selects, for every abstention rule."""
    out = {}
    for proto in ("live", "archive", "chat"):
        for rule in ABSTAIN:
            c = {k: 0 for k in ("n", "correct", "wrong", "vague", "abstained", "first_correct", "first_wrong",
                                "first_vague", "short", "top1", "unread")}
            for q in data[proto]:
                if not keep(q):
                    continue
                c["n"] += 1
                if not len(q.answer):
                    c["abstained"] += 1
                    continue
                s = scores(q, w, n, alpha)
                if abstains(s, ts, rule, q.timed):
                    c["abstained"] += 1
                    continue
                i = s["i"]
                if q.answer[i] == "unread":
                    c["unread"] += 1
                    c["vague"] += 1
                    c["first_vague"] += 1
                    continue
                c[q.answer[i]] += 1
                c["first_" + q.first[i]] += 1
                c["short"] += q.short[i]
            out[(proto, rule)] = c
    for proto in ("a", "b"):
        for rule in ABSTAIN:
            c = {"n": 0, "abstained": 0}
            for q in data[proto]:
                if not keep(q):
                    continue
                c["n"] += 1
                c["abstained"] += (not len(q.answer)) or abstains(scores(q, w, n, alpha), ts, rule, q.timed)
            out[(proto, rule)] = c
    return out


def fold(train: list[Q], test: dict[str, list[Q]], keep, ns: list[int], max_false: float) -> dict:
    """Today's reader weights fitted on ``train``; then per N its alpha and every rule's thresholds; and the
    configuration whose N and alpha are fitted on ``train`` too ("fit")."""
    w = aq.fit_reader(reader_cands(train)).vector()
    res = {}
    configs = [("today", 0, 0.0)]
    best = (-np.inf, 0, 0.0)
    for n in ns:
        a = fit_alpha(train, w, n)
        configs.append((f"N={n}", n, a))
        got = sum(gain(q, choose(q, w, n, a)[0]) for q in train if len(q.answer))
        if got > best[0]:
            best = (got, n, a)
    configs.append(("N fit", best[1], best[2]))
    configs += [(f"{g} {n}", n, code) for n in ns if n in (3, 5) for g, code in GUARDS.items()]
    for name, n, a in configs:
        ts = thresholds(train, w, n, a, max_false)
        r = evaluate(test, keep, w, n, a, ts)
        r["alpha"], r["n"] = a, n
        res[name] = r
    return res


def pct(c: dict, key: str) -> float:
    return 100.0 * c[key] / c["n"] if c["n"] else float("nan")


def mean_over(folds: list[dict], name: str, proto: str, rule: str, key: str) -> float:
    vals = [pct(f[name][(proto, rule)], key) for f in folds if f[name][(proto, rule)]["n"]]
    return float(np.mean(vals)) if vals else float("nan")


def report(title: str, folds: list[dict], rules=ABSTAIN) -> None:
    names = list(folds[0])
    print(f"\n{title}")
    print("alpha per fold: " + "; ".join(f"{nm} " + "/".join(f"{f[nm]['alpha']:.1f}" for f in folds)
                                         for nm in names if nm != "today"))
    print("N fitted per fold: " + "/".join(str(f["N fit"]["n"]) for f in folds))
    hdr = (f"{'config':<14}{'abstain by':<9}{'live right':>11}{'1st line':>9}{'wrong':>7}{'1st wr':>7}{'abst':>6}"
           f"{'arch right':>11}{'1st line':>9}{'wrong':>7}{'1st wr':>7}{'abst':>6}"
           f"{'chat right':>11}{'1st line':>9}{'wrong':>7}{'abst':>6}{'(a)':>7}{'(b)':>7}")
    print(hdr)
    for nm in names:
        for rule in rules:
            m = lambda p, k: mean_over(folds, nm, p, rule, k)  # noqa: E731
            print(f"{nm:<14}{rule:<9}{m('live', 'correct'):11.1f}{m('live', 'first_correct'):9.1f}"
                  f"{m('live', 'wrong'):7.1f}{m('live', 'first_wrong'):7.1f}{m('live', 'abstained'):6.1f}"
                  f"{m('archive', 'correct'):11.1f}{m('archive', 'first_correct'):9.1f}{m('archive', 'wrong'):7.1f}"
                  f"{m('archive', 'first_wrong'):7.1f}{m('archive', 'abstained'):6.1f}"
                  f"{m('chat', 'correct'):11.1f}{m('chat', 'first_correct'):9.1f}{m('chat', 'wrong'):7.1f}"
                  f"{m('chat', 'abstained'):6.1f}{m('a', 'abstained'):7.1f}{m('b', 'abstained'):7.1f}")
    n = {p: sum(f["today"][(p, "conf")]["n"] for f in folds) for p in ("live", "archive", "chat", "a", "b")}
    print("questions: " + ", ".join(f"{p} {v}" for p, v in n.items()) + f" over {len(folds)} fold(s)")
    unread = sum(f[nm][(p, r)]["unread"] for f in folds for nm in names for p in ("live", "archive", "chat")
                 for r in rules)
    if unread:
        print(f"(answers from a candidate the span reader did not read, judged vague: {unread} over every row)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realtimeqa", type=Path, nargs="+", default=[aq.DATA / "realtimeqa" / "realtimeqa_2022.jsonl"])
    ap.add_argument("--span", action="append", default=[], metavar="[FILE_STEM=]PATH")
    ap.add_argument("--quarters", action="append", default=[], metavar="FILE_STEM")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dump", type=Path, default=None, help="write the per-question reads here (pickle)")
    ap.add_argument("--load", type=Path, action="append", default=[], help="reuse dumps instead of reading")
    ap.add_argument("--ns", default="3,5,7,10", help="pool sizes N read by the span reader")
    ap.add_argument("--max-false", type=float, default=0.08)
    ap.add_argument("--read-top", type=int, default=POOL,
                    help="read only the reader's best this many candidates (by the shipped weights; default all 20)")
    ap.add_argument("--wrong-cost", type=float, default=0.0,
                    help="fit alpha and N for right - this x wrong answers (default 0: right answers alone)")
    ap.add_argument("--limit", type=int, default=None, help="questions per file (a smoke test)")
    args = ap.parse_args(argv)
    ns = [int(x) for x in args.ns.split(",") if x.strip()]
    global READ_TOP, WRONG_COST
    READ_TOP, WRONG_COST = args.read_top, args.wrong_cost
    files: dict[str, dict] = {}
    if args.load:
        for p in args.load:
            files.update(pickle.loads(p.read_bytes()))
    else:
        import tempfile

        from models.embedder import Embedder
        from models.span_reader import SpanReader

        cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-ask-"))
        embedder = Embedder("minilm", threads=args.threads or None, cache_dir=cache_dir)
        print(f"embedder precision: {embedder.precision} (path {embedder.path})")
        readers = aq.per_file(args.span, args.realtimeqa, lambda p: SpanReader(p, threads=args.threads or None),
                              "span reader")
        for f in args.realtimeqa:
            if readers.get(f.stem) is None:
                raise SystemExit(f"no span reader for {f.stem}: give --span {f.stem}=PATH")
            by = "quarter" if f.stem in args.quarters else "month"
            files[f.stem] = dump_file(f, by, embedder, cache_dir, readers[f.stem], f.stem, args.limit)
            if args.dump:
                args.dump.write_bytes(pickle.dumps(files))
    # leave-periods-out within each file
    for stem, fd in files.items():
        data = fd["data"]
        folds = []
        for m in fd["months"]:
            train = [q for p in ("live", "archive") for q in data[p] if q.group != m]
            folds.append(fold(train, data, lambda q, m=m: q.group == m, ns, args.max_false))
        report(f"{stem}: held-out {'quarters' if stem in args.quarters else 'months'} "
               f"(fitted on the other periods; mean over {len(folds)} folds)", folds)
    # what ships: the shipped reader weights (Answerer.READER), alpha fitted on every file's live and archive
    # questions (each file read by span weights not trained on it), thresholds on each file and on all
    w = Answerer.READER.vector()
    everything = [q for fd in files.values() for p in ("live", "archive") for q in fd["data"][p]]
    for n in ns:
        a = fit_alpha(everything, w, n)
        parts = [(stem, [q for p in ("live", "archive") for q in fd["data"][p]]) for stem, fd in files.items()]
        if len(parts) > 1:
            parts.append(("all files", everything))
        ts = "; ".join(f"{stem}: {t['conf'][False]:.3f} / timed {t['conf'][True]:.3f} (today's ranking "
                       f"{t0['conf'][False]:.3f} / {t0['conf'][True]:.3f})"
                       for stem, qs in parts
                       for t, t0 in [(thresholds(qs, w, n, a, args.max_false), thresholds(qs, w, 0, 0.0, args.max_false))])
        print(f"\nTo ship, N={n}: SPAN_RERANK_ALPHA = {a:.1f} (Answerer.READER, fitted on all {len(everything)} "
              f"live and archive questions); thresholds (conf) {ts}")
    # year-out across files
    years = sorted({m[:4] for fd in files.values() for m in fd["months"]})
    if len(years) > 1:
        for y in years:
            train = [q for fd in files.values() for p in ("live", "archive") for q in fd["data"][p]
                     if not q.group.startswith(y)]
            stem = next(s for s, fd in files.items() if any(m.startswith(y) for m in fd["months"]))
            res = fold(train, files[stem]["data"], lambda q, y=y: q.group.startswith(y), ns, args.max_false)
            report(f"{y}: held-out year (fitted on the other years)", [res])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
