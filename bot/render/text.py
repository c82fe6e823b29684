"""Reply -> plain text for the console (the same content the Discord embeds carry)."""

from __future__ import annotations

import textwrap

from ..handlers.reply import Reply
from .links import safe_url

CONSOLE_MAX_URL = 2048  # the console has no message limits; longer is not a news link


def _wrap(text: str, indent: str = "", width: int = 100) -> str:
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=" " * len(indent))


def render_text(reply: Reply, width: int = 100) -> str:
    if reply.kind == "error":
        return f"Error: {reply.text}"
    if reply.kind in ("help", "about", "info"):
        return f"{reply.title}\n{reply.text}" if reply.title else reply.text
    out: list[str] = []
    if reply.kind == "articles":
        out.append(reply.title)
        if reply.text:
            out.append(reply.text)
        for a in reply.articles:
            date = f" ({a.date})" if a.date else ""
            out.append(_wrap(f"[{a.id}] {a.title}{date}", "  ", width))
        m = reply.meta
        if m.get("pages", 1) > 1:
            out.append(f"Page {m['page']} of {m['pages']} ({m['total']} articles); add page:N for more.")
        return "\n".join(out)

    if reply.kind == "summary":
        header = reply.title
        if reply.meta.get("date"):
            header += f" ({reply.meta['date']})"
        out.append(f"Summary ({reply.meta.get('mode', 'extractive')}): {header}")
    else:
        out.append(f"Q: {reply.title}")
    support = reply.supporting
    number = {(s.article_id, s.index): n for n, s in enumerate(support, 1)}
    for line in reply.lines:
        refs = sorted({number[(s.article_id, s.index)] for s in line.support})
        cite = f" [{', '.join(map(str, refs))}]" if refs else ""
        out.append(_wrap(line.text + cite, "  ", width))
    for note in reply.notes:
        out.append(_wrap(f"Note: {note}", "", width))
    if support:
        out.append("")
        out.append("Supporting sentences:")
        for n, s in enumerate(support, 1):
            date = f", {s.date}" if s.date else ""
            out.append(_wrap(f"{n}. {s.text}", "  ", width))
            out.append(f"     — {s.title}{date} (sentence {s.index + 1}, score {s.score:.2f})")
            url = safe_url(getattr(s, "url", None), max_len=CONSOLE_MAX_URL)
            if url:  # the article's link, percent-encoded: nothing in it can move the terminal's cursor
                out.append(f"       <{url}>")
    return "\n".join(out)
