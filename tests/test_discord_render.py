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


# ------------------------------------------------------------------ links to the source


from bot.engines.digest import Digest, DigestSentence, Story, StoryArticle  # noqa: E402
from bot.render.discord import render_digest, source_link, support_fields  # noqa: E402
from bot.render.links import MAX_URL, safe_url  # noqa: E402

NEWS_URL = "https://news.example.com/2025/01/lisbon-tram_line.html?utm=rss#top"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (NEWS_URL, NEWS_URL),
        ("http://127.0.0.1:8080/news/0.html", "http://127.0.0.1:8080/news/0.html"),
        ("  HTTPS://News.Example.com/A \n", "https://news.example.com/A"),
        # what could close the link or start markdown is percent-encoded, the rest kept
        ("https://e.com/a)[x](https://evil.example", "https://e.com/a%29%5Bx%5D%28https://evil.example"),
        ("https://e.com/(c)<@&123>`code`|x|\\\"", "https://e.com/%28c%29%3C@&123%3E%60code%60%7Cx%7C%5C%22"),
        ("https://e.com/100%", "https://e.com/100%25"),
        ("https://münchen.example/straße", "https://xn--mnchen-3ya.example/stra%C3%9Fe"),
        # not linked at all
        ("javascript:alert(1)", None),
        ("JavaScript://e.com/%0aalert(1)", None),
        ("data:text/html,<b>x</b>", None),
        ("ftp://e.com/file", None),
        ("//e.com/no-scheme", None),
        ("https://e.com/a b", None),
        ("https://e.com/a\tb", None),
        ("https://e.com/\x1b[2J", None),
        ("https://bank.example@evil.example/", None),
        ("https://[::1]/x", None),
        ("https://e.com:99999/", None),
        ("https:///path-only", None),
        ("https://e.com/" + "a" * MAX_URL, None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url, expected):
    assert safe_url(url) == expected


def test_source_link_is_a_fixed_masked_link():
    assert source_link(NEWS_URL) == f"[source]({NEWS_URL})"
    assert source_link("javascript:alert(1)") == "" and source_link(None) == ""
    assert source_link("https://e.com/x) **@everyone** [y](z") == ""  # whitespace: not linked
    assert source_link("https://e.com/x)**@everyone**[y](z") == "[source](https://e.com/x%29**@everyone**%5By%5D%28z)"


def _item(text: str, url: str | None, i: int = 0) -> SupportItem:
    return SupportItem(f"a{i}", "Lisbon opens its new tram line", "01 January 2025", i, text, 1.0, url)


def _link_of(value: str) -> str | None:
    """The URL of the one masked link a field value ends with (the way Discord reads it)."""
    import re

    m = re.fullmatch(r"(?s)(.*) ?\[source\]\(([^()\s<>`]+)\)", value)
    assert value.count("[source](") <= 1
    return m.group(2) if m else None


def test_a_support_field_ends_with_its_source_link():
    text = "The city of Lisbon opened its new tram line on Monday, officials said."
    [f] = support_fields(1, _item(text, NEWS_URL))
    assert f["name"] == "1. Lisbon opens its new tram line (01 January 2025)"
    assert f["value"] == f"{text} [source]({NEWS_URL})" and _link_of(f["value"]) == NEWS_URL
    [plain] = support_fields(1, _item(text, None))  # no url (the bundled corpus): as before
    assert plain["value"] == text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://e.com/a)(b", "https://e.com/a%29%28b"),
        ("https://e.com/a b)", None),
        ("javascript:alert(document.cookie)", None),
        ("https://e.com/" + "x" * 5000, None),
        ("https://e.com/" + "x" * (MAX_URL - len("https://e.com/")), "https://e.com/" + "x" * (MAX_URL - len("https://e.com/"))),
    ],
)
def test_hostile_urls_never_break_the_field(url, shown):
    text = "A sentence with **bold** and @everyone in it."
    [f] = support_fields(2, _item(text, url))
    assert len(f["value"]) <= MAX_FIELD_VALUE
    assert _link_of(f["value"]) == shown
    if shown is None:
        assert f["value"] == text and "](" not in f["value"]


@pytest.mark.parametrize("text_len", [100, 900, 1000, 1024, 3000])
def test_a_long_sentence_is_shortened_never_the_url(text_len):
    url = "https://e.com/" + "y" * (MAX_URL - len("https://e.com/"))  # the longest URL that is linked
    text = " ".join(f"w{k}" for k in range(text_len))[:text_len].rstrip() + "."
    fields = support_fields(3, _item(text, url))
    for f in fields:
        assert 1 <= len(f["value"]) <= MAX_FIELD_VALUE and len(f["name"]) <= 256
    assert [f["value"].count(url) for f in fields] == [0] * (len(fields) - 1) + [1]  # whole, once, at the end
    assert fields[-1]["value"].endswith(f" [source]({url})")
    words = " ".join(f["value"].removesuffix(f" [source]({url})") for f in fields).split()
    assert words == text.split()  # support_fields(…, MAX) loses no words: long text continues


@pytest.mark.parametrize("limit", [200, 400])
def test_shrunk_digest_values_keep_the_url_whole_or_leave_it_out(limit):
    text = "word " * 300 + "end."
    [f] = support_fields(1, _item(text, NEWS_URL), value_limit=limit)
    assert len(f["value"]) <= limit and f["value"].endswith(f"… [source]({NEWS_URL})")
    long_url = "https://e.com/" + "z" * 136  # 150 characters: fits 400 with half left for the text, not 200
    [g] = support_fields(1, _item(text, long_url), value_limit=limit)
    assert len(g["value"]) <= limit
    assert g["value"].endswith(f"[source]({long_url})") if limit == 400 else "[source](" not in g["value"]


def test_answers_and_pages_with_links_stay_inside_the_limits():
    url = "https://e.com/" + "q" * (MAX_URL - len("https://e.com/"))
    support = tuple(_item(_sentence(i, 300), url, i) for i in range(30))
    reply = Reply(kind="answer", title="Q?", lines=(Line("An answer.", support),), meta={"mode": "extractive", "confidence": 0.5})
    rendered = render_reply(reply)
    for msg in rendered.messages + rendered.support_pages:
        _check(msg)
    values = [f["value"] for p in rendered.support_pages for f in p.embeds[0]["fields"]]
    assert sum(v.count(f"[source]({url})") for v in values) == 30  # every sentence's link, whole
    assert all(v.endswith(f" [source]({url})") for v in values if url in v)
    head = rendered.messages[-1].embeds[-1]
    assert head["title"] == "Supporting sentences" and _link_of(head["fields"][-1]["value"]) == url


def test_digest_story_sentences_link_their_articles():
    a, b = "https://a.example/quake", "https://b.example/quake?id=2"
    story = Story("Quake", (StoryArticle("a1", "Quake A", "01 Jan 2025", a), StoryArticle("b1", "Quake B", None, b)),
                  (DigestSentence("a1", "Quake A", "01 Jan 2025", 0, "A quake struck.", 1.0, a),
                   DigestSentence("b1", "Quake B", None, 3, "Rescuers arrived.", 0.9, b)))
    msg = render_digest(Digest((story,), article_count=2), ref="Digest #1")
    fields = msg.embeds[0]["fields"]
    assert [f["value"] for f in fields] == [f"A quake struck. [source]({a})", f"Rescuers arrived. [source]({b})"]
    assert msg.embeds[0]["url"] == a
    _check(msg)
