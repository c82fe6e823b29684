"""SummEval dev by article folds: bigram overlap, the lexical verifier and a trained consistency checker.

    python benchmarks/checker_quality.py [--model PATH] [--summeval FILE] [--folds 5] [--seed 13]
        [--precision int8] [--threads 1] [--max-length 128] [--json OUT]

* data: ``summeval_dev.jsonl`` (800 system summaries of 50 CNN/DM articles); a summary is consistent when
  its mean expert consistency is 5.0 (all three experts gave 5), the definition of
  ``benchmarks/verifier_fit.py`` / ``summary_quality.py --verify`` and of the literature (SummaC, TRUE);
* folds: the 50 articles, sorted by id and shuffled with ``--seed``, dealt into ``--folds`` folds
  (:func:`article_folds`; ``training/checker.py --summeval-folds`` uses the same function, so a fold's
  model never saw the fold's articles);
* systems, each scored on every summary:

  - **bigram overlap**: share of the summary's word bigrams found in the article (as in
    ``summary_quality.py --verify``);
  - **lexical verifier**: ``bot/grounding/verifier.py``'s shipped lexical model (``bigram_article``),
    its logistic regression refitted on the training folds (``verifier_fit.Model``, weakest sentence);
    also the same fit over all lexical features;
  - **checker** (``--model``): each summary line (``split_sentences`` of the detokenised summary) is scored
    against its **support window** - the verifier's support of that line (the greedy cover of its weighted
    content words by up to three article sentences), in article order (:func:`window`); the line's
    score is ``sigmoid(logit)`` (one-logit model) or the supported class's softmax; the **summary's score
    is its weakest line's** (min over lines). ``--model DIR`` with ``fold0 .. fold{k-1}`` subfolders (what
    ``training/checker.py --summeval-folds`` writes) scores each fold with the model that did not see it;
    a plain model folder scores every fold with the same model (held out only if it never saw SummEval);
  - **checker + lexical**: logistic regression over (checker summary logit, lexical verifier score),
    fitted on the training folds.

* figures: ROC-AUC over the 800 out-of-fold scores, Spearman with the mean consistency, and balanced
  accuracy of ``score >= t`` with ``t`` the best balanced-accuracy threshold of the training folds; per fold
  ROC-AUC (mean and min); the checker's milliseconds per summary line on this machine (window choice,
  tokenising and the forward pass, one line at a time, ``--threads`` threads, ``--precision`` numerics:
  ``int8`` is PyTorch dynamic int8, the bot's path on a CPU without native bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bot.corpus.segment import split_sentences  # noqa: E402
from bot.grounding.text import detokenize, stem, tokens  # noqa: E402
from bot.grounding.verifier import FEATURES, Article  # noqa: E402

import verifier_fit as vf  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SUMMEVAL = DATA / "summeval" / "summeval_dev.jsonl"
MAX_LENGTH = 128  # word pieces of (window, line); the training length
SEED = 13


# ------------------------------------------------------------------ shared with training/checker.py
def article_folds(article_ids, folds: int = 5, seed: int = SEED) -> dict[str, int]:
    """article id -> fold: the sorted distinct ids shuffled with ``seed``, dealt round-robin."""
    ids = sorted(set(article_ids))
    random.Random(seed).shuffle(ids)
    return {a: i % folds for i, a in enumerate(ids)}


def summary_lines(summary: str) -> list[str]:
    text = detokenize(summary)
    return [s for s in split_sentences(text) if s.strip()] or [text]


_NEUTRAL = None


def window(art: Article, line: str) -> str:
    """The premise a line is checked against: its verifier support (greedy cover of its weighted content
    words by up to 3 article sentences), in article order; the first two sentences when nothing overlaps."""
    global _NEUTRAL
    if _NEUTRAL is None:
        _NEUTRAL = vf._neutral()  # noqa: SLF001 - support does not depend on the weights
    _, _, sup = _NEUTRAL.sentence_features(line, art, ())
    idx = sorted(s.index for s in sup) or list(range(min(2, len(art.sentences))))
    return " ".join(art.sentences[i].text for i in idx)


def mark(window_text: str, line: str) -> str:
    """The line as the checker reads it: each word with a token (stemmed) absent from the window is bracketed,
    ``[ word ]``. The bundled MiniLM, a sentence embedder, does not learn to align two segments word by word
    in a CPU-sized training run (the loss stayed at chance over 2,400 plain pairs); with the novel words
    marked it learns which novelties matter (a name, a number, "not") and which do not (a paraphrase)."""
    have = {stem(t) for t in tokens(window_text)}
    out = []
    for w in line.split():
        ts = tokens(w)
        out.append(f"[ {w} ]" if ts and any(stem(t) not in have for t in ts) else w)
    return " ".join(out)


class Checker:
    """A trained cross-encoder folder: ``score(premises, lines)`` -> probability "consistent" per pair."""

    def __init__(self, path: str | Path, precision: str = "int8", max_length: int = MAX_LENGTH) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from models.reranker import on_cpu_path

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        net = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True,
                                                                 dtype=torch.float32)
        self.num_labels = int(net.config.num_labels)
        self.precision, self.net = on_cpu_path(net, precision, "checker")
        self.max_length = max_length
        meta = Path(path, "training.json")
        self.marked = json.loads(meta.read_text()).get("marked", False) if meta.is_file() else False

    def logits(self, premises: list[str], lines: list[str], batch: int = 32) -> np.ndarray:
        """The "consistent" logit (one-logit model) or log-odds of the supported class (two-class)."""
        torch = self.torch
        out = []
        with torch.inference_mode():
            for b in range(0, len(lines), batch):
                hyp = lines[b : b + batch]
                if self.marked:
                    hyp = [mark(p, h) for p, h in zip(premises[b : b + batch], hyp)]
                enc = self.tok(premises[b : b + batch], hyp, truncation="longest_first",
                               max_length=self.max_length, padding=True, return_tensors="pt")
                z = self.net(**enc).logits.float()
                out.append(z[:, 0] if self.num_labels == 1 else z[:, 1] - z[:, 0])
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


# ------------------------------------------------------------------ scoring
def prepare(items: list[dict]) -> tuple[list[list[str]], list[list[str]]]:
    """Per summary: its lines and each line's support window."""
    arts: dict[str, Article] = {}
    lines_all, wins_all = [], []
    for it in items:
        art = arts.get(it["article_id"]) or arts.setdefault(it["article_id"], Article(it["article"]))
        lines = summary_lines(it["summary"])
        lines_all.append(lines)
        wins_all.append([window(art, ln) for ln in lines])
    return lines_all, wins_all


