"""The span reader's runtime paths on RealTime QA, live: the same ranking, the phrase read by each path.

    python benchmarks/span_runtimes.py [--realtimeqa FILE ...] [--cache-dir DIR] [--graph-cache DIR]

Every question is asked at its quiz date (the batch CLI's replay) through the shipped answerer, once per
span reader path: PyTorch as ``auto`` loads it on this CPU (bf16 where native), PyTorch's dynamic int8
(the path of a CPU without native bf16 before the ONNX reader), and ONNX Runtime int8 and float32 (the
path such a CPU takes now, and ``EMBED_BACKEND=onnx``'s exact one). The ranking is the same in every run,
so only the phrase (and the lines it leads) differs. Printed per path: the first line right / wrong /
vague / abstained (judged as in ``ask_quality.py``: the gold answer's words, another option's) over
every question of the file, how often a short answer leads, and the time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ask_quality import answer_pattern, build_index, judge, load_realtimeqa  # noqa: E402
from bot.engines.answerer import Answerer  # noqa: E402
from models.embedder import Embedder  # noqa: E402
from models.span_reader import open_span_reader  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "realtimeqa"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realtimeqa", type=Path, nargs="+",
                    default=[DATA / "realtimeqa_2022.jsonl", DATA / "realtimeqa_2024_2025.jsonl"])
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default: a temp folder)")
    ap.add_argument("--graph-cache", type=Path, default=None, help="ONNX graphs (default: a temp folder)")
    args = ap.parse_args(argv)
    missing = [p for p in args.realtimeqa if not p.is_file()]
    if missing:
        print(f"missing {missing[0]}: pass --realtimeqa FILE", file=sys.stderr)
        return 2
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="precis-span-rt-"))
    graphs = args.graph_cache or Path(tempfile.mkdtemp(prefix="precis-span-graphs-"))
    emb = Embedder("minilm", threads=1, cache_dir=cache)
    print(f"embedder {emb.path}; 1 thread")
    readers = {
        f"torch, auto ({open_span_reader('precis-span', threads=1).path})": open_span_reader("precis-span", threads=1),
        "torch-int8 (old non-bf16 path)": open_span_reader("precis-span", threads=1, precision="int8"),
        "onnx-int8 (non-bf16 path now)": open_span_reader("precis-span", threads=1, backend="onnx",
                                                          precision="int8", cache_dir=graphs),
        "onnx-float32": open_span_reader("precis-span", threads=1, backend="onnx", precision="float32",
                                         cache_dir=graphs),
    }
    for path in args.realtimeqa:
        questions, articles = load_realtimeqa(path, None)
        index = build_index(articles, emb, cache, path.stem)
        qs = [q for q in questions if q.asked is not None]
        for name, reader in readers.items():
            ans = Answerer(index, span_reader=reader)
            count = {"correct": 0, "wrong": 0, "vague": 0, "abstained": 0}
            short = 0
            t = time.perf_counter()
            for q in qs:
                a = ans.answer(q.text, asked_at=q.asked)
                got = "abstained" if a.abstained else judge(a.lines[0], answer_pattern(q.answers),
                                                            answer_pattern(q.wrong))
                count[got] += 1
                short += bool(a.short)
            n = max(len(qs), 1)
            print(f"{path.name} live n={len(qs)} {name:30s} first line right {100 * count['correct'] / n:.1f} % "
                  f"wrong {100 * count['wrong'] / n:.1f} % vague {100 * count['vague'] / n:.1f} % abstained "
                  f"{100 * count['abstained'] / n:.1f} %; a short answer leads {100 * short / n:.1f} % "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
