"""Article extraction from HTML the bot fetched: title, date, author, main text.

trafilatura first (built for news pages: main text and metadata); when it
finds no text, a readability-style fallback (readability-lxml), and when that
finds nothing either, the feed item's own content. A page whose text is far
shorter than the feed's summary (a paywall, a consent wall, a "subscribe to
read" stub) keeps the feed's text and says so in ``note``.

Plain synchronous Python; no I/O.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIN_WORDS = 3  # fewer words than this is "found nothing"
STUB_RATIO = 0.5  # page text shorter than half the feed's text: a stub page
STUB_MIN_FEED_WORDS = 20  # a one-line feed summary says nothing about the page

_BLOCKS = {"p", "div", "section", "article", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
           "blockquote", "pre", "tr", "table", "br", "figcaption", "header", "footer"}


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str
    date: str | None = None
    author: str | None = None
    method: str = "trafilatura"  # trafilatura | readability | feed | none
    stub: bool = False  # the page was a paywall/consent stub; the text is the feed's
    note: str | None = None

    @property
    def words(self) -> int:
        return len(self.text.split())


def word_count(text: str | None) -> int:
    return len((text or "").split())


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


def _drop_headline(text: str, title: str) -> str:
    """The body without a first line that only repeats the title (kept as the article's title)."""
    first, _, rest = text.partition("\n")
    f, t = _norm(first), _norm(title)
    if rest.strip() and f and (f == t or (len(f.split()) >= 4 and f in t)):
        return rest.strip()
    return text


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment, one block per line (feed content, readability output)."""
    import lxml.html
    from lxml import etree

    if not html or not html.strip():
        return ""
    if "<" not in html:
        return " ".join(html.split())
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return " ".join(re.sub(r"<[^>]+>", " ", html).split())
    for bad in root.xpath("//script|//style|//noscript"):
        bad.drop_tree()
    parts: list[str] = []

    def walk(el) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag.lower() in _BLOCKS:
            parts.append("\n")
        if el.text:
            parts.append(el.text)
        for child in el:
            walk(child)
        if tag.lower() in _BLOCKS:
            parts.append("\n")
        if el.tail:
            parts.append(el.tail)

    walk(root)
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


def trafilatura_extract(html: str, url: str | None = None):
    """trafilatura's own result (a Document with title/date/author/text), or None."""
    import trafilatura

    try:
        return trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False)
    except Exception as exc:  # noqa: BLE001 - a page that breaks the extractor must not break the poll
        log.warning("extract: trafilatura failed on %s: %s: %s", url, exc.__class__.__name__, exc)
        return None


def readability_extract(html: str) -> tuple[str, str]:
    """(title, text) by readability-lxml; ("", "") when it finds nothing."""
    from readability import Document

    try:
        doc = Document(html)
        return (doc.short_title() or "").strip(), html_to_text(doc.summary(html_partial=True))
    except Exception as exc:  # noqa: BLE001 - as above
        log.info("extract: readability failed: %s: %s", exc.__class__.__name__, exc)
        return "", ""


def extract_article(html: str, url: str | None = None, *, feed_title: str | None = None,
                    feed_text: str | None = None, feed_date: str | None = None) -> Extracted:
    """The article in ``html`` (decoded text). ``feed_*`` come from the feed item
    that linked to the page, when there is one: a fallback and a stub check."""
    doc = trafilatura_extract(html, url) if html else None
    title = (getattr(doc, "title", None) or "").strip()
    text = (getattr(doc, "text", None) or "").strip()
    date = getattr(doc, "date", None) or None
    author = getattr(doc, "author", None) or None
    method = "trafilatura"
    if word_count(text) < MIN_WORDS and html:
        r_title, r_text = readability_extract(html)
        if word_count(r_text) >= MIN_WORDS:
            text, method = r_text, "readability"
            title = title or r_title
    feed_text = (feed_text or "").strip()
    title = title or (feed_title or "").strip()
    date = feed_date or date
    if word_count(text) < MIN_WORDS:
        if word_count(feed_text) >= MIN_WORDS:
            return Extracted(title, feed_text, date, author, "feed", False,
                             "no article text found on the page; the feed's text is used")
        return Extracted(title, "", date, author, "none", False, "no article text found on the page")
    text = _drop_headline(text, title)
    fw = word_count(feed_text)
    if fw >= STUB_MIN_FEED_WORDS and word_count(text) < STUB_RATIO * fw:
        return Extracted(title, feed_text, date, author, "feed", True,
                         "the page looks like a paywall or consent page (far shorter than the feed's summary); "
                         "the feed's text is used")
    return Extracted(title, text, date, author, method)
