"""Article extraction quality: the bot's own fetch + extraction against hand-marked article bodies.

    python benchmarks/extraction_quality.py [--pages DIR] [--limit N]

Serves ``article-pages/html/<key>.html.gz`` (real news pages, as served) from a
local web server on 127.0.0.1 — gzip-encoded, no charset in the header, so the
page's own declaration decides — and takes each page through the bot's
``Fetcher`` (``FETCH_ALLOW_PRIVATE`` on for the loopback address) and
``extract_article``. In the same run it scores, on the same bytes:

* ``trafilatura`` alone (``trafilatura.extract`` with its defaults), and
* ``readability-lxml`` alone (``Document(html).summary()`` as text), and
* ``jusText`` alone (non-boilerplate paragraphs, English stop-list).

Scores against ``ground-truth.json``'s ``articleBody``, averaged over pages:

* word-level precision / recall / F1 (``\\w+`` tokens, lower-cased, counted
  with multiplicity), and
* the benchmark's own metric: precision / recall / F1 of the sets of 4-word
  shingles (scrapinghub/article-extraction-benchmark).

Nothing is fitted here: the bot's extractor has no weights; its two rules
(fall back when trafilatura finds under 3 words; drop a first line that only
repeats the title) were set before this was run. Figures are printed for all
pages and for two halves (by key), to show how much they move between subsets.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_PAGES = ROOT.parent / "shared" / "data" / "article-pages"

_WORD = re.compile(r"\w+", re.UNICODE)


# ------------------------------------------------------------------ metrics


def tokens(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def prf(pred: Counter | set, true: Counter | set) -> tuple[float, float, float]:
    if isinstance(pred, Counter):
        tp, np_, nt = sum((pred & true).values()), sum(pred.values()), sum(true.values())
    else:
        tp, np_, nt = len(pred & true), len(pred), len(true)
    if np_ == 0 and nt == 0:
        return 1.0, 1.0, 1.0
    p = tp / np_ if np_ else 0.0
    r = tp / nt if nt else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def shingles(toks: list[str], n: int = 4) -> set:
    return {tuple(toks[i : i + n]) for i in range(max(0, len(toks) - n + 1))} or ({tuple(toks)} if toks else set())


def score(pred: str, true: str) -> dict[str, float]:
    pt, tt = tokens(pred), tokens(true)
    wp, wr, wf = prf(Counter(pt), Counter(tt))
    sp, sr, sf = prf(shingles(pt), shingles(tt))
    return {"wp": wp, "wr": wr, "wf": wf, "sp": sp, "sr": sr, "sf": sf}


# ------------------------------------------------------------------ extractors (baselines)


def trafilatura_alone(html: bytes) -> str:
    import trafilatura

    return trafilatura.extract(html) or ""


def readability_alone(html: bytes) -> str:
    import lxml.html
    from readability import Document

    try:
        summary = Document(html.decode("utf-8", "replace")).summary(html_partial=True)
        return lxml.html.fromstring(summary).text_content()
    except Exception:  # noqa: BLE001 - a baseline failing on a page scores 0 there
        return ""


def justext_alone(html: bytes) -> str:
    import justext

    try:
        paras = justext.justext(html, justext.get_stoplist("English"))
    except Exception:  # noqa: BLE001
        return ""
    return "\n".join(p.text for p in paras if not p.is_boilerplate)


# ------------------------------------------------------------------ the server


class PageServer:
    """The pages as a news site would serve them: gzip, text/html without a charset."""

    def __init__(self, html_dir: Path, keys: list[str]) -> None:
        self.html_dir = html_dir
        self.keys = set(keys)
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from aiohttp import web

        async def page(request):
            key = request.match_info["key"]
            if key not in self.keys:
                return web.Response(status=404)
            body = (self.html_dir / f"{key}.html.gz").read_bytes()
            return web.Response(body=body, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})

        app = web.Application()
        app.router.add_get("/{key}.html", page)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> PageServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=Path, default=DEFAULT_PAGES, help="folder with html/ and ground-truth.json")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pages (0: all)")
    args = ap.parse_args()

    truth = json.loads((args.pages / "ground-truth.json").read_text())
    keys = sorted(k for k in truth if (args.pages / "html" / f"{k}.html.gz").is_file())
    if args.limit:
        keys = keys[: args.limit]
    if not keys:
        print(f"no pages under {args.pages}", file=sys.stderr)
        return 2

    from bot.sources.extract import extract_article
    from bot.sources.fetch import FetchConfig, Fetcher

    raw = {k: gzip.decompress((args.pages / "html" / f"{k}.html.gz").read_bytes()) for k in keys}
    results: dict[str, dict[str, dict]] = {name: {} for name in ("precis", "trafilatura", "readability", "justext")}
    seconds: dict[str, float] = Counter()
    methods: Counter = Counter()
    failures = []

    with PageServer(args.pages / "html", keys) as server:
        fetcher = Fetcher(FetchConfig(allow_private=True, host_pause=0.0, timeout=30.0))

        async def ours(key: str) -> str:
            res = await fetcher.fetch(f"http://127.0.0.1:{server.port}/{key}.html")
            ex = extract_article(res.text(), truth[key].get("url"))
            methods[ex.method] += 1
            return ex.text

        async def run_ours() -> None:
            for key in keys:
                t = time.perf_counter()
                try:
                    text = await ours(key)
                except Exception as exc:  # noqa: BLE001 - count it as a miss and say so
                    failures.append((key, f"{exc.__class__.__name__}: {exc}"))
                    text = ""
                seconds["precis"] += time.perf_counter() - t
                results["precis"][key] = score(text, truth[key]["articleBody"])

        asyncio.run(run_ours())

    for name, fn in (("trafilatura", trafilatura_alone), ("readability", readability_alone), ("justext", justext_alone)):
        for key in keys:
            t = time.perf_counter()
            text = fn(raw[key])
            seconds[name] += time.perf_counter() - t
            results[name][key] = score(text, truth[key]["articleBody"])

    halves = {"all": keys, "half A": keys[0::2], "half B": keys[1::2]}
    print(f"{len(keys)} pages from {args.pages}")
    print("precis = the bot's fetch (local HTTP server, gzip, charset from the page) + extract_article;")
    print("the others: the extractor alone on the same decompressed bytes (no HTTP). Means over pages.\n")
    header = f"{'extractor':<12} {'subset':<7} {'word P':>7} {'word R':>7} {'word F1':>8} {'shingle P':>10} {'shingle R':>10} {'shingle F1':>11} {'pages/s':>8}"
    print(header)
    print("-" * len(header))
    for name, per in results.items():
        for label, subset in halves.items():
            m = {k: statistics.fmean(per[key][k] for key in subset) for k in ("wp", "wr", "wf", "sp", "sr", "sf")}
            rate = f"{len(keys) / seconds[name]:8.1f}" if label == "all" else " " * 8
            print(f"{name:<12} {label:<7} {m['wp']:7.3f} {m['wr']:7.3f} {m['wf']:8.3f} {m['sp']:10.3f} {m['sr']:10.3f} "
                  f"{m['sf']:11.3f} {rate}")
    diff = [results["precis"][k]["wf"] - results["trafilatura"][k]["wf"] for k in keys]
    print(f"\nprecis vs trafilatura alone, word F1 per page: better on {sum(d > 0.005 for d in diff)}, "
          f"worse on {sum(d < -0.005 for d in diff)}, same on {sum(abs(d) <= 0.005 for d in diff)}")
    print("precis extraction method used:", dict(methods))
    if failures:
        print(f"{len(failures)} page(s) failed in the bot's fetch:")
        for key, err in failures[:10]:
            print(f"  {key[:16]}: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