def bigram_overlap(items: list[dict]) -> np.ndarray:
    arts: dict[str, set] = {}
    out = []
    for it in items:
        if it["article_id"] not in arts:
            at = tokens(detokenize(it["article"]))
            arts[it["article_id"]] = set(zip(at, at[1:]))
        toks = tokens(detokenize(it["summary"]))
        bi = list(zip(toks, toks[1:]))
        out.append(sum(b in arts[it["article_id"]] for b in bi) / len(bi) if bi else 1.0)
    return np.array(out)


def checker_scores(model: Path, items, lines_all, wins_all, fold_of: np.ndarray, folds: int, precision: str,
                   max_length: int) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """Summary score (min line logit) per summary, the line logits, and timing."""
    fold_dirs = [model / f"fold{k}" for k in range(folds)]
    per_fold = all((d / "config.json").is_file() for d in fold_dirs)
    if not per_fold and not (model / "config.json").is_file():
        raise SystemExit(f"{model}: neither a model folder nor fold0..fold{folds - 1} model folders")
    line_logits: list[np.ndarray] = [np.zeros(0)] * len(items)
    loaded = {}
    for k in range(folds):
        path = fold_dirs[k] if per_fold else model
        chk = loaded.get(path) or loaded.setdefault(path, Checker(path, precision, max_length))
        idx = [i for i in range(len(items)) if fold_of[i] == k]
        prem = [w for i in idx for w in wins_all[i]]
        hyp = [ln for i in idx for ln in lines_all[i]]
        z = chk.logits(prem, hyp)
        j = 0
        for i in idx:
            n = len(lines_all[i])
            line_logits[i] = z[j : j + n]
            j += n
    # timing: one line at a time, the window chosen too (the bot's path for one summary line)
    chk = next(iter(loaded.values()))
    arts: dict[str, Article] = {}
    sample = [(it, ln) for it, lines in zip(items[::8], lines_all[::8]) for ln in lines][:120]
    for it, _ in sample:
        arts.setdefault(it["article_id"], Article(it["article"]))
    chk.logits([window(arts[sample[0][0]["article_id"]], sample[0][1])], [sample[0][1]])  # warm-up
    t = time.perf_counter()
    for it, ln in sample:
        chk.logits([window(arts[it["article_id"]], ln)], [ln])
    ms = 1000.0 * (time.perf_counter() - t) / len(sample)
    t = time.perf_counter()
    for it, ln in sample:
        window(arts[it["article_id"]], ln)
    ms_window = 1000.0 * (time.perf_counter() - t) / len(sample)
    summary = np.array([float(z.min()) if len(z) else 0.0 for z in line_logits])
    info = {"per_fold_models": per_fold, "precision": chk.precision, "ms_per_line": ms,
            "ms_window": ms_window, "lines_timed": len(sample)}
    return summary, line_logits, info


def cv_flags(score: np.ndarray, y: np.ndarray, fold_of: np.ndarray, folds: int) -> np.ndarray:
    flag = np.zeros(len(y), dtype=bool)
    for k in range(folds):
        te, tr = fold_of == k, fold_of != k
        flag[te] = score[te] >= vf.best_threshold(score[tr], y[tr])
    return flag


