"""What abstaining more would cost: right answers against abstention on unanswerable questions, held out.

Reads the ``--json`` of ``benchmarks/ask_quality.py`` (each held-out period's questions with the confidence its
fold's fit gave them, and the answer judged where one was shown). For each held-out set it raises both of the
fold's thresholds (timed and untimed) by the same ``delta`` and recounts, with no new fit:

- live / archive: right (the short answer and its sentence), wrong, abstained, of the answerable questions;
- (a) / (b): abstained, of the questions the corpus cannot answer.

Each figure is the mean over the folds of the fold's percentage, as ``ask_quality.py`` reports it; delta 0
reproduces the run's own figures. It prints the figures at each ``delta`` and the smallest ``delta`` at which (a)
and (b) both reach ``--target``. That ``delta`` is chosen on the held-out questions themselves, so the right
answers left there are an upper bound on what a common raise of both thresholds keeps at that abstention
(issue 30: at least 85 % on (a) and (b)). Raising a threshold only hides answers, so every count comes from the
run itself. Today's configuration only (not ``--reranker``'s).

Usage: benchmarks/abstain_tradeoff.py RUN.json [--target 0.85] [--deltas 0,0.05,0.1,...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engines import timeframe  # noqa: E402


def _threshold(fold: dict, question: str) -> float:
    ts = fold["thresholds"]  # JSON keys: "false" (untimed), "true" (timed)
    return float(ts["true" if timeframe.window(question) is not None else "false"])


def _hidden(fold: dict, item: dict, delta: float) -> bool:
    """Whether raising the fold's threshold by ``delta`` leaves this answer unshown (at 0: as the run did; the
    run stores confidences rounded to 4 places, so only a raise re-reads them)."""
    if item["abstained"] if "abstained" in item else item.get("judged", "abstained") == "abstained":
        return True  # (a)/(b) items say "abstained"; live/archive items are judged where shown
    return delta > 0 and item["confidence"] < _threshold(fold, item["question"]) + delta


def count(folds: list[dict], delta: float) -> dict[str, float]:
    """Each figure the mean over the folds of the fold's percentage, as ``ask_quality.metrics`` reports them
    (each fold with its own thresholds + ``delta``); NaN where no fold has such questions."""
    per: dict[str, list[float]] = {}
    out: dict[str, float] = {}
    for proto in ("live", "archive"):
        out[proto] = 0
        for f in folds:
            items = f.get(proto + "_items", [])
            if not items:
                continue
            out[proto] += len(items)
            shown = [it for it in items if not _hidden(f, it, delta)]
            for key, n in (("right", sum(it["judged"] == "correct" for it in shown)),
                           ("wrong", sum(it["judged"] == "wrong" for it in shown)),
                           ("abst", len(items) - len(shown))):
                per.setdefault(f"{proto}_{key}", []).append(100.0 * n / len(items))
    for key in ("a", "b"):
        out[key] = 0
        for f in folds:
            items = f.get(f"un_{key}_items", [])
            if items:
                out[key] += len(items)
                per.setdefault(f"{key}_abst", []).append(
                    100.0 * sum(_hidden(f, it, delta) for it in items) / len(items))
    for name in ("live_right", "live_wrong", "live_abst", "archive_right", "archive_wrong", "archive_abst",
                 "a_abst", "b_abst"):
        vals = per.get(name, [])
        out[name] = sum(vals) / len(vals) if vals else math.nan
    return out


def sets(run: dict) -> list[tuple[str, list[dict]]]:
    out = []
    for stem, by in (run.get("lmo") or {}).items():
        out.append((f"{stem}, held-out periods", by["today"]["folds"]))
    for year, by in (run.get("year_out") or {}).items():
        out.append((f"{year}, held-out year", [by["today"]]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="the --json of benchmarks/ask_quality.py")
    ap.add_argument("--target", type=float, default=0.85, help="abstention wanted on (a) and (b)")
    ap.add_argument("--deltas", default="0,0.05,0.1,0.15,0.2,0.25,0.3")
    args = ap.parse_args(argv)
    run = json.loads(args.run.read_text())
    deltas = [float(d) for d in args.deltas.split(",")]
    fine = [i / 200 for i in range(0, 201)]  # 0 .. 1 in steps of 0.005
    print("held out | delta | live right / wrong / abstained | archive right / wrong / abstained | (a) | (b)")
    for name, folds in sets(run):
        hit = None
        for d in fine:
            c = count(folds, d)
            if min(c["a_abst"], c["b_abst"]) >= 100 * args.target:  # NaN (no such questions) never reaches it
                hit = d
                break
        for d in sorted(set(deltas) | ({hit} if hit is not None else set())):
            c = count(folds, d)
            mark = "  <- (a) and (b) reach the target" if d == hit else ""
            print(f"{name} | +{d:.3f} | {c['live_right']:.1f} / {c['live_wrong']:.1f} / {c['live_abst']:.1f} % of "
                  f"{c['live']} | {c['archive_right']:.1f} / {c['archive_wrong']:.1f} / {c['archive_abst']:.1f} % of "
                  f"{c['archive']} | {c['a_abst']:.1f} % of {c['a']} | {c['b_abst']:.1f} % of {c['b']}{mark}")
        if hit is None:
            print(f"{name} | (a) and (b) do not both reach {100 * args.target:.0f} % at any delta up to 1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
