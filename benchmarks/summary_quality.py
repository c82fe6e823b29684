"""Summary quality: ROUGE-1/2/Lsum F1 (rouge-score, stemming on) and ms per article.

Systems, all fed the same pre-split sentences and the same budget:
  precis      this project's extractive mode
  lead        the first N sentences
  textrank / lexrank / luhn   sumy, through its object document model

Data (defaults point at ../shared/data):
  BBC News Summary   budget = the reference's sentence count
  CNN/DailyMail dev  3 sentences against the highlights

    python benchmarks/summary_quality.py [--bbc DIR] [--cnndm FILE] [--limit N] [--ablate]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.corpus.article import Article  # noqa: E402
from bot.corpus.loader import parse_plain  # noqa: E402
from bot.corpus.segment import split_sentences  # noqa: E402
from bot.engines.extractive import ExtractiveSummarizer, Weights  # noqa: E402
from bot.index.cache import EmbeddingCache  # noqa: E402
from bot.index.sentence_index import SentenceIndex  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ABLATIONS = ["dense", "lexical", "title", "position", "length", "brevity", "redundancy"]


# --------------------------------------------------------------------- data
_GLUED = re.compile(r"(?<=[A-Za-z0-9%)][.!?])(?=[A-Z][a-z])|(?<=[a-z0-9%)][.!?])(?=[A-Z])|(?<=[.!?][\"”])(?=[A-Z\"“])|(?<=[a-z0-9%)][.!?])(?=[\"“][A-Z])")


def _read(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_reference(text: str) -> list[str]:
    """BBC references glue sentences together ("$10.9bn.For the year"): re-space, then split."""
    return split_sentences(_GLUED.sub(" ", text))


def load_bbc(folder: Path, limit: int | None) -> list[tuple[Article, str, int]]:
    items = []
    for art_path in sorted((folder / "News Articles").glob("*/*.txt")):
        ref_path = folder / "Summaries" / art_path.parent.name / art_path.name
        if not ref_path.is_file():
            continue
        text = _read(art_path)
        arts = parse_plain(text, str(art_path))
        if not arts or not arts[0].sentences:
            continue
        ref_sents = split_reference(_read(ref_path))
        items.append((arts[0], "\n".join(ref_sents), len(ref_sents)))
        if limit and len(items) >= limit:
            break
    return items


def load_cnndm(path: Path, limit: int | None) -> list[tuple[Article, str, int]]:
    items = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        art = Article.build(id=obj["id"], title="", text=obj["article"])
        ref = "\n".join(h.strip() for h in obj["highlights"].splitlines() if h.strip())
        items.append((art, ref, 3))
        if limit and len(items) >= limit:
            break
    return items


# ------------------------------------------------------------------ systems
class _Tok:
    """sumy tokenizer over pre-split sentences (its default one needs NLTK data)."""

    _word = re.compile(r"(?u)\w+(?:[-'.,]\w+)*")

    def to_words(self, sentence: str):
        return tuple(self._word.findall(sentence))

    def to_sentences(self, text: str):
        return tuple(split_sentences(text))


def sumy_systems():
    from sumy.nlp.stemmers import Stemmer
    from sumy.summarizers.lex_rank import LexRankSummarizer
    from sumy.summarizers.luhn import LuhnSummarizer
    from sumy.summarizers.text_rank import TextRankSummarizer
    from sumy.utils import get_stop_words

    out = {}
    for name, cls in (("textrank", TextRankSummarizer), ("lexrank", LexRankSummarizer), ("luhn", LuhnSummarizer)):
        s = cls(Stemmer("english"))
        s.stop_words = get_stop_words("english")
        out[name] = s
    return out


def sumy_summary(summarizer, sentences: tuple[str, ...], n: int) -> list[str]:
    from sumy.models.dom import ObjectDocumentModel, Paragraph, Sentence

    tok = _Tok()
    doc = ObjectDocumentModel([Paragraph([Sentence(s, tok) for s in sentences])])
    return [str(s) for s in summarizer(doc, n)]


# ------------------------------------------------------------------ scoring
def evaluate(name: str, items, summarize) -> dict:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    r1, r2, rl, ms = [], [], [], []
    for i, (art, ref, n) in enumerate(items):
        t = time.perf_counter()
        summary = summarize(i, art, n)
        ms.append((time.perf_counter() - t) * 1000)
        sc = scorer.score(ref, "\n".join(summary))
        r1.append(sc["rouge1"].fmeasure)
        r2.append(sc["rouge2"].fmeasure)
        rl.append(sc["rougeLsum"].fmeasure)
    ms_sorted = sorted(ms)
    return {
        "system": name,
        "R1": 100 * statistics.fmean(r1),
        "R2": 100 * statistics.fmean(r2),
        "RLsum": 100 * statistics.fmean(rl),
        "ms": statistics.fmean(ms),
        "p95_ms": ms_sorted[int(0.95 * (len(ms) - 1))],
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'system':<22}{'R1':>7}{'R2':>7}{'RLsum':>8}{'ms/art':>9}{'p95 ms':>9}")
    for r in rows:
        print(f"{r['system']:<22}{r['R1']:7.1f}{r['R2']:7.1f}{r['RLsum']:8.1f}{r['ms']:9.2f}{r['p95_ms']:9.2f}")


def run_set(title: str, items, embedder, cache_dir: Path, ablate: bool, weights: Weights) -> list[dict]:
    index = SentenceIndex(embedder, EmbeddingCache(cache_dir, embedder.name, embedder.dim))
    t = time.perf_counter()
    index.build([a for a, _, _ in items], progress=True)
    print(f"[{title}] {len(items)} articles, {len(index)} sentences indexed in {time.perf_counter() - t:.1f}s",
          file=sys.stderr)
    rows = []
    variants = [("precis", weights)]
    if ablate:
        variants += [(f"precis -{part}", weights.without(part)) for part in ABLATIONS]
    for name, w in variants:
        summ = ExtractiveSummarizer(index, w)
        rows.append(evaluate(name, items, lambda i, a, n, s=summ: [x.text for x in s(i, n)]))
    rows.append(evaluate("lead", items, lambda i, a, n: list(a.sentences[:n])))
    for name, s in sumy_systems().items():
        rows.append(evaluate(name, items, lambda i, a, n, s=s: sumy_summary(s, a.sentences, n)))
    print_table(title, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bbc", type=Path, default=DATA / "bbc-news-summary")
    ap.add_argument("--cnndm", type=Path, default=DATA / "cnndm" / "cnndm_dev.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="articles per set (default: all)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default: a temp folder)")
    ap.add_argument("--ablate", action="store_true", help="also run with each scoring part switched off")
    ap.add_argument("--weights", default="", help="override weights, e.g. position=1.5,redundancy=0.3")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from models.embedder import Embedder

    weights = Weights(**{k: float(v) for k, v in (kv.split("=") for kv in args.weights.split(",") if kv)})
    embedder = Embedder("minilm")
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-bench-"))
    print(f"weights: {weights}")
    if args.bbc.is_dir():
        run_set("BBC News Summary (budget = reference sentence count)", load_bbc(args.bbc, args.limit),
                embedder, cache_dir, args.ablate, weights)
    else:
        print(f"skipped BBC: {args.bbc} not found")
    if args.cnndm.is_file():
        run_set("CNN/DailyMail dev (3 sentences vs highlights)", load_cnndm(args.cnndm, args.limit),
                embedder, cache_dir, args.ablate, weights)
    else:
        print(f"skipped CNN/DM: {args.cnndm} not found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
