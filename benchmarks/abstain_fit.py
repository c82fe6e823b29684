"""Research (issue 30): a learned abstention score against today's three-share confidence, held out.

Reads the per-question dumps of ``benchmarks/span_rerank.py --dump`` (every question in every protocol with
the reader's 20 candidates and their features). Per fold (leave-months/quarters-out within a file, and
year-out across files) it fits today's reader weights on the training periods' live and archive questions,
takes the answer /ask would give (the reader's first), and scores it for abstention by:

  conf      today's confidence (coverage + dense + article coverage) / 3
  logit:X   a logistic regression over the answer's features, fitted on the training periods, with label
            X = "ans": the corpus can answer (live, archive) against it cannot ((a), (b));
            X = "right": the answer shown is right (live, archive) against everything else ((a), (b), wrong,
            vague)

Every threshold is the highest that abstains on at most --max-false of the training periods' answerable
(live + archive) questions, timed and untimed apart, as today. Figures are the held-out periods': "right" is
the answer as /ask shows it (short answer + its sentence). The feature "margin" is the span reader's, read by
the weights the dump was made with: give each file weights not trained on its years, or leave it out
(--feats). Result (docs/benchmarks.md, eighth session of 2026-12-07): no feature set carries across years;
it ships nowhere.

    python benchmarks/abstain_fit.py --load d22.pkl --load d2425.pkl [--max-false 0.08]
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ask_quality as aq  # noqa: E402
import span_rerank as sr  # noqa: E402,F401 - the pickled Q class lives there
from bot.engines.answerer import confidence_from  # noqa: E402

FEATS = ("cov", "dense", "art", "sent_cov", "answer_type", "nearness", "agreement", "lead", "gap", "margin",
         "pool_dense", "retrieval")


def feats(q, w) -> tuple[int, np.ndarray]:
    sc = q.X @ w
    order = np.argsort(-sc, kind="stable")
    i = int(order[0])
    gap = float(sc[order[0]] - sc[order[1]]) if len(order) > 1 else 5.0
    m = q.margin[i]
    m = -5.0 if np.isnan(m) else float(np.clip(m, -5.0, 5.0))
    f = np.array([q.cov[i], max(q.dense[i], 0.0), q.art[i], q.X[i, 3], q.X[i, 1], q.X[i, 2], q.X[i, 5],
                  q.X[i, 4], min(gap, 5.0), m, float(np.max(q.dense)), q.X[i, 0]], dtype=np.float64)
    return i, f


def rows(qs_by_proto: dict, w, keep):
    out = []
    for proto in ("live", "archive", "chat", "a", "b", "c"):
        for q in qs_by_proto.get(proto, []):
            if not keep(q):
                continue
            if not len(q.answer):
                out.append((proto, q, None, None))
                continue
            i, f = feats(q, w)
            out.append((proto, q, i, f))
    return out


def fit_logit(X, y, C=1.0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X, y)


def score_fn(kind: str, model, sel):
    def s(q, i, f):
        if f is None:
            return -np.inf
        if kind == "conf":
            return confidence_from(float(q.cov[i]), float(q.dense[i]), float(q.art[i]))
        return float(model.decision_function(f[sel][None, :])[0])
    return s


def run_fold(train_data: dict, test_data: dict, keep_train, keep_test, max_false: float, sel, configs):
    train_ans = [q for p in ("live", "archive") for q in train_data[p] if keep_train(q)]
    w = aq.fit_reader(sr.reader_cands(train_ans)).vector()
    tr = rows(train_data, w, keep_train)
    te = rows(test_data, w, keep_test)
    res = {}
    for name in configs:
        model = None
        if name != "conf":
            label = name.split(":")[1]
            X, y = [], []
            for proto, q, i, f in tr:
                if f is None or proto == "chat":
                    continue
                X.append(f[sel])
                if label == "ans":
                    y.append(proto in ("live", "archive"))
                else:
                    y.append(proto in ("live", "archive") and q.answer[i] == "correct")
            if len(set(y)) < 2:  # a fold whose training periods hold one class only (a --limit smoke run)
                continue
            model = fit_logit(np.array(X), np.array(y))
        s = score_fn(name.split(":")[0], model, sel)
        ts = aq.choose_thresholds([(q.timed, s(q, i, f)) for proto, q, i, f in tr
                                   if proto in ("live", "archive") and f is not None], max_false)
        c = {}
        for proto, q, i, f in te:
            d = c.setdefault(proto, {"n": 0, "correct": 0, "wrong": 0, "vague": 0, "abstained": 0})
            d["n"] += 1
            if f is None or s(q, i, f) < ts[q.timed]:
                d["abstained"] += 1
                continue
            if proto in ("a", "b", "c"):
                continue
            d[q.answer[i] if q.answer[i] != "unread" else "vague"] += 1
        res[name] = c
    return res


def pct(c, k):
    return 100.0 * c[k] / c["n"] if c.get("n") else float("nan")


def report(title, folds, configs):
    print(f"\n{title}")
    print(f"{'config':<14}{'live right':>11}{'wrong':>7}{'abst':>6}{'arch right':>11}"
          f"{'wrong':>7}{'abst':>6}{'chat':>6}{'(a)':>7}{'(b)':>7}{'(c)':>7}")
    for name in configs:
        def m(p, k):
            v = [pct(f[name][p], k) for f in folds if name in f and p in f[name] and f[name][p]["n"]]
            return float(np.mean(v)) if v else float("nan")
        print(f"{name:<14}{m('live', 'correct'):11.1f}{m('live', 'wrong'):7.1f}{m('live', 'abstained'):6.1f}"
              f"{m('archive', 'correct'):11.1f}{m('archive', 'wrong'):7.1f}{m('archive', 'abstained'):6.1f}"
              f"{m('chat', 'correct'):6.1f}{m('a', 'abstained'):7.1f}{m('b', 'abstained'):7.1f}{m('c', 'abstained'):7.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", type=Path, action="append", required=True)
    ap.add_argument("--max-false", type=float, default=0.08)
    ap.add_argument("--feats", default=",".join(FEATS))
    ap.add_argument("--configs", default="conf,logit:ans,logit:right")
    args = ap.parse_args(argv)
    files = {}
    setattr(sys.modules["__main__"], "Q", sr.Q)  # span_rerank.py pickles its Q as __main__.Q
    for p in args.load:
        files.update(pickle.loads(p.read_bytes()))
    for stem, fd in files.items():  # dumps made before construction (c) carry no "answerable": "any"
        print(f"{stem}: answerable = {fd.get('answerable', 'any')}, (c) {len(fd['data'].get('c', []))} questions")
    sel = np.array([FEATS.index(x) for x in args.feats.split(",")])
    configs = args.configs.split(",")
    print("features: " + ", ".join(FEATS[i] for i in sel))
    for stem, fd in files.items():
        folds = [run_fold(fd["data"], fd["data"], lambda q, m=m: q.group != m, lambda q, m=m: q.group == m,
                          args.max_false, sel, configs) for m in fd["months"]]
        report(f"{stem}: held-out periods (mean over {len(folds)})", folds, configs)
    years = sorted({m[:4] for fd in files.values() for m in fd["months"]})
    if len(years) > 1:
        merged = {p: [q for fd in files.values() for q in fd["data"].get(p, [])]
                  for p in ("live", "archive", "chat", "a", "b", "c")}
        for y in years:
            r = run_fold(merged, merged, lambda q, y=y: not q.group.startswith(y), lambda q, y=y: q.group.startswith(y),
                         args.max_false, sel, configs)
            report(f"{y}: held-out year (fitted on the other years)", [r], configs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
