"""Re-judge /ask's first line from a stored ``benchmarks/ask_quality.py --span ... --json OUT`` run with
the shipped phrase rule (:func:`bot.engines.answerer.whole_phrase` over the span reader's span), on the
very same answers: ranking, abstention and the span reader's span are the run's; only the last step,
"keep the span whole or lead with the sentence", is applied here. Prints, per held-out period and
protocol, the run's span reader first line ("span reader alone" in runs before the kept-whole step) and the
shipped one, right and wrong.

    python benchmarks/first_line_rejudge.py RUN.json [RUN.json ...] [--realtimeqa-dir DIR]

(A fresh ``ask_quality.py --span`` run prints the shipped rule directly: it is in ``Answerer.pick_phrase``.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ask_quality as aq  # noqa: E402
from bot.engines.answerer import whole_phrase  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "realtimeqa"


def wrong_choices(folder: Path) -> dict[str, list[str]]:
    out = {}
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                o = json.loads(line)
                gold = {str(a).strip().lower() for a in o.get("answers") or []}
                out[str(o["id"])] = [str(c) for c in o.get("choices") or []
                                     if str(c).strip() and str(c).strip().lower() not in gold]
    return out


def fold_stats(fold: dict, proto: str, wrong: dict[str, list[str]]) -> dict[str, float] | None:
    n = fold[proto]["n"]
    if not n:
        return None
    k = {"correct": 0, "wrong": 0, "vague": 0, "short": 0, "run_correct": 0, "run_wrong": 0, "run_vague": 0}
    for it in fold[proto + "_items"]:
        if it.get("judged") in (None, "abstained"):
            continue
        pat, wp = aq.answer_pattern(it["gold"]), aq.answer_pattern(wrong.get(it["id"], []))
        lines = it["answer"].split("\n")  # the rules' answer: [phrase,] sentence
        sentence, rules = lines[-1], (lines[0] if len(lines) > 1 else None)
        line = it["spanonly_line"]
        if line != sentence:
            phrase = whole_phrase(line, rules, sentence)
            line = phrase or sentence
            k["short"] += phrase is not None
        k[aq.judge(line, pat, wp)] += 1
        k["run_" + it["spanonly_first"]] += 1
    return {key: 100.0 * v / n for key, v in k.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--realtimeqa-dir", type=Path, default=DATA)
    args = ap.parse_args(argv)
    wrong = wrong_choices(args.realtimeqa_dir)
    print("| held out | protocol | span reader alone (the run): right / wrong | shipped (kept whole): right / wrong "
          "| a short answer leads |")
    print("|---|---|---|---|---|")
    for path in args.runs:
        d = json.loads(path.read_text())
        sets = [(f"{stem} periods", by["today"]["folds"]) for stem, by in (d.get("lmo") or {}).items()]
        sets += [(f"{y} year", [by["today"]]) for y, by in (d.get("year_out") or {}).items()]
        for name, folds in sets:
            if not folds or "spanonly_first_correct" not in folds[0]["live"]:
                print(f"{name}: no span reader in this run (--span)")
                continue
            for proto in ("live", "archive", "chat"):
                st = [s for s in (fold_stats(f, proto, wrong) for f in folds) if s]
                m = {key: float(np.mean([s[key] for s in st])) for key in st[0]}
                print(f"| {name} | {proto} | {m['run_correct']:.1f} / {m['run_wrong']:.1f} % | "
                      f"{m['correct']:.1f} / {m['wrong']:.1f} % | {m['short']:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
