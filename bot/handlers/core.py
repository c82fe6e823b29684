"""Request -> Reply: the one place that turns a command into a result.

The console, the batch CLI and the Discord cogs all call these methods.
Every failure a user can cause comes back as an error Reply with a short,
clear message; nothing here raises for bad input.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time

import numpy as np

from ..app import Precis, Snapshot
from ..engines.extractive import SentenceInfo
from ..engines.topic import match_articles, topic_summary
from ..sources.filters import describe as describe_filters
from .reply import ArticleItem, Line, Reply, SupportItem

log = logging.getLogger(__name__)

MODES = ("extractive", "abstractive")
MAX_QUERY_CHARS = 200
HELP = """Commands:
  /summary article:<id or title words> [mode:extractive|abstractive] [length:1-10]
  /summary topic:<words> [mode:extractive|abstractive] [length:1-10]
  /summary url:<link> [mode:extractive|abstractive] [length:1-10]
  /ask question:<text> [mode:extractive|abstractive]
  /articles [query:<words>] [page:N]
  /feed add url:<RSS or Atom link> [include:<words, phrases>] [exclude:<words, phrases>]
  /feed edit feed:<id or link> [include:<words, phrases>] [exclude:<words, phrases>]  (- clears one)
  /feed remove feed:<id or link> | /feed list
  /about
  /help
  /quit"""


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


class Handlers:
    def __init__(self, app: Precis, sources=None) -> None:
        self.app = app
        self.sources = sources  # bot.sources.service.Sources: feeds and links (None: not available here)

    # ------------------------------------------------------------- helpers
    @staticmethod
    def _support(snap: Snapshot, info: SentenceInfo) -> SupportItem:
        art = snap.index.articles[info.article]
        return SupportItem(art.id, art.title, art.date, info.index, info.text, round(info.score, 4), art.url)

    def _check_common(self, mode: str, length: int | None) -> tuple[str, int] | Reply:
        mode = (mode or "extractive").strip().lower()
        if mode not in MODES:
            return Reply.error(f"Unknown mode {mode[:40]!r}: use extractive or abstractive.")
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

    def _generator(self):
        """The summary model, or a user-facing error Reply naming the model and the reason."""
        from models.registry import ModelUnavailable

        try:
            return self.app.generator.get()
        except ModelUnavailable as exc:
            return Reply.error(
                f"Abstractive mode is unavailable: the summary model {self.app.settings.summary_model!r} "
                f"could not be loaded ({exc}). Extractive mode still works: add mode:extractive."
            )

    # ------------------------------------------------------------ /summary
    def summary(
        self,
        article: str | None = None,
        topic: str | None = None,
        mode: str = "extractive",
        length: int | None = None,
        url: str | None = None,
        guild_id: int | None = None,
    ) -> Reply:
        t = time.perf_counter()
        article, topic = _clean(article), _clean(topic)
        if _clean(url):
            if article or topic:
                return Reply.error("Give one of article:, topic: or url:, not several.")
            return self._summary_url(_clean(url), mode, length, guild_id)
        if bool(article) == bool(topic):
            return Reply.error("Give exactly one of article:<id or title words> or topic:<words>.")
        if len(article or topic) > MAX_QUERY_CHARS:
            return Reply.error(f"That is too long: at most {MAX_QUERY_CHARS} characters.")
        checked = self._check_common(mode, length)
        if isinstance(checked, Reply):
            return checked
        mode, length = checked
        snap = self.app.snapshot
        visible = self.app.visible(snap, guild_id)
        if article:
            matches = match_articles(snap.index, article, limit=3, visible=visible)
            if not matches:  # INDEX_URL: an older article, in the index but no longer in this process's memory
                snap = self.app.archived(article, guild_id)
                matches = match_articles(snap.index, article, limit=1) if snap is not None else []
            if not matches:
                return Reply.error(f"No article matches {article[:80]!r}. Try /articles to list them.")
            reply = self._summarize(snap, matches[0].article, mode, length)
        else:
            reply = self._topic_summary(snap, topic, mode, length, visible)
        reply.meta["elapsed_ms"] = round((time.perf_counter() - t) * 1000, 1)
        return reply

    def summarize_row(self, row: int, mode: str = "extractive", length: int = 3) -> Reply:
        """Summary of the article at ``row`` of the current index (the batch CLI calls this)."""
        return self._summarize(self.app.snapshot, row, mode, length)

    def _summarize(self, snap: Snapshot, row: int, mode: str, length: int) -> Reply:
        art = snap.index.articles[row]
        meta = {"mode": mode, "article_id": art.id, "date": art.date, "length": length}
        if mode == "abstractive":
            gen = self._generator()
            if isinstance(gen, Reply):
                return gen
            from ..engines.abstractive import AbstractiveSummarizer

            with self.app.generate_lock:
                result = AbstractiveSummarizer(snap.index, snap.summarizer, gen,
                                               verifier=self.app.verifier())(row, length)
            return self._abstractive_reply(snap, art.title, result, meta)
        picked = snap.summarizer(row, length)
        notes = (f"The article has only {len(picked)} sentence(s).",) if len(picked) < length else ()
        return Reply(
            kind="summary",
            title=art.title,
            lines=tuple(Line(p.text, (self._support(snap, p),)) for p in picked),
            notes=notes,
            meta=meta,
        )

    def _abstractive_reply(self, snap: Snapshot, title: str, result, meta: dict) -> Reply:
        lines = tuple(Line(g.text, tuple(self._support(snap, s) for s in g.support)) for g in result.lines)
        meta = {**meta, "mode": "extractive (fallback)" if result.fell_back else "abstractive",
                "dropped": len(result.dropped)}
        return Reply(kind="summary", title=title, lines=lines, notes=tuple(result.notes), meta=meta)

    def _topic_summary(self, snap: Snapshot, topic: str, mode: str, length: int, visible=None) -> Reply:
        matches, picked = topic_summary(snap.index, snap.summarizer, topic, length, visible=visible)
        if not picked:
            return Reply.error(f"No articles match the topic {topic[:80]!r}.")
        titles = [snap.index.articles[m.article].title for m in matches]
        meta = {"mode": mode, "topic": topic, "articles": titles, "length": length}
        if mode == "abstractive":
            gen = self._generator()
            if isinstance(gen, Reply):
                return gen
            from ..engines.abstractive import AbstractiveSummarizer

            with self.app.generate_lock:
                result = AbstractiveSummarizer(snap.index, snap.summarizer, gen,
                                               verifier=self.app.verifier()).topic(picked, length)
            return self._abstractive_reply(snap, f"Topic: {topic}", result, meta)
        return Reply(
            kind="summary",
            title=f"Topic: {topic}",
            lines=tuple(Line(p.text, (self._support(snap, p),)) for p in picked),
            meta=meta,
        )

    def _summary_url(self, url: str, mode: str, length: int | None, guild_id: int | None) -> Reply:
        """Fetch a pasted page, add it to the guild's corpus, summarise it."""
        from ..sources.fetch import FetchError
        from ..sources.service import SourceError

        t = time.perf_counter()
        if self.sources is None:
            return Reply.error("Fetching links is not available here.")
        checked = self._check_common(mode, length)  # bad options: refused before any request goes out
        if isinstance(checked, Reply):
            return checked
        mode, length = checked
        try:
            item = self.sources.fetch_page_sync(url, guild_id)
        except (SourceError, FetchError) as exc:
            return Reply.error(f"I could not use that link: {exc}")
        snap = self.app.snapshot
        row = next((i for i, a in enumerate(snap.index.articles) if a.id == item.article.id), None)
        if row is not None and not self.app.scopes.can_see(snap.index.articles[row], guild_id):
            row = None  # not shared with this guild (should not happen: fetching it shares it)
        if row is None:
            return Reply.error("That page could not be added to the articles; try again shortly.")
        reply = self._summarize(snap, row, mode, length)
        if reply.ok:
            notes = ((item.note,) if item.note else ()) + reply.notes
            reply = dataclasses.replace(reply, notes=notes, meta={
                **reply.meta, "url": item.url, "elapsed_ms": round((time.perf_counter() - t) * 1000, 1)})
        return reply

    # --------------------------------------------------------------- /feed
    def _feeds(self):
        if self.sources is None:
            return Reply.error("Feeds are not available here (no state store).")
        return self.sources

    def feed_add(self, url: str | None, guild_id: int | None = None, user_id: int | None = None, *,
                 include: str | None = None, exclude: str | None = None) -> Reply:
        """Follow a feed; ``include`` / ``exclude``: comma-separated words or phrases (its filters)."""
        from ..sources.service import SourceError

        src = self._feeds()
        if isinstance(src, Reply):
            return src
        try:
            feed, created, result = src.add_feed(guild_id or 0, url or "", user_id, include=include, exclude=exclude)
        except SourceError as exc:
            return Reply.error(str(exc))
        if not created:
            text = f"{feed.label} is already followed here ({feed.items} item(s) so far)."
            if include is not None or exclude is not None:
                text += f"\nIts filters are unchanged: change them with /feed edit feed:{feed.id}."
            return Reply(kind="info", title="Feed already followed", text=text)
        shared = getattr(result, "shared", 0)  # items another server's copy of the feed had already fetched
        text = (f"Following {feed.label}\n{feed.url}\n{len(result.new) + shared} item(s) added to the articles now; "
                "digests announce only what arrives from here on.")
        if feed.filtered:
            text += f"\nFilter: {describe_filters(feed.include, feed.exclude)} ({result.filtered} item(s) filtered out)"
        if result.failed_items:
            text += f"\n{len(result.failed_items)} page(s) could not be fetched: {result.failed_items[0][1]}"
        return Reply(kind="info", title="Feed added", text=text, meta={"feed_id": feed.id})

    def feed_remove(self, feed: str | None, guild_id: int | None = None) -> Reply:
        from ..sources.service import SourceError

        src = self._feeds()
        if isinstance(src, Reply):
            return src
        try:
            gone = src.remove_feed(guild_id or 0, feed or "")
        except SourceError as exc:
            return Reply.error(str(exc))
        return Reply(kind="info", title="Feed removed",
                     text=f"No longer following {gone.label}. Its articles stay; its items will not come back.")

    def feed_edit(self, feed: str | None, guild_id: int | None = None, *, include: str | None = None,
                  exclude: str | None = None) -> Reply:
        """Change a feed's filters: an option not given stays, an empty one (or ``-``) clears that filter."""
        from ..sources.service import SourceError

        src = self._feeds()
        if isinstance(src, Reply):
            return src
        try:
            changed = src.edit_feed(guild_id or 0, feed or "", include=include, exclude=exclude)
        except SourceError as exc:
            return Reply.error(str(exc))
        what = describe_filters(changed.include, changed.exclude) or "none (every item is kept)"
        return Reply(kind="info", title="Feed filters changed",
                     text=f"{changed.label}\nFilter: {what}\nIt applies to items that arrive from now on.",
                     meta={"feed_id": changed.id, "include": list(changed.include), "exclude": list(changed.exclude)})

    def feed_list(self, guild_id: int | None = None) -> Reply:
        src = self._feeds()
        if isinstance(src, Reply):
            return src
        feeds = src.store.feeds(guild_id or 0)
        if not feeds:
            return Reply(kind="info", title="Feeds", text="No feeds yet. Add one with /feed add url:<link>.")
        return Reply(kind="info", title=f"Feeds ({len(feeds)})", text="\n".join(feed_lines(f) for f in feeds),
                     meta={"feeds": [f.id for f in feeds]})

    def feed_choices(self, guild_id: int | None, current: str) -> list[tuple[str, str]]:
        """(label, value) of a guild's feeds whose title or link holds what was typed."""
        cur = (current or "").lower().strip()
        feeds = self.sources.store.feeds(guild_id or 0) if self.sources is not None else []
        return [(f"{f.label} ({f.url})", str(f.id)) for f in feeds
                if not cur or cur in f.label.lower() or cur in f.url.lower()][:25]

    # ---------------------------------------------------------------- /ask
    def ask(self, question: str | None, mode: str = "extractive", k: int = 3, guild_id: int | None = None,
            asked_at: float | None = None) -> Reply:
        """``asked_at`` (epoch s): answer as the bot would have then - articles published later are hidden
        and "this week" counts back from it (the batch CLI's replay); None: now (the app's clock)."""
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
        gen = None
        if mode == "abstractive":
            gen = self._generator()
            if isinstance(gen, Reply):
                return gen
        snap = self.app.snapshot
        # INDEX_URL: the index in PostgreSQL (every process's articles); else, or while it is unavailable,
        # this process's corpus
        ans = support = None
        shared = self.app.shared_answerer(guild_id)
        if shared is not None:
            answerer, visible = shared
            try:
                ans = self._answer(answerer, gen, q, mode, k, visible, asked_at)
                found = self.app.shared_index.support_info([s.article for s in ans.support])
                if found is None or any(s.article not in found for s in ans.support):
                    raise LookupError("an answer's article is missing from the index")
                support = tuple(SupportItem(found[s.article][0], found[s.article][1], found[s.article][2],
                                            s.position, s.text, round(s.score, 4), found[s.article][3])
                                for s in ans.support)
            except self.app.shared_index.errors as exc:  # the index failed mid-answer: this process's corpus answers
                self.app.shared_index.failed(exc, answerer.retriever)
                ans = None
        if ans is None:
            answerer = self.app.answerer_for(snap)
            ans = self._answer(answerer, gen, q, mode, k, self.app.visible(snap, guild_id), asked_at)
            articles = snap.index.articles
            support = tuple(
                SupportItem(
                    articles[s.article].id, articles[s.article].title, articles[s.article].date,
                    s.position, s.text, round(s.score, 4), articles[s.article].url,
                )
                for s in ans.support
            )
        if ans.abstained:
            lines = (Line(ans.answer),)
        elif ans.short:  # the answer phrase first, cited to the sentence it is from, then support [1] and the rest
            source = next((s for s in support if ans.short in s.text), support[0])
            lines = (Line(ans.short, (source,)), Line(ans.lines[-1], support))
        else:
            lines = (Line(ans.answer, support),)
        return Reply(
            kind="answer",
            title=q,
            lines=lines,
            notes=(ans.note,) if ans.note else (),
            abstained=ans.abstained,
            meta={"mode": mode, "confidence": round(ans.confidence, 3), "short_answer": ans.short,
                  **({"asked_at": asked_at} if asked_at is not None else {}),
                  "elapsed_ms": round((time.perf_counter() - t) * 1000, 1)},
        )

    def _answer(self, answerer, gen, q: str, mode: str, k: int, visible, asked_at: float | None):
        if gen is None:
            return answerer.answer(q, mode=mode, k=k, visible=visible, now=self.app.clock(), asked_at=asked_at)
        answerer = copy.copy(answerer)
        answerer.generator = gen
        with self.app.generate_lock:
            return answerer.answer(q, mode=mode, k=k, visible=visible, now=self.app.clock(), asked_at=asked_at)

    # ----------------------------------------------------------- /articles
    def articles(self, query: str | None = None, page: int = 1, per_page: int = 10,
                 guild_id: int | None = None) -> Reply:
        query = _clean(query)
        if len(query) > MAX_QUERY_CHARS:
            return Reply.error(f"That query is too long: at most {MAX_QUERY_CHARS} characters.")
        per_page = max(1, min(int(per_page), 25))
        snap = self.app.snapshot  # one snapshot for the whole listing
        index = snap.index
        visible = self.app.visible(snap, guild_id)
        if query:
            rows = [m.article for m in match_articles(index, query, limit=len(index.articles), min_coverage=0.5,
                                                      visible=visible)]
        else:  # newest first: the last loaded is the newest we know of
            rows = self.app.visible_rows(snap, guild_id)[::-1]
        pages = max(1, -(-len(rows) // per_page))
        page = max(1, min(int(page), pages))
        chunk = rows[(page - 1) * per_page : page * per_page]
        items = tuple(
            ArticleItem(a.id, a.title, a.date, len(a.sentences), a.source)
            for a in (index.articles[r] for r in chunk)
        )
        if not items:
            msg = f"No articles match {query[:80]!r}." if query else "The corpus is empty."
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

    def about(self, guild_id: int | None = None) -> Reply:
        app = self.app
        snap = app.snapshot
        rows = app.visible_rows(snap, guild_id)  # the counts this guild may see
        sentences = int(np.diff(snap.index.offsets)[rows].sum()) if rows else 0
        gen = app.generator
        gen_state = "loaded" if gen.loaded else (f"unavailable: {gen.error}" if gen.error else "loads on first use")
        describe = getattr(gen.peek() if hasattr(gen, "peek") else None, "describe", None)
        if gen.loaded and callable(describe):
            gen_state = f"loaded: {describe()}"  # backend, CPU path; a server's reachability
        uptime = int(time.time() - app.started_at)
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("precis")
        except PackageNotFoundError:
            ver = "dev"
        text = (
            f"Version {ver}\n"
            f"Corpus: {len(rows)} articles, {sentences} sentences ({app.settings.corpus_path})"
            f"{' in memory: the newest, up to CACHE_ARTICLES' if getattr(app, 'shared_index', None) else ''}\n"
            f"Embedder: {app.embedder.name}\n"
            f"Summary model: {app.settings.summary_model} ({gen_state})\n"
            f"Checker: {app.checker_state()}\n"
            f"/ask reranker: {app.reranker_state()}\n"
            f"/ask short answer: {app.span_reader_state()}\n"
            f"Uptime: {uptime // 3600}h {uptime % 3600 // 60}m {uptime % 60}s"
        )
        store = getattr(self.sources, "store", None)  # the database and shards this process uses (issue 22)
        if store is not None and hasattr(type(store), "describe"):
            text += f"\nDatabase: {store.describe()}"
        if getattr(app, "shared_index", None) is not None:
            text += f"\n/ask index: {app.shared_index.state(guild_id, app.scopes)}"
        vectors = getattr(app, "vectors_state", None)
        if vectors is not None and app.shares_vectors:
            text += f"\nVectors: {vectors()}"
        s = app.settings
        if getattr(s, "shard_count", 1) > 1:
            text += f"\nShards: {','.join(map(str, s.shards)) if s.shards is not None else 'all'} of {s.shard_count}"
        return Reply(kind="about", title="About Precis", text=text)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) if t else "never"


def feed_lines(f) -> str:
    """One feed's state for /feed list: status, last success, last error, items."""
    if f.disabled:
        state = f"DISABLED after {f.failures} failures in a row (add it again to retry)"
    elif f.failures:
        state = f"failing ({f.failures} in a row), next try {_when(f.next_poll)}"
    elif f.last_success:
        state = f"ok ({f.last_status})"
    else:
        state = "not polled yet"
    lines = [f"[{f.id}] {f.label}", f"  {f.url}", f"  status: {state}",
             f"  last success: {_when(f.last_success)} · items: {f.items}"]
    if f.filtered:
        lines.append(f"  filter: {describe_filters(f.include, f.exclude)}")
    if f.last_error:
        lines.append(f"  last error ({_when(f.last_error_at)}): {f.last_error}")
    return "\n".join(lines)
