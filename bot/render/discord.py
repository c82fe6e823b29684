"""Reply / Digest -> Discord messages, as plain dicts (no discord import here).

Each message is a :class:`DiscordMessage`: ``content`` plus ``embeds`` shaped
like Discord's embed JSON, which the adapter turns into ``discord.Embed`` with
``Embed.from_dict``. Everything stays inside Discord's limits — 2,000
characters of content, 4,096 per description, 256 per title and field name,
1,024 per field value, 25 fields and 10 embeds per message, 6,000 characters
of embed text per message — by splitting long text at sentence boundaries
(then at words) and moving what does not fit into further messages or pages.

Layout of a summary or answer: the first embed holds the summary (or
answer); then "Supporting sentences", numbered, one field each, named with the
article's title and date, its value the sentence followed by a ``[source](url)``
link to the article where it has one (feeds and pasted links). Only the first few
are shown; all of them are in ``support_pages`` (what the "show all" button pages
through).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..engines.digest import Digest, Story
from ..handlers.reply import Reply, SupportItem
from .links import safe_url

MAX_CONTENT = 2000
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FIELDS = 25
MAX_FOOTER = 2048
MAX_EMBEDS = 10
MAX_TOTAL = 6000

SUPPORT_SHOWN = 5  # supporting sentences in the first message; the rest behind the button
SUPPORT_PER_PAGE = 5
SOURCE_TEXT = "source"  # the text of the link to a supporting sentence's article

COLOR_SUMMARY = 0x2B6CB0
COLOR_ANSWER = 0x2F855A
COLOR_ABSTAIN = 0xB7791F
COLOR_INFO = 0x4A5568
COLOR_DIGEST = 0x6B46C1

ELLIPSIS = "…"
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|\n+")


@dataclass
class DiscordMessage:
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"embeds": self.embeds}
        if self.content:
            out["content"] = self.content
        return out

    @property
    def embed_chars(self) -> int:
        return sum(embed_size(e) for e in self.embeds)


@dataclass
class RenderedReply:
    messages: list[DiscordMessage]  # send in order: the first completes the deferred response
    support_pages: list[DiscordMessage] = field(default_factory=list)  # every supporting sentence, paged
    support_total: int = 0
    support_shown: int = 0
    ok: bool = True

    @property
    def has_more_support(self) -> bool:
        return self.support_total > self.support_shown


# ------------------------------------------------------------------ text helpers


def truncate(text: str, limit: int) -> str:
    text = text or ""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, broken at sentence
    boundaries where possible, else at spaces, else anywhere."""
    text = (text or "").strip()
    if len(text) <= limit:
        return [text] if text else []
    units: list[str] = []
    for sentence in (s for s in _SENTENCE_END.split(text) if s and s.strip()):
        sentence = sentence.strip()
        while len(sentence) > limit:  # one sentence longer than the limit: break at a space
            cut = sentence.rfind(" ", 0, limit + 1)
            if cut <= 0:
                cut = limit
            units.append(sentence[:cut].rstrip())
            sentence = sentence[cut:].lstrip()
        if sentence:
            units.append(sentence)
    pieces: list[str] = []
    cur = ""
    for u in units:
        if not cur:
            cur = u
        elif len(cur) + 1 + len(u) <= limit:
            cur = f"{cur} {u}"
        else:
            pieces.append(cur)
            cur = u
    if cur:
        pieces.append(cur)
    return pieces


def embed_size(e: dict[str, Any]) -> int:
    """Characters Discord counts toward the 6,000 per message."""
    n = len(e.get("title") or "") + len(e.get("description") or "")
    n += len((e.get("footer") or {}).get("text") or "") + len((e.get("author") or {}).get("name") or "")
    for f in e.get("fields") or []:
        n += len(f.get("name") or "") + len(f.get("value") or "")
    return n


def _field(name: str, value: str, inline: bool = False) -> dict[str, Any]:
    return {"name": truncate(name, MAX_FIELD_NAME) or "\u200b", "value": truncate(value, MAX_FIELD_VALUE) or "\u200b", "inline": inline}


def pack(embeds: list[dict[str, Any]], content: str = "") -> list[DiscordMessage]:
    """Put embeds into as few messages as Discord allows (10 embeds, 6,000 characters each)."""
    messages: list[DiscordMessage] = []
    cur = DiscordMessage(content=truncate(content, MAX_CONTENT))
    for e in embeds:
        size = embed_size(e)
        if cur.embeds and (len(cur.embeds) >= MAX_EMBEDS or cur.embed_chars + size > MAX_TOTAL):
            messages.append(cur)
            cur = DiscordMessage()
        cur.embeds.append(e)
    if cur.embeds or cur.content:
        messages.append(cur)
    return messages


