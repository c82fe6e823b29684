"""Story updates: how a developing story is told as what is new (bot.engines.digest).

Pairs of articles on one story from different days: RealTime QA's docs retrieved for
the same question, with different publish dates, the earlier one first (consecutive
dates; identical titles or texts dropped). For each pair the first digest covers the
earlier article (what it shows is kept, as the runner keeps it per post), the next
digest covers the later one with that earlier post to go on, through the real
``compose_digest`` and the bundled MiniLM embedder. A sentence "judged new" is one the
update may show: novel (``novel_mask``) and a statement (not a dateline, byline,
"(CNN)" or question).

Figures:
* same story: the later article's story was matched to the earlier post's (an update);
* per update: sentences shown, and the share of updates that are "no new facts";
* repeated facts left out: of the later article's sentences that repeat one earlier
  sentence (a lexical check independent of the embedder: at least 80 % of its content
  words, four or more, in one sentence of the earlier article), the share judged not new;
* shown but repeated: of the update sentences shown, the share that lexical check calls
  a repeat (lower is better).

Then ``--examples`` updates are printed for a hand check.

    python benchmarks/story_updates.py [--realtimeqa ../shared/data/realtimeqa/realtimeqa_2022.jsonl]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.corpus.article import Article  # noqa: E402
from bot.engines.digest import (NEAR_DUP_SIM, NOVEL_SIM, EarlierStory, _statement, compose_digest,  # noqa: E402
                                novel_mask)

WORD = re.compile(r"[a-z0-9]+")
STOP = set("that this with from have been were their there which would about after they them than then will what when "
           "also said says into over more most some such only other while where your just like could should".split())


def content(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if len(w) >= 4 and w not in STOP}


def repeats(sentence: str, earlier: list[set[str]]) -> bool:
    w = content(sentence)
    return len(w) >= 4 and max((len(w & e) / len(w) for e in earlier), default=0.0) >= 0.8


def load_pairs(path: Path, max_chars: int) -> list[tuple[dict, dict]]:
    pairs, seen = [], set()
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        q = json.loads(line)
        docs = sorted((d for d in q.get("docs", []) if d.get("publish_date") and d.get("text")),
                      key=lambda d: d["publish_date"])
        for a, b in zip(docs, docs[1:]):
            if a["publish_date"] == b["publish_date"] or a["title"] == b["title"] or a["text"] == b["text"]:
                continue
            key = (a["url"], b["url"])
            if key not in seen:
                seen.add(key)
                pairs.append((a, b))
    return pairs


def article(d: dict, k: int, max_chars: int) -> Article:
    return Article.build(id=f"{k}:{d['url']}", title=d["title"], date=d["publish_date"].replace("/", "-"),
                         url=d["url"], text=d["text"][:max_chars])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--realtimeqa", type=Path, default=Path("../shared/data/realtimeqa/realtimeqa_2022.jsonl"))
    ap.add_argument("--examples", type=int, default=30)
    ap.add_argument("--max-chars", type=int, default=6000, help="each article's text is cut to this many characters")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=None, help="DATA_DIR (its embedding cache is reused); a new one")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from bot.app import Precis
    from bot.config import Settings
    from models.embedder import Embedder

    tmp = Path(tempfile.mkdtemp(prefix="precis-stories-"))
    (tmp / "corpus").mkdir()
    app = Precis(Settings(_env_file=None, data_dir=args.data_dir or tmp / "data", corpus_path=tmp / "corpus"),
                 embedder=Embedder("minilm", device="cpu"))
    app.load(progress=False)
    pairs = load_pairs(args.realtimeqa, args.max_chars)
    arts = []
    for k, (a, b) in enumerate(pairs):
        arts += [article(a, 2 * k, args.max_chars), article(b, 2 * k + 1, args.max_chars)]
    app.add_articles(arts)
    print(f"{len(pairs)} pairs (docs of one question, different publish dates), thresholds: novel < {NOVEL_SIM}, "
          f"or < {NEAR_DUP_SIM} with a new number/name")

    index = app.snapshot.index
    row_of = {x.id: i for i, x in enumerate(index.articles)}
    matched, shown_n, nothing, rep_total, rep_left, shown_total, shown_rep, cand, b_total = 0, [], 0, 0, 0, 0, 0, 0, 0
    examples = []
    for k, (a, b) in enumerate(pairs):
        ida, idb = arts[2 * k].id, arts[2 * k + 1].id
        first = compose_digest(app, [ida])
        earlier = [EarlierStory(tuple(s["articles"]), tuple(s["sentences"])) for s in first.shown()]
        second = compose_digest(app, [idb], earlier=earlier)
        if not second.stories or not second.stories[0].update:
            continue
        matched += 1
        story = second.stories[0]
        shown_n.append(len(story.sentences))
        nothing += not story.sentences
        ra, rb = index.rows(row_of[ida]), index.rows(row_of[idb])
        a_sents = index.texts[ra.start:ra.stop]
        b_sents = index.texts[rb.start:rb.stop]
        a_words = [content(t) for t in a_sents]
        known_E = np.vstack([index.embed(list(earlier[0].sentences))[0], index.vectors(ra)]) if earlier[0].sentences \
            else index.vectors(ra)
        novel = novel_mask(index.vectors(rb), b_sents, known_E, list(earlier[0].sentences) + a_sents) \
            & np.array([_statement(t) for t in b_sents], dtype=bool)
        cand += int(novel.sum())
        b_total += len(b_sents)
        for t, nv in zip(b_sents, novel):
            if repeats(t, a_words):
                rep_total += 1
                rep_left += not nv
        for s in story.sentences:
            shown_total += 1
            shown_rep += repeats(s.text, a_words)
        best = dict(zip(b_sents, (index.vectors(rb) @ known_E.T).max(axis=1)))
        examples.append((a, b, first, story, best))
    n = len(pairs)
    print(f"same story (an update): {matched}/{n} = {matched / max(n, 1):.1%}")
    if matched:
        print(f"update sentences shown: mean {np.mean(shown_n):.2f} per update; 'no new facts': {nothing}/{matched} "
              f"= {nothing / matched:.1%}; later articles' sentences judged new: {cand}/{b_total} "
              f"= {cand / max(b_total, 1):.1%}")
        print(f"repeated facts left out: {rep_left}/{rep_total} = {rep_left / max(rep_total, 1):.1%}")
        print(f"shown but repeated (lexical): {shown_rep}/{shown_total} = {shown_rep / max(shown_total, 1):.1%}")
    random.Random(args.seed).shuffle(examples)
    for i, (a, b, first, story, best) in enumerate(examples[: args.examples], 1):
        print(f"\n--- {i}. earlier: {a['title'][:90]} ({a['publish_date']})")
        for s in first.stories[0].sentences if first.stories else ():
            print(f"    was shown: {s.text[:200]}")
        print(f"    later: {b['title'][:90]} ({b['publish_date']})")
        for s in story.sentences:
            print(f"    UPDATE ({best.get(s.text, 0):.2f}): {s.text[:240]}")
        if not story.sentences:
            print(f"    No new facts in {len(story.articles)} more article(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