def verifier_cv(feats, y, fold_of, folds, names) -> np.ndarray:
    oof = np.zeros(len(y))
    for k in range(folds):
        tr = np.where(fold_of != k)[0]
        te = np.where(fold_of == k)[0]
        m = vf.Model(names).fit([feats[i] for i in tr], y[tr])
        oof[te] = m.scores([feats[i] for i in te])
    return oof


def fused_cv(cols: list[np.ndarray], y, fold_of, folds) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    X = np.column_stack(cols)
    oof = np.zeros(len(y))
    for k in range(folds):
        te, tr = fold_of == k, fold_of != k
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-9
        lr = LogisticRegression(C=1.0, max_iter=2000).fit((X[tr] - mu) / sd, y[tr])
        oof[te] = lr.decision_function((X[te] - mu) / sd)
    return oof


def figures(score, y, cons, fold_of, folds) -> dict:
    from scipy.stats import spearmanr
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    per = [roc_auc_score(y[fold_of == k], score[fold_of == k]) for k in range(folds)
           if len(set(y[fold_of == k])) == 2]
    return {"auc": float(roc_auc_score(y, score)), "bacc": float(balanced_accuracy_score(y, cv_flags(score, y, fold_of, folds))),
            "spearman": float(spearmanr(score, cons).statistic), "fold_auc_mean": float(np.mean(per)),
            "fold_auc_min": float(np.min(per))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, action="append", default=[],
                    help="checker folder, or a folder of fold0..fold4 models (repeatable)")
    ap.add_argument("--summeval", type=Path, default=SUMMEVAL)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--precision", default="int8", help="int8 (the CPU path without bf16), float32, bfloat16")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    items = vf.load_summeval(args.summeval)
    y = np.array([it["consistency"] == 5.0 for it in items], dtype=int)
    cons = np.array([it["consistency"] for it in items])
    fmap = article_folds([it["article_id"] for it in items], args.folds, args.seed)
    fold_of = np.array([fmap[it["article_id"]] for it in items])
    print(f"SummEval dev: {len(items)} summaries of {len(fmap)} articles, {int(y.sum())} consistent "
          f"(consistency 5.0); {args.folds} article folds (seed {args.seed})")
    rows: list[tuple[str, dict]] = []
    rows.append(("bigram overlap", figures(bigram_overlap(items), y, cons, fold_of, args.folds)))
    t = time.perf_counter()
    feats = vf.sentence_features(items, None)
    lex = verifier_cv(feats, y, fold_of, args.folds, vf.LEXICAL)
    rows.append(("lexical verifier (shipped features)", figures(lex, y, cons, fold_of, args.folds)))
    lex_all = verifier_cv(feats, y, fold_of, args.folds, list(FEATURES))
    rows.append(("lexical verifier, all features", figures(lex_all, y, cons, fold_of, args.folds)))
    print(f"  lexical features in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    infos = {}
    if args.model:
        t = time.perf_counter()
        lines_all, wins_all = prepare(items)
        n_lines = sum(len(x) for x in lines_all)
        print(f"  {n_lines} lines, windows in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    for model in args.model:
        t = time.perf_counter()
        s, line_z, info = checker_scores(model, items, lines_all, wins_all, fold_of, args.folds, args.precision,
                                         args.max_length)
        info["score_seconds"] = time.perf_counter() - t
        name = model.name
        infos[name] = info
        rows.append((f"checker {name}", figures(s, y, cons, fold_of, args.folds)))
        rows.append((f"checker {name} + lexical", figures(fused_cv([s, lex], y, fold_of, args.folds), y, cons,
                                                          fold_of, args.folds)))
        mean = np.array([float(z.mean()) if len(z) else 0.0 for z in line_z])
        rows.append((f"checker {name}, mean over lines", figures(mean, y, cons, fold_of, args.folds)))
    print(f"\n{'system':<44}{'ROC-AUC':>8}{'bal.acc':>8}{'Spearman':>9}{'fold AUC mean/min':>19}")
    for name, m in rows:
        print(f"{name:<44}{m['auc']:8.3f}{m['bacc']:8.3f}{m['spearman']:9.3f}"
              f"{m['fold_auc_mean']:11.3f}/{m['fold_auc_min']:.3f}")
    for name, info in infos.items():
        print(f"checker {name}: {'one model per fold (held out)' if info['per_fold_models'] else 'one model for all folds'}"
              f", torch-{info['precision']}, {info['ms_per_line']:.1f} ms per line one at a time "
              f"(window {info['ms_window']:.1f} ms of it; {info['lines_timed']} lines, {args.threads} thread), "
              f"all {len(items)} summaries in {info['score_seconds']:.0f}s")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps({"rows": dict(rows), "checkers": infos}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
