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
    folder = tmp_path_factory.mktemp("cli")
    f = folder / "in.jsonl"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    # JSON Lines: records end at "\n" only (U+0085, U+2028 inside a record are not line ends)
    expected = len([ln for ln in f.read_text(encoding="utf-8").split("\n") if ln.strip()])
    out = io.StringIO()
    app = Precis(settings_factory(data_dir=folder / "data"), embedder=embedder)
    assert summarize(app, f, "extractive", 3, out) == 0
    lines = [json.loads(x) for x in out.getvalue().splitlines()]  # any splitter: nothing raw to break on
    assert len(lines) == expected
    for line in lines:
        assert ("error" in line and line["error"]) or (line["summary"] and len(line["support"]) == len(line["summary"]))


def test_batch_output_records_with_unicode_line_breaks_read_back_whole(tmp_path, settings_factory, embedder):
    """A record holding U+0085, U+2028 and U+2029 (ids, titles and text do) is one line to str.splitlines too."""
    from bot.adapters.cli import summarize
    from bot.app import Precis

    odd = "a\u0085b\u2028c\u2029d"
    f = tmp_path / "in.jsonl"
    rows = [{"id": odd, "title": odd, "text": f"The council met on Monday. It approved the {odd} plan."},
            {"id": "second", "text": "Rain fell in the north. Rivers rose overnight."}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = io.StringIO()
    assert summarize(Precis(settings_factory(data_dir=tmp_path / "data"), embedder=embedder), f, "extractive", 3,
                     out) == 0
    raw = out.getvalue()
    assert "\u2028" not in raw and "\u0085" not in raw and "\u2029" not in raw
    records = [json.loads(x) for x in raw.splitlines()]
    assert [r["id"] for r in records] == [odd, "second"]
    assert any("plan" in s for s in records[0]["summary"])  # the text (its breaks made spaces) summarised


def test_corpus_jsonl_keeps_a_record_holding_unicode_line_breaks(tmp_path):
    from bot.corpus.loader import load_corpus
    from bot.jsonl import dumps_line

    odd = "Shares rose\u2028in Tokyo\u0085and Seoul."
    f = tmp_path / "fetched.jsonl"
    f.write_text(dumps_line({"title": "Markets", "text": odd}) + "\n" + json.dumps(
        {"title": "Raw", "text": "One line\u2028of text written raw by another tool."}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    result = load_corpus(f)
    assert not result.issues
    assert [a.title for a in result.articles] == ["Markets", "Raw"]


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "x" * 301])
def test_ask_refuses_empty_and_long_questions_politely(sample_app, question):
    reply = Handlers(sample_app).ask(question)
    assert not reply.ok and ("question" in reply.text.lower())
