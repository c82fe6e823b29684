"""Local console: the slash syntax people type in Discord, read line by line from stdin.

    /summary article:Kazakhs length:3
    /summary topic:coronavirus Japan mode:extractive
    /ask question:How many Kazakhs may leave?
    /articles query:Japan
    /summary url:https://example.com/news/story
    /feed add url:https://example.com/rss exclude:sport, live blog  ·  /feed remove feed:1  ·  /feed list
    /feed edit feed:1 include:climate, heat wave exclude:-

Option values run to the next ``name:`` of a known option, so they may hold
spaces (and colons). Works piped: ``echo "/summary article:Kazakhs" | python -m bot console``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TextIO

from ..handlers.core import Handlers
from ..handlers.reply import Reply
from ..render.text import render_text

COMMANDS: dict[str, tuple[str, ...]] = {
    "summary": ("article", "topic", "url", "mode", "length"),
    "ask": ("question", "mode", "k"),
    "articles": ("query", "page"),
    "feed": ("action", "url", "feed", "include", "exclude"),
    "help": (),
    "about": (),
    "quit": (),
}
USAGE = {
    "summary": "/summary article:<id or title words> [mode:extractive|abstractive] [length:1-10]  or  /summary topic:<words> ...  or  /summary url:<link> ...",
    "ask": "/ask question:<text> [mode:extractive|abstractive]",
    "articles": "/articles [query:<words>] [page:N]",
    "feed": ("/feed add url:<RSS or Atom link> [include:<words, phrases>] [exclude:<words, phrases>]  |  "
             "/feed edit feed:<id or link> [include:...] [exclude:...] (- clears one)  |  "
             "/feed remove feed:<id or link>  |  /feed list"),
    "help": "/help",
    "about": "/about",
    "quit": "/quit",
}
DEFAULT_OPTION = {"summary": "article", "ask": "question", "articles": "query", "feed": "action"}
FEED_ACTIONS = ("add", "edit", "remove", "list")
MAX_LINE = 4000


class UsageError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    name: str
    options: dict[str, str]


def parse_command(line: str) -> Command:
    """Parse ``/name opt:value ...``; raises UsageError with a one-line hint."""
    line = "".join(ch if ch.isprintable() or ch == " " else " " for ch in line).strip()
    if len(line) > MAX_LINE:
        raise UsageError(f"That line is too long ({len(line)} characters).")
    if not line.startswith("/"):
        raise UsageError("Commands start with '/'. Type /help for the list.")
    head, _, rest = line[1:].partition(" ")
    name = head.lower()
    if name not in COMMANDS:
        raise UsageError(f"Unknown command /{head}. Commands: " + ", ".join(f"/{c}" for c in COMMANDS))
    known = COMMANDS[name]
    rest = rest.strip()
    options: dict[str, str] = {}
    if not rest:
        return Command(name, options)
    if not known:
        raise UsageError(f"/{name} takes no options. Usage: {USAGE[name]}")
    pattern = re.compile(r"(?:^|(?<=\s))(" + "|".join(map(re.escape, known)) + r"):", re.IGNORECASE)
    marks = list(pattern.finditer(rest))
    if marks and marks[0].start() != 0:
        # free text first ("/ask hi all, quick question: what ...?"): the default option's own name further
        # on is part of that text, not the option given again
        marks = [m for m in marks if m.group(1).lower() != DEFAULT_OPTION[name]]
    if not marks or marks[0].start() != 0:
        lead = rest[: marks[0].start()] if marks else rest
        word = re.match(r"(\w+):", lead)
        if word:
            raise UsageError(f"Unknown option {word.group(1)!r} for /{name}. Usage: {USAGE[name]}")
        options[DEFAULT_OPTION[name]] = lead.strip()
    for i, m in enumerate(marks):
        key = m.group(1).lower()
        end = marks[i + 1].start() if i + 1 < len(marks) else len(rest)
        value = rest[m.end() : end].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].strip()
        if key in options:
            raise UsageError(f"Option {key!r} given twice. Usage: {USAGE[name]}")
        options[key] = value
    return Command(name, options)


def _int(value: str | None, name: str, usage: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number. Usage: {usage}") from None


def dispatch(handlers: Handlers, cmd: Command, guild_id: int | None = None) -> Reply:
    """Run one command; ``guild_id`` (``--guild``): act as that Discord server, seeing and adding
    its articles and feeds; None: the global ones only."""
    o = cmd.options
    g = guild_id or 0
    if cmd.name == "summary":
        return handlers.summary(
            article=o.get("article"),
            topic=o.get("topic"),
            mode=o.get("mode") or "extractive",
            length=_int(o.get("length"), "length", USAGE["summary"]),
            url=o.get("url"),
            guild_id=guild_id,
        )
    if cmd.name == "feed":  # the console's feeds are the global ones (or --guild's)
        action, _, rest = (o.get("action") or "list").strip().partition(" ")
        action = action.lower()
        if action not in FEED_ACTIONS:
            raise UsageError(f"/feed takes add, edit, remove or list. Usage: {USAGE['feed']}")
        if action == "add":
            return handlers.feed_add(o.get("url") or rest.strip(), guild_id=g, include=o.get("include"),
                                     exclude=o.get("exclude"))
        if action == "edit":
            return handlers.feed_edit(o.get("feed") or o.get("url") or rest.strip(), guild_id=g,
                                      include=o.get("include"), exclude=o.get("exclude"))
        if action == "remove":
            return handlers.feed_remove(o.get("feed") or o.get("url") or rest.strip(), guild_id=g)
        return handlers.feed_list(guild_id=g)
    if cmd.name == "ask":
        return handlers.ask(o.get("question"), mode=o.get("mode") or "extractive",
                            k=_int(o.get("k"), "k", USAGE["ask"]) or 3, guild_id=guild_id)
    if cmd.name == "articles":
        return handlers.articles(o.get("query"), page=_int(o.get("page"), "page", USAGE["articles"]) or 1,
                                 guild_id=guild_id)
    if cmd.name == "about":
        return handlers.about(guild_id=guild_id)
    return handlers.help()


def handle_line(handlers: Handlers, line: str, guild_id: int | None = None) -> str | None:
    """One console line -> the text to print (None for /quit)."""
    try:
        cmd = parse_command(line)
        if cmd.name == "quit":
            return None
        return render_text(dispatch(handlers, cmd, guild_id))
    except UsageError as exc:
        return f"Usage: {exc}"


def run_console(handlers: Handlers, stdin: TextIO | None = None, stdout: TextIO | None = None,
                guild_id: int | None = None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty()
    if interactive:
        stdout.write("Precis console. Type /help for commands, /quit to leave.\n")
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        out = handle_line(handlers, line, guild_id)
        if out is None:
            break
        stdout.write(out + "\n\n")
        stdout.flush()
    return 0
