"""Fit and measure the verifier (bot/grounding/verifier.py) on SummEval; used by summary_quality.py --verify.

* data: ``summeval_dev.jsonl``; a summary is consistent when ``consistency == 5.0``;
* features: the verifier's per-sentence features (plus the SmolLM2 likelihood
  gain when ``--verify-lm``), cached per (article, system) in ``--cache-dir``;
* model: logistic regression on sentence features; a summary's score is its
  weakest sentence's. Summary labels only, so the fit alternates (multiple
  instance style): start from each feature's worst value over the summary's
  sentences, then refit on each summary's weakest sentence under the current
  weights (3 rounds);
* threshold: the one with the best balanced accuracy on the training part;
* figures: 5-fold cross-validation grouped by article (no article in both
  parts); ``fit_all`` refits on the whole file for the weights the bot ships.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.corpus.segment import split_sentences  # noqa: E402
from bot.grounding.text import detokenize  # noqa: E402
from bot.grounding.verifier import FEATURES, Article, Verifier  # noqa: E402

LM_FEATURES = ["lm_gain", "lm_cond", "lm_worst"]
LEXICAL = ["bigram_article"]  # the shipped lexical model's feature (adding trigrams scored lower, cross-validated)
LM_SHIPPED = ["lm_gain", "lm_cond"]  # ... and what the shipped model adds with SmolLM2
ROUNDS = 3
C = 1.0  # logistic regression's inverse regularisation (sklearn default; not tuned)


def load_summeval(path: Path) -> list[dict]:
    items = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        for system, d in sorted(obj["system_summaries"].items()):
            items.append({"article_id": obj["id"], "article": obj["article"], "system": system,
                          "summary": d["summary"], "consistency": float(d["consistency"])})
    return items


def _neutral() -> Verifier:
    n = len(FEATURES)
    return Verifier({"features": list(FEATURES), "mean": [0.0] * n, "scale": [1.0] * n, "coef": [0.0] * n,
                     "intercept": 0.0, "threshold": 0.5})


def sentence_features(items: list[dict], cache_dir: Path | None, lm=None) -> list[list[dict]]:
    """Per summary, per sentence: the feature dict, ``blocked`` (a blocking problem), and the
    ``lm_*`` features when ``lm`` is given (those are cached in ``cache_dir``: SmolLM2 on 800
    summaries takes 10-40 minutes on 2 shared cores; the lexical ones take seconds)."""
    v = _neutral()
    arts: dict[str, Article] = {}
    out, supports_all, sents_all = [], [], []
    for it in items:
        art = arts.get(it["article_id"]) or arts.setdefault(it["article_id"], Article(it["article"]))
        sents = split_sentences(detokenize(it["summary"]))
        feats, prev, supports = [], (), []
        for s in sents:
            f, problems, sup = v.sentence_features(s, art, prev)
            prev = tuple(x.index for x in sup)
            f["blocked"] = float(any(p.startswith(v.blocking) for p in problems))
            feats.append(f)
            supports.append(" ".join(x.text for x in sorted(sup, key=lambda x: x.index)))
        out.append(feats)
        supports_all.append(supports)
        sents_all.append(sents)
    if lm is None:
        return out
    key = hashlib.sha1(json.dumps([sents_all, supports_all]).encode()).hexdigest()[:12]
    path = cache_dir / f"verifier-lm-{key}.pkl" if cache_dir else None
    if path and path.is_file():
        stats = pickle.loads(path.read_bytes())
    else:
        stats, t = [], time.perf_counter()
        for n, (sents, supports) in enumerate(zip(sents_all, supports_all)):
            stats.append(lm.stats(supports, sents) if sents else [])
            if (n + 1) % 100 == 0:
                print(f"  [verify] SmolLM2 features {n + 1}/{len(items)} ({time.perf_counter() - t:.0f}s)",
                      file=sys.stderr)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(stats))
    for feats, st in zip(out, stats):
        for f, g in zip(feats, st):
            f.update({f"lm_{k}": x for k, x in g.items()})
    return out


class Model:
    """Standardised logistic regression over named features; summary score = weakest sentence."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def matrix(self, sents: list[dict]) -> np.ndarray:
        return np.array([[f[k] for k in self.names] for f in sents], dtype=np.float64).reshape(-1, len(self.names))

    def fit(self, feats: list[list[dict]], y: np.ndarray) -> Model:
        from sklearn.linear_model import LogisticRegression

        mats = [self.matrix(s) for s in feats]
        keep = [i for i, m in enumerate(mats) if len(m)]
        # direction of each feature: its correlation with the label over summaries' mean features
        means = np.array([mats[i].mean(0) for i in keep])
        sign = np.sign([np.corrcoef(means[:, j], y[keep])[0, 1] if means[:, j].std() > 0 else 1.0
                        for j in range(len(self.names))])
        sign[sign == 0] = 1.0
        X = np.array([np.where(sign > 0, mats[i].min(0), mats[i].max(0)) for i in keep])
        yk = y[keep]
        for _ in range(ROUNDS + 1):
            self.mean = X.mean(0)
            self.scale = X.std(0) + 1e-6
            lr = LogisticRegression(C=C, max_iter=2000).fit((X - self.mean) / self.scale, yk)
            self.coef, self.intercept = lr.coef_[0], float(lr.intercept_[0])
            X = np.array([mats[i][int(np.argmin(self._p(mats[i])))] for i in keep])
        scores = self.scores(feats)
        self.threshold = best_threshold(scores, y)
        return self

    def _p(self, m: np.ndarray) -> np.ndarray:
        z = ((m - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def scores(self, feats: list[list[dict]]) -> np.ndarray:
        return np.array([float(self._p(self.matrix(s)).min()) if s else 0.0 for s in feats])

    def to_json(self) -> dict:
        return {"features": self.names, "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "coef": self.coef.round(6).tolist(), "intercept": round(self.intercept, 6),
                "threshold": round(float(self.threshold), 4)}


def best_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    cands = np.unique(scores)
    best, best_t = -1.0, 0.5
    for t in cands:
        ba = balanced_accuracy_score(y, scores >= t)
        if ba > best:
            best, best_t = ba, float(t)
    return best_t


def cross_validate(feats, y, groups, names, folds: int = 5):
    """Out-of-fold scores and supported flags (threshold fitted on each training part)."""
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    flag = np.zeros(len(y), dtype=bool)
    for tr, te in GroupKFold(folds).split(np.zeros(len(y)), y, groups):
        m = Model(names).fit([feats[i] for i in tr], y[tr])
        s = m.scores([feats[i] for i in te])
        oof[te], flag[te] = s, s >= m.threshold
    blocked = np.array([any(f.get("blocked", 0.0) for f in fs) for fs in feats])
    flag &= ~blocked  # supported: above the threshold and no blocking problem (as the verifier decides)
    return oof, flag


def metrics(y: np.ndarray, consistency: np.ndarray, score: np.ndarray, flag: np.ndarray | None = None) -> dict:
    from scipy.stats import spearmanr
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    out = {"auc": roc_auc_score(y, score), "spearman": float(spearmanr(score, consistency).statistic)}
    out["bacc"] = balanced_accuracy_score(y, flag) if flag is not None else float("nan")
    return out


def fit_all(feats, y, names) -> dict:
    return Model(names).fit(feats, y).to_json()

