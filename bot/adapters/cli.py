"""Batch commands: JSON Lines in, JSON Lines out (stdout); logs go to stderr.

    python -m bot summarize --input FILE.jsonl [--mode extractive] [--sentences N] --json
    python -m bot ask --corpus PATH --questions FILE.jsonl [--mode extractive] [--k 3] [--guild ID] --json

``ask`` lines are ``{"id", "question"}`` with an optional ``"asked_at"`` (ISO 8601: ``2022-06-10``,
``2022-06-10T09:30:00Z``; no time zone = UTC; a date alone = that day's start): the question is answered as
the bot would have answered it then - only articles published by then count (undated ones always do) and
"this week", "recently" count back from it. Without it, now.
    python -m bot fetch [--url URL ...] [--feed URL ...] [--data-dir DIR] --json
    python -m bot verify --input FILE.jsonl [--threshold T] [--model-score] --json
    (with VERIFY_MODEL set to a classifier, each line also carries "checker" and each sentence its best
    "chunk" of the article and its "lexical_score"; "score" is then the model's)

One output line per input line, in the same order. A bad input line gives
``{"id", "error"}`` and the run goes on. Output lines are JSON Lines that survive any line splitter:
U+0085, U+2028 and U+2029 (which ``str.splitlines`` and JavaScript split on) are written escaped.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from ..app import Precis
from ..corpus.article import Article
from ..handlers.core import Handlers
from ..handlers.reply import Reply
from ..jsonl import dumps_line, split_records

log = logging.getLogger(__name__)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    return [(n, line) for n, line in enumerate(split_records(text), 1) if line.strip()]


def _emit(out: TextIO, obj: dict) -> None:
    out.write(dumps_line(obj) + "\n")
    out.flush()


def parse_asked_at(value) -> float:
    """An ISO 8601 date or date-time as epoch seconds (no time zone: UTC; a date alone: 00:00 that day);
    ValueError with a message for the user otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError('"asked_at" must be an ISO 8601 date or time, e.g. "2022-06-10" or "2022-06-10T09:30:00Z"')
    text = value.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        raise ValueError(f'"asked_at" {text[:40]!r} is not an ISO 8601 date or time (e.g. 2022-06-10T09:30:00Z)'
                         ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _summary_line(item_id, reply: Reply) -> dict:
    if not reply.ok:
        return {"id": item_id, "error": reply.text}
    out = {
        "id": item_id,
        "summary": [line.text for line in reply.lines],
        "support": [[{"index": s.index, "text": s.text, "score": s.score} for s in line.support] for line in reply.lines],
    }
    if reply.notes:
        out["notes"] = list(reply.notes)
    return out


def _records(path: Path):
    """Yield (line number, id, object or None, error or None) for each non-empty JSONL line."""
    for n, line in _read_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, None, None, f"line {n}: invalid JSON ({exc.msg})"
            continue
        if not isinstance(obj, dict):
            yield n, None, None, f"line {n}: line is not a JSON object"
            continue
        yield n, obj.get("id"), obj, None


def _article(n: int, obj: dict, sentences: int, source: str) -> tuple[Article, int]:
    """The article and sentence count of one summarize line; ValueError says what is wrong."""
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('missing or empty "text"')
    if not any(ch.isalnum() for ch in text):
        raise ValueError('"text" has no words')
    title = obj.get("title") or ""
    if not isinstance(title, str):
        raise ValueError('"title" must be a string')
    count = obj.get("sentences", sentences)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError('"sentences" must be a whole number, at least 1')
    art = Article.build(id=f"line-{n}", title=title, text=text, source=source)
    if not art.sentences:
        raise ValueError("no sentences in text")
    return art, count


def summarize(app: Precis, input_path: Path, mode: str, sentences: int, out: TextIO = sys.stdout) -> int:
    handlers = Handlers(app)
    parsed: list[tuple[object, Article | None, int | None, str | None]] = []
    for n, item_id, obj, error in _records(input_path):
        if obj is None:
            parsed.append((item_id, None, None, error))
            continue
        try:
            art, count = _article(n, obj, sentences, f"{input_path}:{n}")
            parsed.append((item_id, art, count, None))
        except ValueError as exc:
            parsed.append((item_id, None, None, f"line {n}: {exc}"))
    good = [a for _, a, _, _ in parsed if a is not None]
    app.index.build(good, progress=len(good) > 200)  # the input is the corpus; one batch embeds it all
    row = 0
    for item_id, art, count, error in parsed:
        if art is None:
            _emit(out, {"id": item_id, "error": error})
            continue
        try:
            reply = handlers.summarize_row(row, mode, count)
        except Exception as exc:  # noqa: BLE001 - one bad article must not stop the batch
            reply = Reply.error(f"{exc.__class__.__name__}: {exc}")
        _emit(out, _summary_line(item_id, reply))
        row += 1
    return 0


def ask(app: Precis, questions_path: Path, mode: str, k: int, out: TextIO = sys.stdout,
        guild_id: int | None = None) -> int:
    """``guild_id``: answer as that Discord server (its feeds' and links' articles too); None: global only."""
    handlers = Handlers(app)
    if guild_id:
        _load_shares(app)
    for n, item_id, obj, error in _records(questions_path):
        question = None if obj is None else obj.get("question")
        if error is None and not isinstance(question, str):
            error = f'line {n}: missing "question" (a string)'
        asked_at = None
        if error is None and obj.get("asked_at") is not None:
            try:
                asked_at = parse_asked_at(obj["asked_at"])
            except ValueError as exc:
                error = f"line {n}: {exc}"
        if error is not None:
            _emit(out, {"id": item_id, "error": error})
            continue
        reply = handlers.ask(question, mode=mode, k=k, guild_id=guild_id, asked_at=asked_at)
        if not reply.ok:
            _emit(out, {"id": item_id, "error": reply.text})
            continue
        support = [] if reply.abstained else [
            {"article_id": s.article_id, "title": s.title, "text": s.text, "score": s.score} for s in reply.supporting
        ][:k]
        answer = "\n".join(line.text for line in reply.lines)  # the short answer (if any), then its sentence
        record = {"id": item_id, "answer": answer, "short_answer": reply.meta.get("short_answer"),
                  "abstained": reply.abstained, "support": support}
        if asked_at is not None:
            record["asked_at"] = datetime.fromtimestamp(asked_at, timezone.utc).isoformat()
        if reply.notes:
            record["notes"] = list(reply.notes)
        _emit(out, record)
    return 0


def _load_shares(app: Precis) -> None:
    """Which guilds share which article, from the state store (when there is one)."""
    from ..store import StoreError, open_store

    if app.settings.database_url is None and not app.settings.db_path.exists():
        return
    try:
        with open_store(app.settings) as store:
            app.scopes.load(store.shared_articles())
    except StoreError as exc:
        log.warning("guild shares unavailable (%s): only the articles the guild brought first are visible", exc)


def fetch(settings, urls: list[str], feeds: list[str], out: TextIO = sys.stdout, *, fetcher=None) -> int:
    """Fetch pages and poll feeds; one line per new article ``{"url", "title", "date", "text",
    "source", "feed"}`` or ``{"url", "error"}``. State (what was printed, each feed's ETag /
    Last-Modified) is kept in DATA_DIR, so a second run prints only what is new."""
    from ..sources.service import SourceError, Sources, check_url, run_sync
    from ..sources.fetch import FetchError
    from ..store import GLOBAL_GUILD, ReconnectingStore, open_store

    store = open_store(settings)
    if isinstance(store, ReconnectingStore) and not store.wait_ready(settings.database_wait_seconds):
        print(f"cannot reach the database: {store.describe()}", file=sys.stderr)
        store.close()
        return 1
    sources = Sources(settings, store, fetcher=fetcher)

    async def run() -> None:
        for url in urls:
            try:
                item = await sources.fetch_page(url, skip_seen=True)
            except (FetchError, SourceError) as exc:
                _emit(out, {"url": url, "error": str(exc)})
                continue
            if item is not None:
                _emit(out, item.to_json())
        for url in feeds:
            try:
                feed, _ = store.add_feed(GLOBAL_GUILD, check_url(url))
            except SourceError as exc:
                _emit(out, {"url": url, "error": str(exc)})
                continue
            result = await sources.poll(feed)
            if result is None:
                continue
            if result.status == "error":
                _emit(out, {"url": url, "error": result.error})
            for item in result.new:
                _emit(out, item.to_json())
            for item_url, error in result.lost:
                _emit(out, {"url": item_url, "error": error})

    try:
        run_sync(run())
    finally:
        store.close()
    return 0


def _verify_input(obj: dict) -> tuple[str, str | list[str]]:
    """The article text and summary of one verify line; ValueError says what is wrong."""
    text, summary = obj.get("text"), obj.get("summary")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('missing or empty "text" (the article)')
    if isinstance(summary, list):
        if not summary or not all(isinstance(x, str) for x in summary) or not any(x.strip() for x in summary):
            raise ValueError('"summary" must be a string or a non-empty list of strings')
    elif not isinstance(summary, str) or not summary.strip():
        raise ValueError('missing or empty "summary" (a string or a list of sentences)')
    return text, summary


def verify(input_path: Path, verifier, out: TextIO = sys.stdout) -> int:
    """``python -m bot verify``: one ``{"id", "score", "supported", "sentences"}`` line per input line."""
    from ..grounding.verifier import Article as Source

    for n, item_id, obj, error in _records(input_path):
        if error is None:
            try:
                text, summary = _verify_input(obj)
                source = Source(text)
                if not source.sentences:
                    raise ValueError("no sentences in text")
                verdict = verifier(source, summary)
                if not verdict.sentences:
                    raise ValueError("no sentences in summary")
            except ValueError as exc:
                error = f"line {n}: {exc}"
            except Exception as exc:  # noqa: BLE001 - one bad line must not stop the batch
                error = f"line {n}: {exc.__class__.__name__}: {exc}"
        if error is not None:
            _emit(out, {"id": item_id, "error": error})
            continue
        _emit(out, {"id": item_id, **verdict.to_json()})
    return 0
