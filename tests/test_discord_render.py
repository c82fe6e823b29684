"""Reply -> Discord embed dicts: inside every Discord limit, split at sentence boundaries."""

from __future__ import annotations

import pytest

from bot.handlers.reply import ArticleItem, Line, Reply, SupportItem
from bot.render.discord import (
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_FIELD_VALUE,
    MAX_TOTAL,
    embed_size,
    render_error,
    render_reply,
    split_text,
    support_pages,
)


def _check(msg) -> None:
    assert len(msg.content) <= 2000 and len(msg.embeds) <= MAX_EMBEDS and msg.embed_chars <= MAX_TOTAL
    for e in msg.embeds:
        assert len(e.get("title") or "") <= 256 and len(e.get("description") or "") <= MAX_DESCRIPTION
        assert len(e.get("fields") or []) <= 25
        for f in e.get("fields") or []:
            assert 1 <= len(f["name"]) <= 256 and 1 <= len(f["value"]) <= MAX_FIELD_VALUE


def _sentence(i: int, words: int = 20) -> str:
    return f"Sentence {i} " + " ".join(f"w{i}x{k}" for k in range(words)) + "."


@pytest.mark.parametrize("limit", [50, 200, 1024])
def test_split_text_keeps_sentences_whole_when_they_fit(limit):
    text = " ".join(_sentence(i, 5) for i in range(40))
    pieces = split_text(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert " ".join(pieces).split() == text.split()  # nothing lost, nothing added
    if limit >= 200:
        assert all(p.endswith(".") for p in pieces)  # cut at sentence ends


def test_split_text_breaks_an_overlong_sentence_at_words():
    text = "word " * 500
    pieces = split_text(text, 100)
    assert all(len(p) <= 100 for p in pieces) and " ".join(pieces).split() == text.split()


def _support(n: int, length: int) -> tuple[SupportItem, ...]:
    return tuple(SupportItem(f"a{i}", "T" * 300, "01 January 2025", i, _sentence(i, length), 1.0) for i in range(n))


def test_a_huge_answer_stays_inside_the_limits():
    support = _support(30, 300)  # sentences longer than a field value, titles longer than a field name
    reply = Reply(kind="answer", title="Q" * 400, lines=(Line(" ".join(_sentence(i, 40) for i in range(200)), support),),
                  notes=("a note " * 50,), meta={"mode": "extractive", "confidence": 0.5})
    rendered = render_reply(reply)
    assert len(rendered.messages) >= 2  # the long answer continues in further messages
    for msg in rendered.messages + rendered.support_pages:
        _check(msg)
    assert rendered.support_total == 30 and rendered.has_more_support
    names = [f["name"] for p in rendered.support_pages for f in p.embeds[0]["fields"]]
    assert names[0].startswith("1. TTT") and any(n == "1. (continued)" for n in names)


def test_summary_layout_shows_five_and_pages_the_rest():
    support = _support(8, 10)
    reply = Reply(kind="summary", title="Title", lines=tuple(Line(s.text, (s,)) for s in support),
                  meta={"mode": "extractive", "date": "01 January 2025"})
    rendered = render_reply(reply)
    [msg] = rendered.messages
    main, head = msg.embeds
    assert main["title"] == "Title (01 January 2025)" and main["footer"]["text"] == "Summary · extractive"
    assert head["title"] == "Supporting sentences" and len(head["fields"]) == 5
    name = head["fields"][0]["name"]  # "1. <title> (<date>)", cut to Discord's 256
    assert name.startswith("1. TTT") and len(name) == 256 and name.endswith("…")
    assert rendered.support_shown == 5 and [len(p.embeds[0]["fields"]) for p in rendered.support_pages] == [5, 3]


def test_errors_and_lists():
    assert render_error("x" * 3000).content.endswith("…") and len(render_error("x" * 3000).content) <= 2000
    err = render_reply(Reply.error("No article matches 'zz'."))
    assert not err.ok and err.messages[0].content == "No article matches 'zz'." and err.messages[0].embeds == []
    items = tuple(ArticleItem(f"id{i}", "A" * 500, "01 January 2025", 12) for i in range(25))
    arts = render_reply(Reply(kind="articles", title="Articles", articles=items, meta={"page": 1, "pages": 3, "total": 70}))
    _check(arts.messages[0])
    assert arts.messages[0].embeds[0]["footer"]["text"] == "Page 1 of 3 · 70 article(s)"


def test_support_pages_respect_the_6000_budget():
    pages = support_pages(list(_support(12, 250)))
    for p in pages:
        _check(p)
        assert embed_size(p.embeds[0]) <= MAX_TOTAL
    assert pages[0].embeds[0]["title"].startswith("Supporting sentences (1")
