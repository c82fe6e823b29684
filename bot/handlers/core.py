"""Request -> Reply: the one place that turns a command into a result.

The console, the batch CLI and the Discord cogs all call these methods.
Every failure a user can cause comes back as an error Reply with a short,
clear message; nothing here raises for bad input.
"""

from __future__ import annotations

import logging
import time

from ..app import Precis
from ..engines.extractive import SentenceInfo
from ..engines.topic import match_articles, topic_summary
from .reply import ArticleItem, Line, Reply, SupportItem

log = logging.getLogger(__name__)

MODES = ("extractive", "abstractive")
MAX_QUERY_CHARS = 200
HELP = """Commands:
  /summary article:<id or title words> [mode:extractive|abstractive] [length:1-10]
  /summary topic:<words> [mode:extractive|abstractive] [length:1-10]
  /ask question:<text> [mode:extractive|abstractive]
  /articles [query:<words>] [page:N]
  /about
  /help
  /quit"""


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


class Handlers:
    def __init__(self, app: Precis) -> None:
        self.app = app

    # ------------------------------------------------------------- helpers
    def _support(self, info: SentenceInfo) -> SupportItem:
        art = self.app.index.articles[info.article]
        return SupportItem(art.id, art.title, art.date, info.index, info.text, round(info.score, 4))

    def _check_common(self, mode: str, length: int | None) -> tuple[str, int] | Reply:
        mode = (mode or "extractive").strip().lower()
        if mode not in MODES:
            return Reply.error(f"Unknown mode {mode!r}: use extractive or abstractive.")
        if length is None:
            length = self.app.settings.summary_length
        try:
            length = int(length)
        except (TypeError, ValueError):
            return Reply.error("length must be a whole number from 1 to 10.")
        if not 1 <= length <= 10:
            return Reply.error(f"length must be from 1 to 10 (got {length}).")
        if not len(self.app.corpus):
            return Reply.error(
                "The corpus is empty: no articles were loaded. Check CORPUS_PATH "
                f"({self.app.settings.corpus_path}) and the log for skipped files."
            )
        return mode, length

    # ------------------------------------------------------------ /summary
    def summary(
        self,
        article: str | None = None,
        topic: str | None = None,
        mode: str = "extractive",
        length: int | None = None,
    ) -> Reply:
        t = time.perf_counter()
        article, topic = _clean(article), _clean(topic)
        if bool(article) == bool(topic):
            return Reply.error("Give exactly one of article:<id or title words> or topic:<words>.")
        if len(article or topic) > MAX_QUERY_CHARS:
            return Reply.error(f"That is too long: at most {MAX_QUERY_CHARS} characters.")
        checked = self._check_common(mode, length)
        if isinstance(checked, Reply):
            return checked
        mode, length = checked
        with self.app._lock:
            if article:
                reply = self._article_summary(article, mode, length)
            else:
                reply = self._topic_summary(topic, mode, length)
        reply.meta["elapsed_ms"] = round((time.perf_counter() - t) * 1000, 1)
        return reply

    def _article_summary(self, query: str, mode: str, length: int) -> Reply:
        matches = match_articles(self.app.index, query, limit=3)
        if not matches:
            return Reply.error(f"No article matches {query!r}. Try /articles to list them.")
        return self.summarize_row(matches[0].article, mode, length)

    def summarize_row(self, row: int, mode: str = "extractive", length: int = 3) -> Reply:
        """Summary of the article at ``row`` of the index (the batch CLI calls this directly)."""
        art = self.app.index.articles[row]
        if mode == "abstractive":
            return self._abstractive(row, length)
        picked = self.app.summarizer(row, length)
        lines = tuple(Line(p.text, (self._support(p),)) for p in picked)
        notes = ()
        if len(picked) < length:
            notes = (f"The article has only {len(picked)} sentence(s).",)
        return Reply(
            kind="summary",
            title=art.title,
            lines=lines,
            notes=notes,
            meta={"mode": "extractive", "article_id": art.id, "date": art.date, "length": length},
        )

    def _topic_summary(self, topic: str, mode: str, length: int) -> Reply:
        matches, picked = topic_summary(self.app.index, self.app.summarizer, topic, length)
        if not picked:
            return Reply.error(f"No articles match the topic {topic!r}.")
        notes: tuple[str, ...] = ()
        if mode == "abstractive":
            notes = ("Topic summaries are extractive: the sentences below come straight from the articles.",)
        titles = [self.app.index.articles[m.article].title for m in matches]
        return Reply(
            kind="summary",
            title=f"Topic: {topic}",
            lines=tuple(Line(p.text, (self._support(p),)) for p in picked),
            notes=notes,
            meta={"mode": "extractive", "topic": topic, "articles": titles, "length": length},
        )

    def _abstractive(self, row: int, length: int) -> Reply:
        return Reply.error("Abstractive summaries are not available in this build yet.")

    # ---------------------------------------------------------------- /ask
    def ask(self, question: str | None, mode: str = "extractive", k: int = 3) -> Reply:
        from ..engines.answerer import QuestionError, validate_question

        t = time.perf_counter()
        try:
            q = validate_question(question or "", self.app.settings.max_question_chars)
        except QuestionError as exc:
            return Reply.error(str(exc))
        checked = self._check_common(mode, None)
        if isinstance(checked, Reply):
            return checked
        mode = checked[0]
        k = max(1, min(int(k), 10))
        with self.app._lock:
            ans = self.app.answerer.answer(q, mode=mode, k=k)
            support = tuple(
                SupportItem(
                    self.app.index.articles[s.article].id,
                    self.app.index.articles[s.article].title,
                    self.app.index.articles[s.article].date,
                    s.position,
                    s.text,
                    round(s.score, 4),
                )
                for s in ans.support
            )
        notes = (ans.note,) if ans.note else ()
        return Reply(
            kind="answer",
            title=q,
            lines=(Line(ans.answer, () if ans.abstained else support),),
            notes=notes,
            abstained=ans.abstained,
            meta={"mode": mode, "confidence": round(ans.confidence, 3), "elapsed_ms": round((time.perf_counter() - t) * 1000, 1)},
        )

    # ----------------------------------------------------------- /articles
    def articles(self, query: str | None = None, page: int = 1, per_page: int = 10) -> Reply:
        query = _clean(query)
        if len(query) > MAX_QUERY_CHARS:
            return Reply.error(f"That query is too long: at most {MAX_QUERY_CHARS} characters.")
        per_page = max(1, min(int(per_page), 25))
        with self.app._lock:
            index = self.app.index
            if query:
                rows = [m.article for m in match_articles(index, query, limit=len(index.articles), min_coverage=0.5)]
            else:  # newest first: the last loaded is the newest we know of
                rows = list(range(len(index.articles)))[::-1]
            pages = max(1, -(-len(rows) // per_page))
            page = max(1, min(int(page), pages))
            chunk = rows[(page - 1) * per_page : page * per_page]
            items = tuple(
                ArticleItem(a.id, a.title, a.date, len(a.sentences), a.source)
                for a in (index.articles[r] for r in chunk)
            )
        if not items:
            msg = f"No articles match {query!r}." if query else "The corpus is empty."
            return Reply(kind="articles", title="Articles", text=msg, meta={"page": 1, "pages": 1, "total": 0})
        return Reply(
            kind="articles",
            title=f"Articles matching {query!r}" if query else "Articles (newest first)",
            articles=items,
            meta={"page": page, "pages": pages, "total": len(rows), "query": query},
        )

    # --------------------------------------------------------- /help /about
    def help(self) -> Reply:
        return Reply(kind="help", title="Precis", text=HELP)

    def about(self) -> Reply:
        app = self.app
        gen = app.generator
        gen_state = "loaded" if gen.loaded else (f"unavailable: {gen.error}" if gen.error else "loads on first use")
        uptime = int(time.time() - app.started_at)
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("precis")
        except PackageNotFoundError:
            ver = "dev"
        text = (
            f"Version {ver}\n"
            f"Corpus: {len(app.corpus)} articles, {len(app.index)} sentences ({app.settings.corpus_path})\n"
            f"Embedder: {app.embedder.name}\n"
            f"Summary model: {app.settings.summary_model} ({gen_state})\n"
            f"Uptime: {uptime // 3600}h {uptime % 3600 // 60}m {uptime % 60}s"
        )
        return Reply(kind="about", title="About Precis", text=text)
