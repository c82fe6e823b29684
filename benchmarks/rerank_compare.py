"""Which reranker: the fine-tuned cross-encoder against SmolLM2 query likelihood, on the retriever's own pools.

    python benchmarks/rerank_compare.py --mined /tmp/precis-train/mined-realtimeqa_2022-30.json \
        --reranker /tmp/rr/f22 [--pool 20] [--ql-limit 120]

The pools are what ``training/reranker.py`` mines: every RealTime QA question asked live (at its quiz
date) with the bot's retriever's top candidates. For each question whose pool holds an answer string
and a sentence without one, each system orders the first ``--pool`` candidates and we count how often
its first sentence holds the answer (top-1) and how often one of its first three does (top-3):

  retriever      the retriever's own order (today's first stage)
  cross-encoder  the fine-tuned MiniLM cross-encoder (give weights not trained on the pools' year)
  query-lik.     SmolLM2-135M-Instruct (the bundled GGUF, through transformers), no training: the mean
                 log-probability of the question's tokens after "Passage: <sentence and its title>
                 Question:" (Nogueira-style query likelihood); on the first ``--ql-limit`` questions only
                 (it costs a 135M-parameter pass per candidate)

Latency per question (all candidates) is printed for each, on this machine's CPU path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ql_scorer(threads: int | None):
    """(score(question, cands) -> mean log-prob of the question per candidate, describe)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.registry import resolve
    from models.runtime import cpu_has_bf16

    spec = resolve("smollm2-135m-instruct", "generator")
    tok = AutoTokenizer.from_pretrained(spec.path, gguf_file=spec.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(spec.path, gguf_file=spec.gguf_file)
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    model = model.to(dtype).eval()
    if threads:
        torch.set_num_threads(threads)

    from types import SimpleNamespace

    from bot.grounding.likelihood import LikelihoodScorer

    # the summaries' likelihood scorer (same model, same batching): log p of each question token after its prompt
    scorer = LikelihoodScorer(SimpleNamespace(tokenizer=tok, model=model))

    def score(question: str, cands: list[dict]) -> np.ndarray:
        prompts = [tok(f"Passage: {c['text']} ({c['title']})\nQuestion:", add_special_tokens=False)["input_ids"][-200:]
                   for c in cands]
        q_ids = tok(" " + question, add_special_tokens=False)["input_ids"]
        return np.array([float(lp.mean()) for lp in scorer._token_logp(prompts, [q_ids] * len(cands))])  # noqa: SLF001

    return score, f"SmolLM2-135M-Instruct via transformers ({str(dtype).replace('torch.', '')})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mined", type=Path, required=True)
    ap.add_argument("--reranker", default="precis-reranker")
    ap.add_argument("--pool", type=int, default=20)
    ap.add_argument("--ql-limit", type=int, default=120)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    from models.reranker import Reranker

    mined = json.loads(args.mined.read_text())
    qs = [q for q in mined if any(c["pos"] for c in q["cands"][: args.pool])
          and not all(c["pos"] for c in q["cands"][: args.pool])]
    ce = Reranker(args.reranker, threads=args.threads or None)
    ql, ql_name = ql_scorer(args.threads or None)
    res = {name: {"top1": [], "top3": [], "ms": []} for name in ("retriever", "cross-encoder", "query-lik.")}
    for i, q in enumerate(qs):
        cands = q["cands"][: args.pool]
        y = np.array([c["pos"] for c in cands])
        systems = [("retriever", lambda: -np.arange(len(cands), dtype=float)),
                   ("cross-encoder", lambda: ce.score(q["question"], [(c["text"], c["title"], c["before"])
                                                                       for c in cands]))]
        if i < args.ql_limit:
            systems.append(("query-lik.", lambda: ql(q["question"], cands)))
        for name, fn in systems:
            t = time.perf_counter()
            s = np.asarray(fn(), dtype=float)
            res[name]["ms"].append((time.perf_counter() - t) * 1000)
            order = np.argsort(-s, kind="stable")
            res[name]["top1"].append(bool(y[order[0]]))
            res[name]["top3"].append(bool(y[order[:3]].any()))
    print(f"{args.mined.name}: {len(qs)} questions whose first {args.pool} candidates hold an answer string and a "
          f"sentence without; cross-encoder {args.reranker} ({ce.path}); query likelihood: {ql_name}")
    sub = min(args.ql_limit, len(qs))
    print("| system | questions | top-1 % | top-3 % | top-1 % on the first "
          f"{sub} (query likelihood's) | ms per question p50 / p95 |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        n = len(r["top1"])
        if n:
            print(f"| {name} | {n} | {100 * np.mean(r['top1']):.1f} | {100 * np.mean(r['top3']):.1f} | "
                  f"{100 * np.mean(r['top1'][:sub]):.1f} | {np.percentile(r['ms'], 50):.0f} / "
                  f"{np.percentile(r['ms'], 95):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