def _text_embeds(title: str, text: str, color: int, footer: str | None = None, url: str | None = None) -> list[dict[str, Any]]:
    """A titled embed whose long text continues in untitled embeds, split at sentences."""
    parts = split_text(text, MAX_DESCRIPTION) or ["\u200b"]
    embeds = []
    for i, part in enumerate(parts):
        e: dict[str, Any] = {"type": "rich", "description": part, "color": color}
        if i == 0 and title:
            e["title"] = truncate(title, MAX_TITLE)
            link = safe_url(url)
            if link:
                e["url"] = link
        embeds.append(e)
    if footer:
        embeds[-1]["footer"] = {"text": truncate(footer, MAX_FOOTER)}
    return embeds


# ------------------------------------------------------------------ supporting sentences


def support_label(n: int, s: SupportItem | Any) -> str:
    date = f" ({s.date})" if s.date else ""
    return f"{n}. {s.title}{date}"


def source_link(url: str | None) -> str:
    """``[source](url)``: a masked link to the article, or "" when the URL is not a safe
    http(s) link (see :func:`bot.render.links.safe_url`: nothing in it can close the link,
    and the link text is fixed, so a feed cannot put markdown or mentions there)."""
    url = safe_url(url)
    return f"[{SOURCE_TEXT}]({url})" if url else ""


def support_fields(n: int, s: SupportItem | Any, value_limit: int = MAX_FIELD_VALUE) -> list[dict[str, Any]]:
    """One supporting sentence as field(s): named with its number, article title and date;
    a sentence longer than a field value continues in the next field. When its article
    has a link, the (last) value ends with `` [source](url)``: the URL is never cut, the
    sentence makes room instead (it continues in the next field, or, at a shrunk
    ``value_limit``, is shortened; there the link is left out rather than leave the
    sentence less than half of the value)."""
    link = source_link(getattr(s, "url", None))
    suffix = f" {link}" if link else ""
    if value_limit < MAX_FIELD_VALUE:
        if suffix and value_limit - len(suffix) < value_limit // 2:
            suffix = ""
        text = truncate(s.text, value_limit - len(suffix))
    else:
        text = s.text
    chunks = split_text(text, MAX_FIELD_VALUE - len(suffix))
    if suffix and chunks:
        chunks[-1] += suffix
    chunks = chunks or [link or "\u200b"]
    label = support_label(n, s)
    return [_field(label if i == 0 else f"{n}. (continued)", chunk) for i, chunk in enumerate(chunks)]


def support_pages(items: list[Any], per_page: int = SUPPORT_PER_PAGE, title: str = "Supporting sentences") -> list[DiscordMessage]:
    """All supporting sentences, a few per page, each page one message within the limits."""
    pages: list[list[dict[str, Any]]] = []
    ranges: list[tuple[int, int]] = []
    cur: list[dict[str, Any]] = []
    first = 1
    count = 0
    budget = MAX_TOTAL - MAX_TITLE - 120
    for n, s in enumerate(items, 1):
        fields = support_fields(n, s)
        size = sum(len(f["name"]) + len(f["value"]) for f in fields)
        cur_size = sum(len(f["name"]) + len(f["value"]) for f in cur)
        if cur and (count >= per_page or len(cur) + len(fields) > MAX_FIELDS or cur_size + size > budget):
            pages.append(cur)
            ranges.append((first, n - 1))
            cur, count, first = [], 0, n
        cur.extend(fields)
        count += 1
    if cur:
        pages.append(cur)
        ranges.append((first, len(items)))
    total = len(items)
    out = []
    for i, (fields, (a, b)) in enumerate(zip(pages, ranges), 1):
        span = f"{a}" if a == b else f"{a}–{b}"
        embed = {
            "type": "rich",
            "title": truncate(f"{title} ({span} of {total})", MAX_TITLE),
            "color": COLOR_INFO,
            "fields": fields,
            "footer": {"text": f"Page {i} of {len(pages)}"},
        }
        out.append(DiscordMessage(embeds=[embed]))
    return out


# ------------------------------------------------------------------ replies


def render_error(text: str) -> DiscordMessage:
    return DiscordMessage(content=truncate(text, MAX_CONTENT))


