"""The console: slash-syntax parsing and the replies people see (same handlers as Discord)."""

from __future__ import annotations

import io

import pytest

from bot.adapters.console import Command, UsageError, handle_line, parse_command, run_console
from bot.corpus.article import Article
from bot.handlers.core import Handlers


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/summary article:Kazakhs", Command("summary", {"article": "Kazakhs"})),
        ("/summary article:coronavirus Japan length:2", Command("summary", {"article": "coronavirus Japan", "length": "2"})),
        ("/summary topic:Tokyo lockdown mode:extractive", Command("summary", {"topic": "Tokyo lockdown", "mode": "extractive"})),
        ("/ask question:What time: 9 a.m.?", Command("ask", {"question": "What time: 9 a.m.?"})),
        ("/ask How many Kazakhs may leave?", Command("ask", {"question": "How many Kazakhs may leave?"})),
        # typed as in a chat: "question:" inside the question is part of it
        ("/ask hi all, quick question: what did Asahi report?",
         Command("ask", {"question": "hi all, quick question: what did Asahi report?"})),
        ("/ask quick question: who won? mode:abstractive",
         Command("ask", {"question": "quick question: who won?", "mode": "abstractive"})),
        ('/articles query:"Japan"', Command("articles", {"query": "Japan"})),
        ("/ARTICLES", Command("articles", {})),
        ("/help", Command("help", {})),
    ],
)
def test_parse(line, expected):
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("summary article:x", "start with '/'"),
        ("/sumary article:x", "Unknown command /sumary"),
        ("/summary colour:red", "Unknown option 'colour'"),
        ("/summary article:a article:b", "given twice"),
        ("/help me", "takes no options"),
    ],
)
def test_usage_errors_are_one_line_hints(line, hint):
    with pytest.raises(UsageError) as exc:
        parse_command(line)
    assert hint in str(exc.value) and "\n" not in str(exc.value)


def test_summary_kazakhs_prints_three_supporting_sentences(sample_app):
    out = handle_line(Handlers(sample_app), "/summary article:Kazakhs")
    assert out.startswith("Summary (extractive): China allowing 2,000 ethnic Kazakhs to leave Xinjiang region")
    support = out.split("Supporting sentences:")[1]
    numbered = [ln for ln in support.splitlines() if ln.strip()[:2] in ("1.", "2.", "3.", "4.")]
    assert [n.strip()[:2] for n in numbered] == ["1.", "2.", "3."]
    assert support.count("— China allowing 2,000 ethnic Kazakhs to leave Xinjiang region, 09 January 2019") == 3


def test_bad_options_answer_politely(sample_app):
    h = Handlers(sample_app)
    assert handle_line(h, "/summary article:Kazakhs length:eleven").startswith("Usage: length must be a whole number")
    assert handle_line(h, "/summary article:Kazakhs length:0") == "Error: length must be from 1 to 10 (got 0)."
    assert handle_line(h, "/summary article:Kazakhs mode:poetic").startswith("Error: Unknown mode 'poetic'")
    assert handle_line(h, "/summary article:no such thing zzz").startswith("Error: No article matches")
    assert handle_line(h, "/summary").startswith("Error: Give exactly one of")
    assert handle_line(h, "/quit") is None


def test_topic_summary_carries_titles(sample_app):
    reply = Handlers(sample_app).summary(topic="coronavirus Japan", length=2)
    assert reply.ok and len(reply.lines) == 2
    assert all(s.title.startswith("Japan to ban") for s in reply.supporting)


def test_articles_listing_and_paging(sample_app):
    h = Handlers(sample_app)
    listing = h.articles()
    assert [a.title[:5] for a in listing.articles] == ["Japan", "China"]  # newest first
    assert h.articles(page=2, per_page=1).articles[0].title.startswith("China")
    assert h.articles("Kazakh").articles[0].title.startswith("China")
    assert "No articles match" in h.articles("zzzqqq xxyy").text


def test_piped_console_session(sample_app):
    stdin = io.StringIO("/articles\n\n/nonsense\n/summary article:Tokyo length:1\n/quit\n/help\n")
    stdout = io.StringIO()
    assert run_console(Handlers(sample_app), stdin, stdout) == 0
    text = stdout.getvalue()
    assert "Articles (newest first)" in text
    assert "Usage: Unknown command /nonsense" in text
    assert "Summary (extractive): Japan to ban" in text
    assert "/ask question:<text>" not in text  # stopped at /quit, before /help


def test_empty_corpus_is_a_clear_message(app_factory, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    app = app_factory(corpus_path=empty)
    out = handle_line(Handlers(app), "/summary article:anything")
    assert out.startswith("Error: The corpus is empty")


def test_supporting_sentences_print_their_articles_link(sample_app):
    from tests.fakes.web import story

    title, paras = story(0)
    url = "https://news.example.com/lisbon/tram_line.html?from=rss"
    sample_app.add_articles([Article.build(title=title, text="\n".join(paras), date="01 December 2026", url=url)])
    h = Handlers(sample_app)
    out = handle_line(h, "/ask question:When did Lisbon open its new tram line?")
    support = out.split("Supporting sentences:")[1].splitlines()
    at = support.index(f"       <{url}>")  # under the "— title, date (sentence n, score …)" line of its sentence
    assert support[at - 1].startswith(f"     — {title}, 01 December 2026 (sentence ")
    out = handle_line(h, "/summary article:Lisbon length:2")
    assert out.count(f"       <{url}>") == 2
    assert "<" not in handle_line(h, "/summary article:Kazakhs").split("Supporting sentences:")[1]  # no url: no line


def test_a_hostile_url_is_printed_encoded_or_not_at_all():
    from bot.handlers.reply import Line, Reply, SupportItem
    from bot.render.text import render_text

    def printed(url):
        s = SupportItem("a1", "Title", None, 0, "A sentence.", 1.0, url)
        return render_text(Reply(kind="answer", title="Q?", lines=(Line("A sentence.", (s,)),))).splitlines()[-1]

    assert printed("https://e.com/a b") == "     — Title (sentence 1, score 1.00)"
    assert printed("https://e.com/\x1b]8;;x\x07") == "     — Title (sentence 1, score 1.00)"  # no terminal escapes
    assert printed("javascript:alert(1)") == "     — Title (sentence 1, score 1.00)"
    assert printed("https://e.com/<x>(y)") == "       <https://e.com/%3Cx%3E%28y%29>"
