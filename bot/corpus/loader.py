"""Read corpus files into Articles.

Formats, picked per file:

* ``*.jsonl`` - one article per line: ``{"id"?, "title", "text", "date"?,
  "url"?, "highlights"?, "guild_id"?}`` (``guild_id``: the Discord server the
  article belongs to; the bot writes fetched articles this way). A bad line is skipped with its reason; the rest of
  the file loads.
* ``*.txt`` / ``*.md`` in the *seed* format (news web-page text: title, photo
  caption, ``Updated <date>``, title repeated, ``•`` highlights, body opening
  with a ``CITY:`` dateline; several articles per file) when the file looks
  like it; otherwise the first non-empty line is the title and the rest is the
  body.

Every problem becomes a :class:`LoadIssue` (file, line, reason) and a log
line; nothing raises for a bad file.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..jsonl import split_records
from .article import Article

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md"}
JSONL_SUFFIXES = {".jsonl"}
SUFFIXES = TEXT_SUFFIXES | JSONL_SUFFIXES
MAX_FILE_BYTES = 200 * 1024 * 1024

_UPDATED = re.compile(r"^\s*Updated\s+\S")
# "Updated 5 min 9 sec ago" was relative to when the page was saved: in a file it dates nothing.
_RELATIVE_DATE = re.compile(r"\bago\s*$|^(just now|today|yesterday)$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*[•·▪●]\s*")
# "ALMATY, Kazakhstan: ..." / "TOKYO: ..." / "NEW YORK (Reuters) - ..."
_DATELINE = re.compile(
    r"^(?P<place>[A-Z][A-Z .'\-]{1,40}(?:,\s*[A-Z][\w .'\-]{1,40})?)"
    r"(?:\s*\((?:AP|AFP|Reuters|AN)\))?\s*(?::|—|--| - )\s+(?=\S)"
)


@dataclass(frozen=True)
class LoadIssue:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


@dataclass
class LoadResult:
    articles: list[Article]
    issues: list[LoadIssue]
    files: int = 0


def split_dateline(first_line: str) -> tuple[str | None, str]:
    m = _DATELINE.match(first_line)
    if not m:
        return None, first_line
    return m.group("place").strip(), first_line[m.end() :]


def parse_seed(text: str, source: str) -> list[Article]:
    """Parse the seed web-page format; returns [] when the text is not in it."""
    lines = text.splitlines()
    starts: list[tuple[int, int, int]] = []  # (title line, updated line, repeated title line)
    for i, line in enumerate(lines):
        if not _UPDATED.match(line):
            continue
        nxt = next((j for j in range(i + 1, min(i + 6, len(lines))) if lines[j].strip()), None)
        if nxt is None:
            continue
        title = lines[nxt].strip()
        first = next(
            (j for j in range(max(0, i - 8), i) if lines[j].strip() == title and (not starts or j > starts[-1][2])),
            None,
        )
        if first is None:
            continue
        starts.append((first, i, nxt))
    articles = []
    for n, (t, u, rep) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        title = lines[t].strip()
        date = lines[u].strip()[len("Updated") :].strip()
        if _RELATIVE_DATE.search(date):
            date = None
        highlights, body = [], []
        for line in lines[rep + 1 : end]:
            if not line.strip():
                continue
            if _BULLET.match(line) and not body:
                highlights.append(_BULLET.sub("", line).strip())
            else:
                body.append(line.strip())
        if not body:
            continue
        dateline, body[0] = split_dateline(body[0])
        articles.append(
            Article.build(
                title=title,
                text="\n".join(body),
                date=date,
                highlights=highlights,
                dateline=dateline,
                source=f"{source}:{t + 1}",
            )
        )
    return articles


def parse_plain(text: str, source: str) -> list[Article]:
    lines = [ln for ln in text.splitlines()]
    idx = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if idx is None:
        return []
    title = lines[idx].strip().lstrip("#").strip()
    body = [ln.strip() for ln in lines[idx + 1 :] if ln.strip()]
    if not body:
        return []
    dateline, body[0] = split_dateline(body[0])
    return [Article.build(title=title, text="\n".join(body), dateline=dateline, source=source)]


def _jsonl_article(obj: object, source: str) -> Article:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    title, text = obj.get("title"), obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('missing or empty "text"')
    if title is None:
        title = text.strip().splitlines()[0][:120]
    if not isinstance(title, str):
        raise ValueError('"title" must be a string')
    highlights = obj.get("highlights") or []
    if isinstance(highlights, str):
        highlights = highlights.splitlines()
    if not isinstance(highlights, list) or not all(isinstance(h, str) for h in highlights):
        raise ValueError('"highlights" must be a list of strings')
    date, url, aid = obj.get("date"), obj.get("url"), obj.get("id")
    guild = obj.get("guild_id")
    if guild is not None and (isinstance(guild, bool) or not isinstance(guild, int)):
        raise ValueError('"guild_id" must be a whole number')
    arrived = obj.get("arrived")  # fetched articles: when they arrived (for retention)
    if arrived is not None and (isinstance(arrived, bool) or not isinstance(arrived, (int, float))):
        raise ValueError('"arrived" must be a number (seconds since the epoch)')
    return Article.build(
        id=None if aid is None else str(aid),
        title=title,
        text=text,
        date=str(date) if date is not None else None,
        url=str(url) if url is not None else None,
        highlights=highlights,
        source=source,
        guild_id=guild,
        arrived=arrived,
    )


def load_file(path: Path) -> LoadResult:
    issues: list[LoadIssue] = []
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return LoadResult([], [LoadIssue(name, None, f"file larger than {MAX_FILE_BYTES // 2**20} MiB")], 1)
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return LoadResult([], [LoadIssue(name, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")], 1)
    except OSError as exc:
        return LoadResult([], [LoadIssue(name, None, f"cannot read: {exc.strerror or exc}")], 1)
    if "\x00" in text:
        return LoadResult([], [LoadIssue(name, None, "binary file (NUL bytes)")], 1)

    articles: list[Article] = []
    if path.suffix.lower() in JSONL_SUFFIXES:
        for n, line in enumerate(split_records(text), 1):
            if not line.strip():
                continue
            try:
                articles.append(_jsonl_article(json.loads(line), f"{name}:{n}"))
            except json.JSONDecodeError as exc:
                issues.append(LoadIssue(name, n, f"invalid JSON ({exc.msg})"))
            except ValueError as exc:
                issues.append(LoadIssue(name, n, str(exc)))
    else:
        articles = parse_seed(text, name) or parse_plain(text, name)
        if not articles:
            issues.append(LoadIssue(name, None, "no article found (empty file or title without body)"))
    return LoadResult(articles, issues, 1)


def iter_corpus_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
        )
    return []


def load_corpus(path: Path | str, memo: dict | None = None) -> LoadResult:
    """Load every corpus file under ``path`` (file or folder, recursively).

    ``memo`` (a dict the caller keeps between calls): a file whose size and
    modification time are unchanged since the last call is not read again -
    its articles and issues come from the memo (and its issues are not logged
    again). A watched folder of many files then costs a reload only the files
    that changed."""
    path = Path(path)
    if not path.exists():
        issue = LoadIssue(str(path), None, "corpus path does not exist")
        log.error("%s", issue)
        return LoadResult([], [issue], 0)
    files = iter_corpus_files(path)
    articles: list[Article] = []
    issues: list[LoadIssue] = []
    fresh: list[LoadIssue] = []
    seen: set[Path] = set()
    for f in files:
        key = None
        if memo is not None:
            try:
                st = f.stat()
                key = (st.st_mtime_ns, st.st_size)
            except OSError:
                key = None
        hit = memo.get(f) if memo is not None and key is not None else None
        if hit is not None and hit[0] == key:
            res = hit[1]
        else:
            res = load_file(f)
            fresh.extend(res.issues)
            if memo is not None and key is not None:
                memo[f] = (key, res)
        seen.add(f)
        articles.extend(res.articles)
        issues.extend(res.issues)
    if memo is not None:
        for gone in [p for p in memo if p not in seen and (p == path or path in p.parents)]:
            del memo[gone]
    for issue in fresh:
        log.warning("skipped %s", issue)
    return LoadResult(articles, issues, len(files))
