"""Summary quality: ROUGE-1/2/Lsum F1 (rouge-score, stemming on) and ms per article.

Systems, all fed the same pre-split sentences and the same budget:
  precis      this project's extractive mode
  lead        the first N sentences
  textrank / lexrank / luhn   sumy, through its object document model

Data (defaults point at ../shared/data):
  BBC News Summary   budget = the reference's sentence count
  CNN/DailyMail dev  3 sentences against the highlights

    python benchmarks/summary_quality.py [--bbc DIR] [--cnndm FILE] [--limit N] [--ablate]

Abstractive mode (``--abstractive``, CNN/DailyMail only, 3 sentences vs highlights),
one table, same articles, same run:
  lead-3              the first 3 sentences
  precis extractive   this project's extractive mode
  precis abstractive  grounded rewriting with the generator (bot/engines/abstractive.py)
  bare <model>        the generator alone, prompted with the article's first 600 words
                      ("Summarize this news article in three short sentences."), greedy,
                      90 new tokens: no grounding, no guard
with ROUGE-1/2/Lsum, entity precision (the share of numbers and capitalised names in
the summaries that occur in the article; exact word/value match, micro-averaged),
new bigrams (share of the summaries' word bigrams not in the article), subseq (share of
summary sentences whose words are a subsequence of one article sentence), verif. (share
of summary sentences the verifier passes against the whole article, lexical model),
seconds per article p50/p95, the process's peak RSS after each system (ru_maxrss;
it only grows, so each row includes what came before), and the abstractive
engine's dropped sentences and extractive fallbacks.

    python benchmarks/summary_quality.py --abstractive [--abstractive-only]
        [--abstractive-limit N] [--model smollm2-135m-instruct]
        [--model-cache /tmp/precis-models] [--threads N] [--abstractive-free]

Verifier (``--verify``, SummEval dev: 800 system summaries of 50 CNN/DM articles, a
summary consistent when all three experts gave consistency 5): ROC-AUC of the verifier's
score, Spearman with the mean consistency, balanced accuracy of ``supported``, next to the
bigram-overlap, MiniLM-cosine (weakest sentence's best cosine), entity-overlap and guard
baselines. The verifier's weights and every threshold are fitted on 4/5 of the articles and
scored on the rest (5 folds by article); ``--fit`` then refits on the whole file and writes
bot/grounding/verifier_weights.json. ``--verify-lm`` adds the SmolLM2 likelihood features.

    python benchmarks/summary_quality.py --verify [--summeval FILE] [--verify-lm] [--fit]
        [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.corpus.article import Article  # noqa: E402
from bot.corpus.loader import parse_plain  # noqa: E402
from bot.corpus.segment import split_sentences  # noqa: E402
from bot.engines.extractive import ExtractiveSummarizer, Weights  # noqa: E402
from bot.index.cache import EmbeddingCache  # noqa: E402
from bot.index.sentence_index import SentenceIndex  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ABLATIONS = ["dense", "lexical", "title", "position", "length", "brevity", "redundancy", "lead_share", "lead_long_cost"]


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


def detokenise_ptb(text: str) -> str:
    """SummEval's articles are PTB-tokenised ("team 's", `` ``): back to plain text, and its
    "( CNN ) " opening glued to the first word as in the raw CNN/DM files."""
    t = text.replace("`` ", '"').replace(" ''", '"').replace("``", '"').replace("''", '"')
    t = re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1", t)
    t = re.sub(r" ([.,;:!?%)])", r"\1", t)
    t = re.sub(r"([($]) ", r"\1", t)
    return re.sub(r"^\(CNN\)\s+", "(CNN)", t)


def load_summeval_articles(path: Path, limit: int | None) -> list[tuple[Article, str, int]]:
    """SummEval's CNN/DM test articles with their reference highlights: a second CNN/DM part,
    disjoint from cnndm_dev.jsonl, for fitting on one part and reporting on the other."""
    items = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        art = Article.build(id=obj["id"], title="", text=detokenise_ptb(obj["article"]))
        ref = "\n".join(h.strip() for h in obj["reference"].splitlines() if h.strip())
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
class Rouge:
    """ROUGE-1/2/Lsum F-measures (stemmed), accumulated over summaries; ``means()`` in points."""

    def __init__(self) -> None:
        from rouge_score import rouge_scorer

        self.scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
        self.scores: dict[str, list[float]] = {"rouge1": [], "rouge2": [], "rougeLsum": []}

    def add(self, reference: str, summary: list[str]) -> None:
        sc = self.scorer.score(reference, "\n".join(summary))
        for key, values in self.scores.items():
            values.append(sc[key].fmeasure)

    def means(self) -> dict:
        return {label: 100 * statistics.fmean(self.scores[key])
                for label, key in (("R1", "rouge1"), ("R2", "rouge2"), ("RLsum", "rougeLsum"))}


def evaluate(name: str, items, summarize) -> dict:
    rouge, ms = Rouge(), []
    for i, (art, ref, n) in enumerate(items):
        t = time.perf_counter()
        summary = summarize(i, art, n)
        ms.append((time.perf_counter() - t) * 1000)
        rouge.add(ref, summary)
    ms_sorted = sorted(ms)
    return {
        "system": name,
        **rouge.means(),
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


# ------------------------------------------------------------- abstractive
BARE_WORDS = 600
BARE_TOKENS = 90
BARE_PROMPT = "Summarize this news article in three short sentences.\n\n{text}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def entity_counts(summary: list[str], article_text: str) -> tuple[int, int]:
    """(claims, claims found in the article): numbers by value, names word by word, exactly.

    Claims are what bot.grounding.claims extracts (numbers, capitalised names,
    dates); unlike the guard, names must occur word for word here (no
    Kazakh~Kazakhstan prefix rule, no acronyms).
    """
    from bot.grounding.claims import _WORD, _name_token, _norm, _Support, extract

    article_text = _norm(article_text)
    sup = _Support([article_text])
    words = {_name_token(m.group(0)) for m in _WORD.finditer(article_text)}
    words |= {p for w in list(words) if "-" in w for p in w.split("-") if p}
    total = found = 0
    for line in summary:
        for c in extract(line):
            total += 1
            if c.kind == "number":
                found += sup.has_value(c.key[1])
            elif c.kind == "date":
                found += sup.has_date(c.key[1])
            else:
                found += all(t in words or all(p in words for p in t.split("-") if p) for t in c.key[1:])
    return total, found


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(w in it for w in small)


def novelty_counts(summary: list[str], sentences: tuple[str, ...], verifier) -> tuple[int, int, int, int, int]:
    """(bigrams, new bigrams, sentences, sentences that are a subsequence of one article sentence, verified)."""
    from bot.grounding.text import tokens

    art_toks = [tokens(s) for s in sentences]
    art_bi = {b for t in art_toks for b in zip(t, t[1:])}
    bi = new = subseq = 0
    for line in summary:
        t = tokens(line)
        pairs = list(zip(t, t[1:]))
        bi += len(pairs)
        new += sum(p not in art_bi for p in pairs)
        subseq += any(_is_subsequence(t, a) for a in art_toks)
    verdict = verifier(list(sentences), summary) if summary else None
    verified = sum(s.supported for s in verdict.sentences) if verdict else 0
    return bi, new, len(summary), subseq, verified


def evaluate_abs(name: str, items, summarize) -> dict:
    """Like :func:`evaluate`, plus entity precision, novelty, verifier pass rate, s/article p50/p95, peak RSS."""
    from bot.grounding.verifier import Verifier

    verifier = Verifier()
    rouge, secs = Rouge(), []
    claims = found = words = 0
    nov = np.zeros(5, dtype=np.int64)
    for i, (art, ref, n) in enumerate(items):
        t = time.perf_counter()
        summary = summarize(i, art, n)
        secs.append(time.perf_counter() - t)
        rouge.add(ref, summary)
        nov += np.array(novelty_counts(summary, art.sentences, verifier))
        c, f = entity_counts(summary, " ".join(art.sentences))
        claims, found = claims + c, found + f
        words += sum(len(x.split()) for x in summary)
        if (i + 1) % 10 == 0 and statistics.fmean(secs) > 0.5:
            print(f"  [{name}] {i + 1}/{len(items)} articles, {statistics.fmean(secs):.1f}s/article", file=sys.stderr)
    ss = sorted(secs)
    return {
        "system": name,
        **rouge.means(),
        "entity_precision": found / claims if claims else 1.0,
        "new_bigrams": nov[1] / max(nov[0], 1),
        "subsequence": nov[3] / max(nov[2], 1),
        "verified": nov[4] / max(nov[2], 1),
        "claims": claims,
        "words": words / max(len(items), 1),
        "p50_s": ss[len(ss) // 2],
        "p95_s": ss[int(0.95 * (len(ss) - 1))],
        "peak_rss_mb": peak_rss_mb(),
        "dropped": "",
        "fallbacks": "",
    }


def print_abs_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'system':<28}{'R1':>6}{'R2':>6}{'RLsum':>7}{'ent.prec':>9}{'new bi':>7}{'subseq':>7}{'verif.':>7}"
        f"{'words':>7}{'p50 s':>7}{'p95 s':>7}"
        f"{'peak RSS MB':>12}{'dropped':>9}{'fallback':>9}"
    )
    for r in rows:
        print(
            f"{r['system']:<28}{r['R1']:6.1f}{r['R2']:6.1f}{r['RLsum']:7.1f}{r['entity_precision']:9.3f}"
            f"{r['new_bigrams']:7.1%}{r['subsequence']:7.1%}{r['verified']:7.1%}"
            f"{r['words']:7.1f}{r['p50_s']:7.2f}{r['p95_s']:7.2f}{r['peak_rss_mb']:12.0f}"
            f"{str(r['dropped']):>9}{str(r['fallbacks']):>9}"
        )


class StandAlone:
    """Lines that stand on their own, counted over abstractive results: shown lines (generated or the
    article's own sentence), lines left out, shown lines with a reference no earlier line resolves
    (bot/grounding/references.py, the engine's own detector), and report attributions kept (a shown
    line made from a sentence with "the paper said" / "..., X reported" / "according to ..." still says who)."""

    def __init__(self) -> None:
        self.shown = self.own = self.left_out = self.unresolved = self.attr = self.attr_kept = 0
        self.examples: list[str] = []

    def add(self, res) -> None:
        from bot.engines.abstractive import CONTEXT, _attributions, context_problem
        from bot.grounding.references import count_unresolved

        lines = list(res.lines)
        self.shown += len(lines)
        self.own += sum(1 for x in lines if x.own)
        self.left_out += sum(1 for _, why in res.dropped if "which no shown line explains" in why)
        src = [(x.source or x.support[0]) for x in lines]
        refs = count_unresolved([(x.text, (s.article, s.index)) for x, s in zip(lines, src)])
        for x, r in zip(lines, refs):
            if r is not None:
                self.unresolved += 1
                if len(self.examples) < 5:
                    self.examples.append(f"{r.word!r}: {x.text[:110]}")
        for x, s in zip(lines, src):
            if _attributions(s.text):
                self.attr += 1
                why = context_problem(x.text, s.text, names_person=True) or ""
                self.attr_kept += int(not why.startswith(f"{CONTEXT}: attribution dropped"))

    def print(self, title: str) -> None:
        n = max(self.shown, 1)
        print(f"\nStand-alone lines: {title}")
        print(f"  shown {self.shown} (generated {self.shown - self.own}, the article's own sentence {self.own}); "
              f"left out as leaning on an unshown sentence: {self.left_out}")
        print(f"  unresolved references: {self.unresolved}/{self.shown} = {self.unresolved / n:.1%} of shown lines")
        print(f"  report attributions kept: {self.attr_kept}/{self.attr}"
              f" = {self.attr_kept / max(self.attr, 1):.1%} of shown lines made from an attributed sentence")
        for e in self.examples:
            print(f"    unresolved {e}")


def run_sample_abstractive(gen, embedder, cache_dir: Path, weights: Weights) -> None:
    """The bot's own sample corpus, as a member meets it: each article's 3-line abstractive summary."""
    from bot.config import SAMPLE_CORPUS
    from bot.corpus.loader import load_corpus
    from bot.engines.abstractive import AbstractiveSummarizer

    arts = load_corpus(SAMPLE_CORPUS).articles
    index = SentenceIndex(embedder, EmbeddingCache(cache_dir, embedder.name, embedder.dim))
    index.build(arts, progress=False)
    summ = AbstractiveSummarizer(index, ExtractiveSummarizer(index, weights), gen)
    standalone, claims, found = StandAlone(), 0, 0
    for row, art in enumerate(arts):
        res = summ(row, 3)
        standalone.add(res)
        c, f = entity_counts([x.text for x in res.lines], " ".join(art.sentences))
        claims, found = claims + c, found + f
    standalone.print(f"the sample corpus ({len(arts)} articles, 3 lines each)")
    print(f"  entity precision {found / max(claims, 1):.3f} ({claims} names and numbers)")


def run_abstractive(items, embedder, cache_dir: Path, weights: Weights, args) -> list[dict]:
    import os

    from bot.engines.abstractive import AbstractiveConfig, AbstractiveSummarizer
    title = f"CNN/DailyMail dev, abstractive ({len(items)} articles, 3 sentences vs highlights)"
    index = SentenceIndex(embedder, EmbeddingCache(cache_dir, embedder.name, embedder.dim))
    index.build([a for a, _, _ in items], progress=True)
    extractive = ExtractiveSummarizer(index, weights)
    rows = [
        evaluate_abs("lead-3", items, lambda i, a, n: list(a.sentences[:n])),
        evaluate_abs("precis extractive", items, lambda i, a, n: [x.text for x in extractive(i, n)]),
    ]
    t = time.perf_counter()
    from models.generator import open_generator

    gen = open_generator(args.model, backend=args.gen_backend, cache_dir=args.model_cache, threads=args.threads,
                         dtype=args.dtype, model_name=args.gen_model_name,
                         api_key=os.environ.get("SUMMARY_API_KEY") or None)
    load_s = time.perf_counter() - t
    print(
        f"[abstractive] generator {gen.name} ({gen.describe()}) loaded in {load_s:.1f}s; "
        f"torch threads {__import__('torch').get_num_threads()}; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs",
        file=sys.stderr,
    )

    def abstractive_row(name: str, config: AbstractiveConfig) -> dict:
        summ = AbstractiveSummarizer(index, extractive, gen, config)
        dropped, fallbacks = [0], [0]

        def run(i, a, n):
            res = summ(i, n)
            standalone.add(res)
            dropped[0] += len(res.dropped)
            fallbacks[0] += int(res.fell_back)
            if args.verbose:
                print(f"  #{i}: {[x.text for x in res.lines]} dropped={list(res.dropped)}", file=sys.stderr)
            return [x.text for x in res.lines]

        standalone = StandAlone()
        row = evaluate_abs(name, items, run)
        row["dropped"], row["fallbacks"] = dropped[0], fallbacks[0]
        standalone.print(f"{name}, {title}")
        return row

    rows.append(abstractive_row("precis abstractive", AbstractiveConfig()))
    if args.abstractive_free:
        rows.append(abstractive_row("precis abstr. unconstrained", AbstractiveConfig(constrained=False)))

    def bare(i, a, n):
        text = " ".join(" ".join(a.sentences).split()[:BARE_WORDS])
        out = gen.generate(BARE_PROMPT.format(text=text), max_new_tokens=BARE_TOKENS)
        return split_sentences(out) or [out]

    if not args.skip_bare:
        rows.append(evaluate_abs(f"bare {gen.name}"[:28], items, bare))
    run_sample_abstractive(gen, embedder, cache_dir, weights)
    print_abs_table(title, rows)
    print(
        f"(generator load {load_s:.1f}s, not counted per article; load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    return rows


# ------------------------------------------------------------------ verifier
def _cv_threshold_flags(score: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``score >= t`` with t the best balanced-accuracy threshold of the other folds (by article)."""
    from sklearn.model_selection import GroupKFold

    from verifier_fit import best_threshold

    flag = np.zeros(len(y), dtype=bool)
    for tr, te in GroupKFold(5).split(score, y, groups):
        flag[te] = score[te] >= best_threshold(score[tr], y[tr])
    return flag


def verify_baselines(items: list[dict], embedder) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """name -> (score, fixed flags or None): bigram overlap, MiniLM cosine, entity overlap, today's guard."""
    from bot.grounding import claims
    from bot.grounding.text import detokenize, tokens
    from bot.grounding.verifier import Article as Source

    bigram, cosine, entity, guard_s, guard_f = [], [], [], [], []
    sources: dict[str, Source] = {}
    vecs: dict[str, np.ndarray] = {}
    for it in items:
        src = sources.get(it["article_id"]) or sources.setdefault(it["article_id"], Source(it["article"]))
        summary = detokenize(it["summary"])
        art_toks = tokens(src.text)
        art_bi = set(zip(art_toks, art_toks[1:]))
        toks = tokens(summary)
        bi = list(zip(toks, toks[1:]))
        bigram.append(sum(b in art_bi for b in bi) / len(bi) if bi else 1.0)
        checked = claims.check(summary, [src.text])
        entity.append(sum(ok for _, ok in checked) / len(checked) if checked else 1.0)
        bad = claims.unsupported(summary, [src.text])
        guard_s.append(1.0 / (1.0 + len(bad)))
        guard_f.append(not bad)
        if it["article_id"] not in vecs:
            vecs[it["article_id"]] = embedder.encode([s.text for s in src.sentences])
        sents = split_sentences(summary) or [summary]
        sims = embedder.encode(sents) @ vecs[it["article_id"]].T
        cosine.append(float(sims.max(1).min()))
    return {
        "bigram overlap": (np.array(bigram), None),
        "MiniLM cosine": (np.array(cosine), None),
        "entity overlap": (np.array(entity), None),
        "guard (today)": (np.array(guard_s), np.array(guard_f)),
    }


def run_verify(args, embedder) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import verifier_fit as vf

    items = vf.load_summeval(args.summeval)
    y = np.array([it["consistency"] == 5.0 for it in items], dtype=int)
    cons = np.array([it["consistency"] for it in items])
    groups = np.array([it["article_id"] for it in items])
    n_art = len(set(groups))
    print(f"\nSummEval dev: {len(items)} summaries of {n_art} articles, {int(y.sum())} consistent (consistency 5.0)")
    rows = []
    t = time.perf_counter()
    for name, (score, flags) in verify_baselines(items, embedder).items():
        f = flags if flags is not None else _cv_threshold_flags(score, y, groups)
        rows.append((name, vf.metrics(y, cons, score, f)))
    print(f"  baselines scored in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    lm = None
    if args.verify_lm:
        from bot.grounding.likelihood import LikelihoodScorer
        from models.generator import Generator

        gen = Generator(args.model, cache_dir=args.model_cache, threads=args.threads, dtype=args.dtype)
        print(f"  likelihood scorer: {gen.name} ({gen.dtype})", file=sys.stderr)
        lm = LikelihoodScorer(gen)
    cache = args.cache_dir
    t = time.perf_counter()
    feats = vf.sentence_features(items, cache, lm)
    feat_s = time.perf_counter() - t
    from bot.grounding.verifier import FEATURES

    # The shipped models are the small ones (fewer knobs, and they score no worse than all features).
    models = {"verifier, all lexical features": list(FEATURES), "precis verifier, lexical": vf.LEXICAL}
    if lm is not None:
        models["verifier, all + SmolLM2"] = list(FEATURES) + vf.LM_FEATURES
        models["precis verifier, + SmolLM2"] = vf.LEXICAL + vf.LM_SHIPPED
    fitted = {}
    for name, names in models.items():
        oof, flag = vf.cross_validate(feats, y, groups, names)
        rows.append((name + " (CV)", vf.metrics(y, cons, oof, flag)))
        fitted[name] = vf.fit_all(feats, y, names)
    print(f"\nVerifier vs baselines (scores and thresholds cross-validated by article, 5 folds)")
    print(f"{'system':<40}{'ROC-AUC':>9}{'Spearman':>10}{'bal.acc':>9}")
    for name, m in rows:
        print(f"{name:<40}{m['auc']:9.3f}{m['spearman']:10.3f}{m['bacc']:9.3f}")
    print(f"(features for {len(items)} summaries in {feat_s:.1f}s{' (cached)' if feat_s < 1 else ''}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if args.fit:
        from bot.grounding.verifier import WEIGHTS_PATH

        out = {"lexical": fitted["precis verifier, lexical"],
               "note": "fitted by benchmarks/summary_quality.py --verify --fit on SummEval dev (800 summaries)"}
        if lm is not None:
            out["lm"] = fitted["precis verifier, + SmolLM2"]
        elif WEIGHTS_PATH.is_file() and "lm" in (old := json.loads(WEIGHTS_PATH.read_text())):
            out["lm"] = old["lm"]  # not refitted without --verify-lm: kept as it was
        WEIGHTS_PATH.write_text(json.dumps(out, indent=1) + "\n")
        print(f"weights fitted on the whole file written to {WEIGHTS_PATH}")


LEAD_GRID = {"lead_position": (0.5, 1.0, 1.5, 2.0, 3.0), "lead_long_cost": (0.0, 0.5, 1.0, 2.0, 3.0)}


def run_lead_fit(parts: dict[str, list], embedder, cache_dir: Path, weights: Weights) -> None:
    """Fit the news lead's two knobs on one CNN/DM part, report on the other, and swap."""
    from itertools import product

    indexes = {}
    for name, items in parts.items():
        ix = SentenceIndex(embedder, EmbeddingCache(cache_dir, embedder.name, embedder.dim))
        ix.build([a for a, _, _ in items], progress=False)
        indexes[name] = ix

    def r1(name: str, w: Weights) -> float:
        summ = ExtractiveSummarizer(indexes[name], w)
        return evaluate("x", parts[name], lambda i, a, n: [x.text for x in summ(i, n)])["R1"]

    lead = {n: evaluate("lead", items, lambda i, a, n: list(a.sentences[:n]))["R1"] for n, items in parts.items()}
    grid = [dict(zip(LEAD_GRID, v)) for v in product(*LEAD_GRID.values())]
    table = {n: [r1(n, Weights(**{**weights.__dict__, **g})) for g in grid] for n in parts}
    shipped = {n: r1(n, weights) for n in parts}
    print("\nNews lead: knobs fitted on one CNN/DM part, ROUGE-1 reported on the other "
          f"(grid {dict(LEAD_GRID)}; window {weights.lead_window}, long = {weights.lead_long_words:g} words)")
    print(f"{'fitted on':<14}{'reported on':<14}{'knobs':<40}{'R1':>7}{'lead-3':>8}{'gain':>7}")
    names = list(parts)
    for fit, rep in ((names[0], names[1]), (names[1], names[0])):
        best = max(range(len(grid)), key=lambda k: (table[fit][k], -k))
        print(f"{fit:<14}{rep:<14}{str(grid[best]):<40}{table[rep][best]:7.2f}{lead[rep]:8.2f}"
              f"{table[rep][best] - lead[rep]:+7.2f}")
    for n in names:
        print(f"{'shipped':<14}{n:<14}{'(in-sample for both parts)':<40}{shipped[n]:7.2f}{lead[n]:8.2f}"
              f"{shipped[n] - lead[n]:+7.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bbc", type=Path, default=DATA / "bbc-news-summary")
    ap.add_argument("--cnndm", type=Path, default=DATA / "cnndm" / "cnndm_dev.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="articles per set (default: all)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default: a temp folder)")
    ap.add_argument("--precision", default="auto", help="embedder precision: auto (the bot's), float32, bfloat16, int8;"
                    " vectors are cached per model, so give each precision its own --cache-dir")
    ap.add_argument("--backend", default="auto", help="embedder runtime: auto (the bot's), torch, onnx; an ONNX"
                    " graph is exported into --cache-dir/onnx (or a temp folder)")
    ap.add_argument("--ablate", action="store_true", help="also run with each scoring part switched off")
    ap.add_argument("--weights", default="", help="override weights, e.g. position=1.5,redundancy=0.3")
    ap.add_argument("--lead-fit", action="store_true", help="fit the news lead's knobs on one CNN/DM part"
                    " (cnndm_dev) and report on the other (SummEval's 50 articles), and swap")
    ap.add_argument("--abstractive", action="store_true", help="add the abstractive table (CNN/DailyMail)")
    ap.add_argument("--abstractive-only", action="store_true", help="only the abstractive table")
    ap.add_argument("--abstractive-limit", type=int, default=None, help="CNN/DM articles for it (default: all)")
    ap.add_argument("--abstractive-free", action="store_true", help="also the engine without copy constraints")
    ap.add_argument("--model", default="smollm2-135m-instruct", help="generator (bundled name, folder, hub id)")
    ap.add_argument("--model-cache", type=Path, default=Path("/tmp/precis-models"),
                    help="where the de-quantised GGUF is kept between runs")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the generator")
    ap.add_argument("--gen-backend", default="auto", help="generator backend: auto (the bot's: llama.cpp for a"
                    " .gguf when xllamacpp is installed), transformers, llamacpp, openai (--model is then a server"
                    " URL http://host:port/v1; key from $SUMMARY_API_KEY). benchmarks/generator_backends.py runs"
                    " each in its own process and compares them")
    ap.add_argument("--gen-model-name", default="", help="the served model's name (openai backend)")
    ap.add_argument("--dtype", default="auto", help="generator dtype: auto (the bot's: bfloat16 on CPUs with native"
                    " bf16, else float32), float32, bfloat16")
    ap.add_argument("--skip-bare", action="store_true", help="leave out the bare-model row (the slow one)")
    ap.add_argument("--verbose", action="store_true", help="print each abstractive summary")
    ap.add_argument("--verify", action="store_true", help="only the verifier table (SummEval)")
    ap.add_argument("--summeval", type=Path, default=DATA / "summeval" / "summeval_dev.jsonl")
    ap.add_argument("--verify-lm", action="store_true", help="verifier: add the SmolLM2 likelihood features")
    ap.add_argument("--fit", action="store_true", help="verifier: write the weights fitted on the whole file")
    args = ap.parse_args(argv)
    if args.abstractive_only:
        args.abstractive = True
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from models.embedder import Embedder

    weights = Weights(**{k: float(v) for k, v in (kv.split("=") for kv in args.weights.split(",") if kv)})
    embedder = Embedder("minilm", precision=args.precision, backend=args.backend,
                        cache_dir=args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-graph-")))
    print(f"embedder precision: {embedder.precision} (path {embedder.path})")
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-bench-"))
    if args.verify:
        args.cache_dir = cache_dir
        run_verify(args, embedder)
        return 0
    print(f"weights: {weights}")
    if args.abstractive_only:
        pass
    elif args.bbc.is_dir():
        run_set("BBC News Summary (budget = reference sentence count)", load_bbc(args.bbc, args.limit),
                embedder, cache_dir, args.ablate, weights)
    else:
        print(f"skipped BBC: {args.bbc} not found")
    if not args.cnndm.is_file():
        print(f"skipped CNN/DM: {args.cnndm} not found")
        return 0
    if not args.abstractive_only:
        run_set("CNN/DailyMail dev (3 sentences vs highlights)", load_cnndm(args.cnndm, args.limit),
                embedder, cache_dir, args.ablate, weights)
        if args.summeval.is_file():
            run_set("CNN/DailyMail part B: SummEval's 50 articles (3 sentences vs highlights)",
                    load_summeval_articles(args.summeval, args.limit), embedder, cache_dir, args.ablate, weights)
    if args.lead_fit and args.summeval.is_file():
        run_lead_fit({"cnndm_dev": load_cnndm(args.cnndm, args.limit),
                      "summeval": load_summeval_articles(args.summeval, args.limit)}, embedder, cache_dir, weights)
    if args.abstractive:
        run_abstractive(load_cnndm(args.cnndm, args.abstractive_limit), embedder, cache_dir, weights, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