def render_reply(reply: Reply, *, shown: int = SUPPORT_SHOWN) -> RenderedReply:
    if reply.kind == "error" or not reply.ok:
        return RenderedReply([render_error(reply.text or "Something went wrong.")], ok=False)
    if reply.kind in ("help", "about", "info"):
        return RenderedReply(pack(_text_embeds(reply.title, reply.text, COLOR_INFO)))
    if reply.kind == "articles":
        return RenderedReply(pack([render_articles_embed(reply)]))
    return _render_summary_or_answer(reply, shown)


def render_articles_embed(reply: Reply) -> dict[str, Any]:
    lines = []
    for a in reply.articles:
        date = f" · {a.date}" if a.date else ""
        lines.append(truncate(f"**{a.title}**{date}\n`{a.id}` · {a.sentences} sentences", 600))
    body = "\n".join(lines) if lines else (reply.text or "No articles.")
    m = reply.meta
    footer = f"Page {m.get('page', 1)} of {m.get('pages', 1)} · {m.get('total', len(reply.articles))} article(s)"
    return {
        "type": "rich",
        "title": truncate(reply.title or "Articles", MAX_TITLE),
        "description": truncate(body, MAX_DESCRIPTION),
        "color": COLOR_INFO,
        "footer": {"text": footer},
    }


def _bold_safe(text: str) -> str:
    """Text that can sit inside **bold** without Discord markdown in it breaking out."""
    return re.sub(r"([*_~`|\\])", r"\\\1", text)


def _render_summary_or_answer(reply: Reply, shown: int) -> RenderedReply:
    m = reply.meta
    mode = m.get("mode", "extractive")
    if reply.kind == "summary":
        title = reply.title + (f" ({m['date']})" if m.get("date") else "")
        color = COLOR_SUMMARY
        footer = f"Summary · {mode}"
        if m.get("articles"):
            footer += f" · from {len(m['articles'])} article(s)"
    else:
        title = f"Q: {reply.title}"
        color = COLOR_ABSTAIN if reply.abstained else COLOR_ANSWER
        footer = f"Answer · {mode}"
        if "confidence" in m:
            footer += f" · confidence {m['confidence']:.2f}"
    if reply.kind == "answer" and m.get("short_answer") and len(reply.lines) > 1:
        # The answer phrase on the first line, then the sentence it is from.
        body = f"**{_bold_safe(reply.lines[0].text)}**\n" + " ".join(l.text for l in reply.lines[1:] if l.text)
    else:
        body = " ".join(line.text for line in reply.lines if line.text)
    if reply.notes:
        body = (body + "\n\n" if body else "") + "\n".join(f"*{n}*" for n in reply.notes)
    embeds = _text_embeds(title, body or "\u200b", color, footer=footer)

    support = reply.supporting
    total = len(support)
    shown_n = 0
    if support:
        used = sum(embed_size(e) for e in embeds[-1:])  # the last text embed shares the message
        head = {"type": "rich", "title": "Supporting sentences", "color": color, "fields": []}
        budget = MAX_TOTAL - used - len(head["title"]) - 80
        for n, s in enumerate(support[:shown], 1):
            fields = support_fields(n, s)
            size = sum(len(f["name"]) + len(f["value"]) for f in fields)
            if len(head["fields"]) + len(fields) > MAX_FIELDS or size > budget:
                break
            head["fields"].extend(fields)
            budget -= size
            shown_n = n
        if shown_n < total:
            head["footer"] = {"text": f"Showing {shown_n} of {total} · use the button to see them all"}
        if head["fields"]:
            embeds.append(head)
    messages = pack(embeds)
    pages = support_pages(support) if support else []
    return RenderedReply(messages, pages, total, shown_n)


# ------------------------------------------------------------------ digests


def digest_footer(ref: str | None, digest: Digest) -> str:
    parts = [ref] if ref else []
    parts.append(f"{digest.article_count} new article(s)")
    if digest.stories:
        parts.append(f"{len(digest.stories)} stor{'y' if len(digest.stories) == 1 else 'ies'}")
    return " · ".join(parts)


def _story_embed(story: Story, value_limit: int) -> dict[str, Any]:
    lines = " ".join(s.text if value_limit >= MAX_FIELD_VALUE else truncate(s.text, value_limit) for s in story.sentences)
    desc = lines
    if len(story.articles) > 1:
        cover = "; ".join(f"{a.title}" + (f" ({a.date})" if a.date else "") for a in story.articles)
        desc = f"**{len(story.articles)} articles on this story:** {cover}\n\n{lines}"
    fields: list[dict[str, Any]] = []
    for n, s in enumerate(story.sentences, 1):
        fields.extend(support_fields(n, s, value_limit))
    embed: dict[str, Any] = {
        "type": "rich",
        "title": truncate(("Update: " if story.update else "") + story.title, MAX_TITLE),
        "description": truncate(desc, min(MAX_DESCRIPTION, max(200, value_limit * 3))),
        "color": COLOR_DIGEST,
    }
    url = safe_url(story.articles[0].url) if story.articles else None
    if url:
        embed["url"] = url
    if fields:
        embed["fields"] = fields[:MAX_FIELDS]
    return embed


