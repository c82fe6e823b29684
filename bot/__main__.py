"""``python -m bot run|check|console|summarize|ask|fetch|verify``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

# No network at run time: model loading is local-only unless ALLOW_DOWNLOADS=true.
if os.environ.get("ALLOW_DOWNLOADS", "").lower() not in ("1", "true", "yes"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core box a spinning
# pool made one query embedding take ~420 ms instead of ~17 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger("bot")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("bm25s", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # transformers' own notices and progress bars go to stderr; keep them quiet. Through the
    # environment, read when transformers is first imported: importing it here cost ~0.9 s of
    # every start, and the ONNX embedder path never imports it.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if os.environ.get("HF_HUB_OFFLINE") == "1":  # no downloads: no download progress to show
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bot", description="Precis: trustworthy news summaries.")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="start the Discord bot (console when no DISCORD_TOKEN is set)")
    sub.add_parser("check", help="check the settings and reach each part (Discord, database, corpus, models, "
                                 "feeds, metrics): one line per part; exit status 1 on a problem, 2 on invalid settings")
    c = sub.add_parser("console", help="local console with the slash syntax")
    c.add_argument("--corpus", type=Path, default=None, help="corpus file or folder (default: CORPUS_PATH)")
    c.add_argument("--guild", type=int, default=None,
                   help="act as this Discord server: see and add its feeds' and links' articles (default: global only)")
    s = sub.add_parser("summarize", help="batch summaries: JSON Lines in, JSON Lines out")
    s.add_argument("--input", type=Path, required=True, help="JSONL: {id, title?, text, sentences?} per line ('-' = stdin)")
    s.add_argument("--mode", choices=("extractive", "abstractive"), default="extractive")
    s.add_argument("--sentences", type=int, default=3, help="sentences per summary (1 up to the article's sentence count; a line's 'sentences' wins)")
    s.add_argument("--json", action="store_true", help="JSON Lines output (the only format; accepted for clarity)")
    a = sub.add_parser("ask", help="batch questions over a corpus: JSON Lines in, JSON Lines out")
    a.add_argument("--corpus", type=Path, required=True, help="corpus file or folder (as CORPUS_PATH)")
    a.add_argument("--questions", type=Path, required=True, help="JSONL: {id, question} per line ('-' = stdin)")
    a.add_argument("--mode", choices=("extractive", "abstractive"), default="extractive")
    a.add_argument("--k", type=int, default=3, help="supporting sentences per answer (1-10)")
    a.add_argument("--guild", type=int, default=None,
                   help="answer as this Discord server (its feeds' and links' articles too; default: global only)")
    a.add_argument("--json", action="store_true", help="JSON Lines output (the only format; accepted for clarity)")
    f = sub.add_parser("fetch", help="fetch pages and feeds: one JSON line per new article")
    f.add_argument("--url", action="extend", nargs="+", default=[], help="pages to fetch")
    f.add_argument("--feed", action="extend", nargs="+", default=[], help="RSS/Atom feeds to poll")
    f.add_argument("--data-dir", type=Path, default=None, help="where to keep what was seen (default: DATA_DIR)")
    f.add_argument("--json", action="store_true", help="JSON Lines output (the only format; accepted for clarity)")
    v = sub.add_parser("verify", help="check summaries against their articles: JSON Lines in, JSON Lines out")
    v.add_argument("--input", type=Path, required=True, help="JSONL: {id, text, summary} per line ('-' = stdin)")
    v.add_argument("--threshold", type=float, default=None, help="score a sentence needs (default: the fitted one)")
    v.add_argument("--model-score", action="store_true",
                   help="also score with the summary model's likelihood (slower; SUMMARY_MODEL)")
    v.add_argument("--json", action="store_true", help="JSON Lines output (the only format; accepted for clarity)")
    return p


def _verify(args, settings) -> int:
    if str(args.input) != "-" and not args.input.is_file():
        print(f"input file not found: {args.input}", file=sys.stderr)
        return 2
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        print("--threshold must be from 0 to 1", file=sys.stderr)
        return 2
    from .adapters.cli import verify
    from .grounding.verifier import Verifier

    scorer = None
    if args.model_score:
        from models.generator import Generator
        from models.registry import ModelUnavailable

        from .grounding.likelihood import LikelihoodScorer

        try:
            s = settings
            scorer = LikelihoodScorer(Generator(
                s.summary_model, cache_dir=s.data_dir / "models", device=s.model_device,
                threads=s.model_threads or None, allow_download=s.allow_downloads, dtype=s.summary_dtype,
            ))
        except ModelUnavailable as exc:
            print(f"Cannot score with the summary model: {exc}", file=sys.stderr)
            return 1
    checker = None
    from .grounding.model_checker import checker_from_settings, is_lexical

    if not is_lexical(settings.verify_model):  # VERIFY_MODEL: a classifier on top of the lexical checks
        from models.registry import ModelUnavailable

        try:
            checker = checker_from_settings(settings)
        except (ModelUnavailable, ValueError) as exc:
            print(f"VERIFY_MODEL {settings.verify_model!r} is unavailable ({exc}); "
                  "checking with the lexical verifier", file=sys.stderr)
    return verify(args.input, Verifier(threshold=args.threshold, scorer=scorer, checker=checker))


SMALL_JOB_BYTES = 256 * 1024  # a summarize input this small is a few articles: start-up is what counts


def _small_job_embedder(settings, input_path):
    """A few articles to summarise: the embedder's start-up, not its throughput, is what a person waits
    for, so ``auto`` takes exact float32 on ONNX Runtime (under a second to load; PyTorch's bf16 path
    costs seconds of imports). Explicit EMBED_BACKEND / EMBED_PRECISION settings are kept."""
    if settings.embed_backend != "auto" or settings.embed_precision != "auto" or str(input_path) == "-":
        return settings
    try:
        small = input_path.stat().st_size <= SMALL_JOB_BYTES
    except OSError:
        return settings
    return settings.model_copy(update={"embed_backend": "onnx", "embed_precision": "float32"}) if small else settings


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    command = args.command or "run"

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from .config import load_settings

    if command == "check":
        from .check import check

        return check()
    if command == "run":  # the same checks first: one line per part, and no traceback when one is broken
        from .check import preflight

        code, settings = preflight()
        if code:
            return code
    else:
        try:
            overrides = {}
            if getattr(args, "corpus", None) is not None:
                overrides["corpus_path"] = args.corpus
            if getattr(args, "data_dir", None) is not None:
                overrides["data_dir"] = args.data_dir
            settings = load_settings(**overrides)
        except (ValidationError, SettingsError) as exc:
            from .check import settings_error_lines

            # one line per bad field, never its value when it is a secret (pydantic's own text shows it)
            lines = "\n".join(f"  {line}" for line in settings_error_lines(exc))
            print(f"Invalid settings (environment or .env):\n{lines}", file=sys.stderr)
            return 2
    _setup_logging(settings.log_level)
    if settings.index_url is not None and (command in ("ask", "summarize", "verify")
                                           or getattr(args, "corpus", None) is not None):
        # the batch CLI, and a console on another corpus (--corpus), read their own corpus in memory: they never
        # write its articles to the bot's shared index, where every server's /ask would read them
        settings = settings.model_copy(update={"index_url": None})

    if command == "verify":
        return _verify(args, settings)
    if command == "summarize":
        if args.sentences < 1:
            print("--sentences must be a whole number from 1 (up to the article's sentence count)", file=sys.stderr)
            return 2
        if str(args.input) != "-" and not args.input.is_file():
            print(f"input file not found: {args.input}", file=sys.stderr)
            return 2
        settings = _small_job_embedder(settings, args.input)
    if command == "ask" and not args.corpus.exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    if command == "ask" and str(args.questions) != "-" and not args.questions.is_file():
        print(f"questions file not found: {args.questions}", file=sys.stderr)
        return 2

    if command == "fetch":  # no models needed
        from .adapters.cli import fetch

        return fetch(settings, args.url, args.feed)

    from models.registry import ModelUnavailable

    from .app import Precis

    try:
        app = Precis(settings)
    except ModelUnavailable as exc:
        print(f"Cannot start: the embedding model is unavailable: {exc}", file=sys.stderr)
        return 1

    if command == "summarize":
        from .adapters.cli import summarize

        return summarize(app, args.input, args.mode, args.sentences)

    if command == "run":  # a service manager may stop it before the bot's own stop sequence is in place
        previous = signal.signal(signal.SIGTERM, _stopped_while_starting)
    report = app.load()
    for issue in report.issues:
        log.warning("corpus: skipped %s", issue)
    if not len(app.corpus):
        log.error("the corpus is empty: nothing loaded from %s", settings.corpus_path)

    if command == "ask":
        from .adapters.cli import ask

        return ask(app, args.questions, args.mode, max(1, min(args.k, 10)), guild_id=args.guild)

    if command == "run":
        app.preload_reranker()  # /ask's cross-encoder and span reader: about a second, before the first question
        app.preload_generator()  # llama.cpp: loaded and warm before the first /summary mode:abstractive
    if command == "run":  # the bot installs its own stop sequence; the console stops as before
        signal.signal(signal.SIGTERM, previous)
    if command == "run" and settings.discord_token is not None:
        from .adapters.discord.runner import run_discord

        return run_discord(app)
    if command == "run":
        print("No DISCORD_TOKEN set (environment or .env): starting the local console instead.", file=sys.stderr)

    from .adapters.console import run_console
    from .handlers.core import Handlers

    watch = None
    if settings.watch_corpus:  # as the bot does: a file dropped into CORPUS_PATH appears in the console too
        from .corpus.watch import BackgroundWatch

        watch = BackgroundWatch(settings.corpus_path, lambda: app.load(progress=False)).start()
    try:
        return run_console(Handlers(app, _console_sources(settings, app)), guild_id=getattr(args, "guild", None))
    finally:
        if watch is not None:
            watch.stop()


def _stopped_while_starting(signum, frame) -> None:
    log.info("SIGTERM while loading the corpus: stopping (nothing was being answered yet)")
    raise SystemExit(0)


def _console_sources(settings, app):
    """Feeds and links for the console (global feeds), or None when the state store cannot be opened."""
    from .sources.service import SourceError, Sources
    from .store import StoreError, open_store

    try:
        sources = Sources(settings, open_store(settings), app=app)
        sources.sync_fetched()  # PostgreSQL: the feed and link articles every process fetched
        sources.sync_global_feeds()
    except (StoreError, SourceError) as exc:
        log.warning("feeds and links are unavailable in the console: %s", exc)
        return None
    return sources


if __name__ == "__main__":
    raise SystemExit(main())
