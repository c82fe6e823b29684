"""Property-based bad input: random unicode, huge strings, control characters,
markdown and mention injection. No crash; every failure is a clear message."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.console import COMMANDS, UsageError, handle_line, parse_command
from bot.handlers.core import Handlers

NASTY = st.sampled_from(
    [
        "@everyone",
        "@here",
        "<@123456789012345678>",
        "<@&987654321098765432>",
        "**bold** __u__ `code` ```block```",
        "\x00\x07\x1b[31m",
        "\u202e\u200b\ufeff",
        "article:",
        "length:-1",
        "mode:",
        "/summary",
        "‮",
        "😀" * 50,
        "a" * 5000,
    ]
)
TEXT = st.one_of(st.text(max_size=300), NASTY, st.lists(st.one_of(st.text(max_size=40), NASTY), max_size=6).map(" ".join))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(line=TEXT)
def test_parser_never_crashes(line):
    try:
        cmd = parse_command(line)
    except UsageError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and len(msg) < 300
    else:
        assert cmd.name in COMMANDS
        assert set(cmd.options) <= set(COMMANDS[cmd.name]) | {"article", "question", "query"}


@FAST
@given(name=st.sampled_from(["summary", "ask", "articles", "about", "help"]), rest=TEXT)
def test_console_lines_always_answer(sample_app, name, rest):
    out = handle_line(Handlers(sample_app), f"/{name} {rest}")
    assert out is None or (isinstance(out, str) and out.strip())


@FAST
@given(article=st.one_of(st.none(), TEXT), topic=st.one_of(st.none(), TEXT), mode=TEXT, length=st.one_of(st.none(), st.integers(), TEXT))
def test_summary_handler_returns_a_reply(sample_app, article, topic, mode, length):
    reply = Handlers(sample_app).summary(article=article, topic=topic, mode=mode, length=length)
    if not reply.ok:
        assert reply.kind == "error" and reply.text and len(reply.text) < 400
    else:
        assert reply.lines and all(line.support for line in reply.lines)


@FAST
@given(question=st.one_of(st.none(), TEXT))
def test_ask_handler_returns_a_reply(sample_app, question):
    reply = Handlers(sample_app).ask(question)
    if not reply.ok:
        assert reply.kind == "error" and reply.text
    else:
        assert reply.kind == "answer" and reply.lines[0].text


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(TEXT, st.dictionaries(st.sampled_from(["id", "title", "text", "sentences"]), st.one_of(TEXT, st.integers(), st.none(), st.booleans()), max_size=4).map(json.dumps)), min_size=1, max_size=5))
def test_batch_cli_one_line_out_per_line_in(tmp_path_factory, settings_factory, embedder, rows):
    from bot.adapters.cli import summarize
    from bot.app import Precis

    rows = [r.replace("\n", " ").replace("\r", " ") for r in rows]
    rows = [r for r in rows if r.strip() and r.strip() != "\x1c"]
    folder = tmp_path_factory.mktemp("cli")
    f = folder / "in.jsonl"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    expected = len([ln for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()])
    out = io.StringIO()
    app = Precis(settings_factory(data_dir=folder / "data"), embedder=embedder)
    assert summarize(app, f, "extractive", 3, out) == 0
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(lines) == expected
    for line in lines:
        assert ("error" in line and line["error"]) or (line["summary"] and len(line["support"]) == len(line["summary"]))


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "x" * 301])
def test_ask_refuses_empty_and_long_questions_politely(sample_app, question):
    reply = Handlers(sample_app).ask(question)
    assert not reply.ok and ("question" in reply.text.lower())