def no_new_facts(story: Story) -> str:
    """The one line a continuing story gets when its new articles only repeat what was told."""
    n = len(story.articles)
    return f"No new facts in {n} more article{'' if n == 1 else 's'}"


def _unchanged_embed(stories: list[Story]) -> dict[str, Any]:
    lines = [truncate(f"**Update:** {_bold_safe(st.title)} — {no_new_facts(st)}", 300) for st in stories]
    text = ""
    for k, line in enumerate(lines):
        if len(text) + len(line) + 40 > 1500:
            text += f"…and {len(lines) - k} more earlier stories with no new facts"
            break
        text += line + "\n"
    return {"type": "rich", "title": "Earlier stories", "description": text.strip(), "color": COLOR_DIGEST}


def render_digest(digest: Digest, *, ref: str | None = None, heading: str = "News digest",
                  empty_text: str = "Nothing new since the last digest.") -> DiscordMessage:
    """One message (a digest is posted exactly once, as one message): a story per
    embed, in the order given, shrinking sentences to fit; stories that still do
    not fit are listed by title in a last embed."""
    footer = digest_footer(ref, digest)
    if digest.empty:
        e = {"type": "rich", "title": heading, "description": empty_text, "color": COLOR_DIGEST,
             "footer": {"text": truncate(ref or "Precis digest", MAX_FOOTER)}}
        return DiscordMessage(embeds=[e])
    content = truncate(f"**{heading}**: {digest.article_count} new article(s)"
                       + (f" in {len(digest.stories)} stor{'y' if len(digest.stories) == 1 else 'ies'}" if digest.stories else ""),
                       MAX_CONTENT)
    reserve = 700 + len(footer)  # room for the "also new" embed and the footer
    embeds: list[dict[str, Any]] = []
    used = 0
    leftover = list(digest.more)
    # a continuing story with nothing new is one line, all such lines in one embed
    unchanged = [st for st in digest.stories if st.update and not st.sentences]
    if unchanged:
        reserve += embed_size(_unchanged_embed(unchanged))
    for i, story in enumerate(digest.stories):
        if story.update and not story.sentences:
            continue
        placed = False
        if len(embeds) < MAX_EMBEDS - 1 - bool(unchanged):
            for limit in (MAX_FIELD_VALUE, 400, 200):
                e = _story_embed(story, limit)
                size = embed_size(e)
                if used + size + reserve <= MAX_TOTAL:
                    embeds.append(e)
                    used += size
                    placed = True
                    break
        if not placed:
            leftover.extend(story.articles)
    if unchanged and len(embeds) < MAX_EMBEDS - (1 if leftover else 0):
        e = _unchanged_embed(unchanged)
        embeds.append(e)
        used += embed_size(e)
    elif unchanged:
        leftover.extend(a for st in unchanged for a in st.articles)
    if leftover:
        lines, budget = [], MAX_TOTAL - used - len(footer) - 120
        for k, a in enumerate(leftover):
            line = truncate(f"• {a.title}" + (f" ({a.date})" if a.date else ""), 200)
            rest = len(leftover) - k
            if sum(len(x) + 1 for x in lines) + len(line) + 40 > min(budget, MAX_DESCRIPTION):
                lines.append(f"…and {rest} more: see /articles")
                break
            lines.append(line)
        embeds.append({"type": "rich", "title": "Also new", "description": "\n".join(lines), "color": COLOR_DIGEST})
    if digest.missing:
        note = f"{digest.missing} covered article(s) are no longer loaded."
        embeds[-1]["description"] = truncate((embeds[-1].get("description") or "") + f"\n\n*{note}*", MAX_DESCRIPTION)
    embeds[-1]["footer"] = {"text": truncate(footer, MAX_FOOTER)}
    msg = DiscordMessage(content=content, embeds=embeds)
    while len(msg.embeds) > 1 and (len(msg.embeds) > MAX_EMBEDS or msg.embed_chars > MAX_TOTAL):  # belt and braces
        msg.embeds.pop(-2)
    return msg
