"""Digests: what is new since a subscription's last post, grouped by story, and
the tick that posts each due digest exactly once.

A developing story is told as what is new: when a story of this digest was
already in one of the subscription's recent posts (its articles then, still
loaded, are close to this story's: the grouping threshold), it becomes an
*update* holding only the sentences that add something to what was said before
(see :func:`novel_mask`), or none, when the new articles only repeat it.

Plain synchronous Python (no Discord). :func:`compose_digest` turns article
ids into a :class:`Digest` (stories, each with a short extractive summary
whose sentences are its support). :class:`DigestRunner` is the scheduler's
logic: ``tick(now, sender)`` walks the due subscriptions through the store's
claim -> send -> record protocol (see ``bot/store/db.py``); the sender is the
only part that talks to Discord, and tests pass a plain object instead.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..store import Post, Store, Subscription
from .extractive import _scale, select_mmr

log = logging.getLogger(__name__)

STORY_THRESHOLD = 0.62  # cosine between article vectors (title + lead) that makes them one story
LEAD_SENTENCES = 5
MAX_STORIES = 12  # stories summarised in one digest; the rest are listed by title
# A sentence is new to a story when its closest earlier sentence is below NOVEL_SIM (MiniLM cosine:
# paraphrases of one fact score ~0.8 and above, a related but different fact ~0.5-0.7), or below
# NEAR_DUP_SIM with a number or name the earlier sentences never had ("7 dead" -> "12 dead").
# Chosen from a hand check of realtimeqa pairs (benchmarks/story_updates.py).
NOVEL_SIM = 0.75
NEAR_DUP_SIM = 0.92
EARLIER_POSTS = 8  # a subscription's recent posts whose stories a new story may continue ...
EARLIER_WINDOW_S = 7 * 86400.0  # ... sent within this long before it
RETRY_BASE_S = 30.0
RETRY_MAX_S = 3600.0


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class DigestSentence:
    article_id: str
    title: str
    date: str | None
    index: int  # sentence position within its article
    text: str
    score: float
    url: str | None = None  # its article's link, shown with the sentence


@dataclass(frozen=True)
class StoryArticle:
    id: str
    title: str
    date: str | None
    url: str | None = None


@dataclass(frozen=True)
class Story:
    title: str
    articles: tuple[StoryArticle, ...]
    sentences: tuple[DigestSentence, ...]  # the short summary; each sentence is its own support
    update: bool = False  # an earlier post told this story: the sentences are only what is new since


@dataclass(frozen=True)
class EarlierStory:
    """A story as an earlier post of the subscription showed it (kept in the store with the post)."""

    article_ids: tuple[str, ...]
    sentences: tuple[str, ...]  # the sentences shown


@dataclass(frozen=True)
class Digest:
    stories: tuple[Story, ...] = ()
    more: tuple[StoryArticle, ...] = ()  # new articles past MAX_STORIES, listed by title only
    article_count: int = 0
    missing: int = 0  # covered ids no longer in the corpus (file removed before a restart)

    @property
    def empty(self) -> bool:
        return not self.stories and not self.more

    def shown(self) -> list[dict]:
        """What this digest told, per story (the store keeps it with the post): the next digests
        tell a continuing story by what is new since."""
        told = [{"articles": [a.id for a in st.articles], "sentences": [x.text for x in st.sentences]}
                for st in self.stories]
        return told + [{"articles": [a.id], "sentences": []} for a in self.more]


# ------------------------------------------------------------------ composing


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


def group_stories(vectors: np.ndarray, threshold: float = STORY_THRESHOLD) -> list[list[int]]:
    """Greedy single-pass clustering, in input order: each item joins the group
    whose centroid it is closest to (if at least ``threshold``), else starts one."""
    groups: list[list[int]] = []
    centroids: list[np.ndarray] = []
    for i, v in enumerate(vectors):
        best, best_sim = -1, threshold
        for g, c in enumerate(centroids):
            s = float(v @ c)
            if s >= best_sim:
                best, best_sim = g, s
        if best < 0:
            groups.append([i])
            centroids.append(v)
        else:
            groups[best].append(i)
            centroids[best] = _unit(vectors[groups[best]].mean(axis=0))
    return groups


def _article_vectors(index, rows: list[int]) -> np.ndarray:
    """One vector per article: its title and its lead, equally weighted."""
    vecs = []
    for r in rows:
        s = index.rows(r)
        lead = index.vectors(slice(s.start, min(s.stop, s.start + LEAD_SENTENCES)))
        body = lead.mean(axis=0) if len(lead) else np.zeros(index.dim, dtype=np.float32)
        vecs.append(_unit(index.title_emb[r].astype(np.float32)) + _unit(body))
    return _unit(np.asarray(vecs, dtype=np.float32).reshape(len(rows), index.dim))


_NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")
_WORD = re.compile(r"[A-Za-z][\w'\-]*")
_CALENDAR = set("monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
                "august september october november december".split())  # a new day is not a new fact


def _facts(text: str) -> set[str]:
    """The numbers and names (capitalised words past the sentence's first) a sentence holds."""
    names = {w.lower() for w in _WORD.findall(text)[1:] if w[0].isupper()} - _CALENDAR
    return {n.replace(",", "") for n in _NUMBER.findall(text)} | names


def _statement(text: str) -> bool:
    """A sentence that can tell a fact: six words or more, ending as a statement (not a dateline,
    a byline, "(CNN)" or a question)."""
    return len(_WORD.findall(text)) >= 6 and text.rstrip(" \"'\u201d\u2019)").endswith((".", "!"))


def novel_mask(E: np.ndarray, texts: list[str], known_E: np.ndarray, known_texts: list[str], *,
               novel_sim: float = NOVEL_SIM, near_dup_sim: float = NEAR_DUP_SIM) -> np.ndarray:
    """Which sentences (rows of ``E``, unit vectors) add something to the known ones (an update
    shows only those that are also statements, see :func:`_statement`): no known
    sentence says nearly the same (cosine < ``novel_sim``), or one is close but this sentence
    brings a number or name none of them had (cosine < ``near_dup_sim``)."""
    if len(E) == 0:
        return np.zeros(0, dtype=bool)
    if len(known_E) == 0:
        return np.ones(len(E), dtype=bool)
    best = (E @ known_E.T).max(axis=1)
    known = set().union(*(_facts(t) for t in known_texts)) if known_texts else set()
    new_fact = np.array([bool(_facts(t) - known) for t in texts])
    return (best < novel_sim) | ((best < near_dup_sim) & new_fact)


def compose_digest(app, article_ids: list[str] | tuple[str, ...], *, max_stories: int = MAX_STORIES,
                   threshold: float = STORY_THRESHOLD, guild_id: int | None = None,
                   earlier: list[EarlierStory] | tuple[EarlierStory, ...] = ()) -> Digest:
    """The digest of these articles: grouped by story, each story summarised. Only the ones
    still loaded and that ``guild_id`` may see count (the rest are ``missing``).
    ``earlier``: the stories the subscription's recent posts told; a story continuing one of them
    is an update (only what is new since)."""
    with app._lock:
        snap = app.snapshot
        visible = app.visible(snap, guild_id)
        if getattr(app, "shared_index", None) is not None:
            # INDEX_URL: articles that left this process's memory are read back from the index
            held = {a.id for a in snap.index.articles}
            wanted = list(article_ids) + [a for e in earlier for a in e.article_ids]
            if any(a not in held for a in wanted):
                snap = app.articles_snapshot(wanted, guild_id)
                visible = None  # only what guild_id may see was taken
        index, summarizer = snap.index, snap.summarizer
        row_of = {a.id: i for i, a in enumerate(index.articles)}
        rows = [row_of[a] for a in article_ids if a in row_of and (visible is None or visible[row_of[a]])]
        missing = len(article_ids) - len(rows)
        if not rows:
            return Digest(article_count=0, missing=missing)
        vectors = _article_vectors(index, rows)
        groups = group_stories(vectors, threshold)
        # the earlier stories still loaded, each by the centroid of its articles then
        taken = set(rows)
        past = []
        for e in earlier:
            erows = [row_of[a] for a in e.article_ids
                     if a in row_of and row_of[a] not in taken and (visible is None or visible[row_of[a]])]
            if erows:
                past.append((e, erows, _unit(_article_vectors(index, erows).mean(axis=0))))
        # Bigger stories first, then the order they arrived in.
        groups.sort(key=lambda g: (-len(g), g[0]))
        stories, more = [], []
        for g in groups:
            members = [rows[i] for i in g]
            if len(stories) >= max_stories:
                more.extend(_story_article(index.articles[r]) for r in members)
                continue
            centroid = _unit(vectors[g].mean(axis=0))
            told = [(e, erows) for e, erows, c in past if float(c @ centroid) >= threshold]
            stories.append(_story(index, summarizer, members, centroid, told))
    return Digest(tuple(stories), tuple(more), article_count=len(rows), missing=missing)


def _story_article(a) -> StoryArticle:
    return StoryArticle(a.id, a.title, a.date, a.url)


def _known(index, told: list[tuple[EarlierStory, list[int]]]) -> tuple[np.ndarray, list[str]]:
    """What earlier posts said of a story: the sentences they showed, and every sentence of
    their articles still loaded (a reader who followed the links read those too)."""
    texts = list(dict.fromkeys(t for e, _ in told for t in e.sentences))
    shown = index.embed(texts)[0] if texts else np.zeros((0, index.dim), np.float32)
    erows = sorted({r for _, rs in told for r in rs})
    sent_rows = np.concatenate([np.arange(index.rows(r).start, index.rows(r).stop) for r in erows]) if erows else []
    E = np.vstack([_unit(shown.astype(np.float32)), index.vectors(sent_rows)]) if len(sent_rows) else _unit(shown.astype(np.float32))
    return E.astype(np.float32), texts + [index.texts[int(g)] for g in sent_rows]


def _story(index, summarizer, members: list[int], centroid: np.ndarray,
           told: list[tuple[EarlierStory, list[int]]] = ()) -> Story:
    arts = [index.articles[r] for r in members]
    n = 2 if len(members) == 1 else 3
    update = bool(told)
    spans = [index.rows(r) for r in members]
    sent_rows = np.concatenate([np.arange(s.start, s.stop) for s in spans])
    if len(sent_rows) == 0:
        return Story(arts[0].title, tuple(_story_article(a) for a in arts), (), update)
    E = index.vectors(sent_rows)
    central = np.concatenate([_scale(summarizer.scores(r, n)[0]) for r in members])
    score = central + _scale(E @ centroid)
    if update:  # only what adds to what was told before
        known_E, known_texts = _known(index, told)
        texts = [index.texts[int(g)] for g in sent_rows]
        keep = np.flatnonzero(novel_mask(E, texts, known_E, known_texts) & np.array([_statement(t) for t in texts]))
        sent_rows, E, score = sent_rows[keep], E[keep], score[keep]
    chosen = select_mmr(score, E @ E.T, min(n, len(sent_rows)), summarizer.weights.redundancy) if len(sent_rows) else []
    rank = {r: k for k, r in enumerate(members)}
    picked = []
    for c in chosen:
        g = int(sent_rows[c])
        row = int(index.sent_article[g])
        a = index.articles[row]
        item = DigestSentence(a.id, a.title, a.date, int(index.sent_pos[g]), index.texts[g], round(float(score[c]), 4), a.url)
        picked.append((rank[row], item.index, item))
    picked.sort(key=lambda t: t[:2])
    # The story's headline: the article closest to what the group has in common.
    head = max(range(len(members)), key=lambda k: float(_unit(index.title_emb[members[k]].astype(np.float32)) @ centroid))
    return Story(arts[head].title, tuple(_story_article(a) for a in arts), tuple(t[2] for t in picked), update)


# ------------------------------------------------------------------ the tick


class DigestSender(Protocol):
    """What the tick needs from a chat platform (Discord: the adapter's sender)."""

    def send(self, sub: Subscription, post: Post, digest: Digest) -> int | None:
        """Post the digest to the subscription's channel; returns the message id.
        Raise :class:`PermanentSendError` for failures a retry soon will not fix."""

    def find(self, sub: Subscription, post: Post) -> int | None:
        """The id of a message an earlier attempt already posted for ``post``, or None."""


class PermanentSendError(RuntimeError):
    """The channel is gone or the bot may not post there: retry much later."""


@dataclass
class TickResult:
    posted: list[int] = field(default_factory=list)  # post ids sent now
    recovered: list[int] = field(default_factory=list)  # found already sent by an earlier attempt
    skipped: list[int] = field(default_factory=list)  # covered nothing still loaded
    failed: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.posted or self.recovered or self.skipped or self.failed)


def _backoff(attempts: int) -> float:
    return min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, attempts - 1))


class DigestRunner:
    """The scheduler's logic for one process: keep the store's article list in
    step with the corpus, and post every due digest exactly once."""

    def __init__(self, app, store: Store, *, empty_note: bool | None = None, owner: str | None = None) -> None:
        self.app = app
        self.store = store
        self.empty_note = app.settings.digest_empty_note if empty_note is None else empty_note
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._registered = 0
        self._sync_lock = threading.Lock()
        # A clean stop (SIGTERM): the tick in progress finishes the post it holds and claims no other;
        # ``current`` is that post, for handing its lease back if it outlasts the grace period.
        self.stopping = threading.Event()
        self.current: Post | None = None
        self._handed_back: int | None = None

    def sync_articles(self, now: float | None = None) -> int:
        """Give articles the bot has not seen before their ``seq`` (load order). Cheap when nothing changed."""
        with self.app._lock:
            articles = self.app.corpus.articles
        with self._sync_lock:
            # by load order, not by count: retention takes articles out of the corpus
            fresh = []
            for a in reversed(articles):  # the newest are last
                if a.order < self._registered:
                    break
                fresh.append(a)
            if not fresh:
                return 0
            fresh.reverse()
            new = self.store.register_articles(((a.id, a.title, a.guild_id) for a in fresh), now)
            self._registered = fresh[-1].order + 1
        if new:
            log.info("digest: %d new article(s) registered", new)
        return new

    def earlier(self, subscription_id: int, before_post_id: int | None, now: float) -> list[EarlierStory]:
        """The stories the subscription's recent posts told (a continuing story is told by what is new)."""
        try:
            told = self.store.told_before(subscription_id, before_post_id, since=now - EARLIER_WINDOW_S,
                                          limit=EARLIER_POSTS)
        except Exception:  # noqa: BLE001 - without them the digest is told in full, as before
            log.exception("digest: could not read what subscription %s posted before", subscription_id)
            return []
        return [EarlierStory(a, s) for a, s in told]

    def compose(self, post: Post, guild_id: int | None = None) -> Digest:
        if post.kind == "empty":
            return Digest()
        return compose_digest(self.app, post.article_ids, guild_id=guild_id,
                              earlier=self.earlier(post.subscription_id, post.id, post.created_at))

    def preview(self, sub: Subscription | None, newest: int = 5, *, guild_id: int | None = None) -> Digest:
        """What the channel's next digest would hold now (or the newest articles ``guild_id`` may see,
        with no subscription)."""
        self.sync_articles()
        earlier: list[EarlierStory] = []
        if sub is not None:
            guild_id = sub.guild_id
            ids = [aid for aid, _ in self.store.articles_after(sub.last_cursor, sub.guild_id)]
            earlier = self.earlier(sub.id, None, time.time())
        else:
            with self.app._lock:
                snap = self.app.snapshot
                arts = snap.index.articles
                ids = [arts[r].id for r in self.app.visible_rows(snap, guild_id)[-newest:]]
        return compose_digest(self.app, ids, guild_id=guild_id, earlier=earlier)

    def _shown(self, post: Post, sub: Subscription) -> list[dict] | None:
        """What an earlier attempt posted (composed again: the same articles, the same earlier posts)."""
        if post.kind == "empty":
            return None
        try:
            return self.compose(post, sub.guild_id).shown()
        except Exception:  # noqa: BLE001 - recording the post matters more
            log.exception("digest: could not tell what post %s showed", post.id)
            return None

    def tick(self, now: float | None, sender: DigestSender) -> TickResult:
        """Post every due digest once. Safe to call from several threads or processes at once."""
        now = time.time() if now is None else now
        result = TickResult()
        self.sync_articles(now)
        for sub in self.store.due(now):
            if self.stopping.is_set():
                log.info("digest: stopping; the other due digests are left to the next tick or process")
                break
            post = self.store.claim(sub.id, now, self.owner, empty_note=self.empty_note)
            if post is None:
                continue
            self.current = post
            try:
                self._post_one(sub, post, now, sender, result)
            finally:
                self.current = None
        return result

    def hand_back(self, reason: str = "stopped before the post finished") -> int | None:
        """Release the lease of the post being sent now, so that another process (or the next start)
        takes it over at once instead of after the lease: it finds the message if it went out. The id,
        or None when no post is in progress."""
        post = self.current
        if post is None:
            return None
        self._handed_back = post.id
        self.store.release(post.id, self.owner, time.time(), reason)
        log.warning("digest: post %s handed back (%s)", post.id, reason)
        return post.id

    def _release(self, post: Post, retry_at: float, error: str) -> None:
        """Release a post that failed, to be retried at ``retry_at``; a post handed back by the stop is
        left as it was handed back (due now, for whoever ticks next)."""
        if post.id == self._handed_back:
            log.info("digest: post %s was handed back already; not releasing it again", post.id)
            return
        self.store.release(post.id, self.owner, retry_at, error)

    def _post_one(self, sub, post: Post, now: float, sender: DigestSender, result: TickResult) -> None:
        """Compose, send and record one claimed post (every failure is recorded on it)."""
        ctx = f"subscription {sub.id} (guild {sub.guild_id}, channel {sub.channel_id}), post {post.id} [{post.digest_key}]"
        try:
            if post.recovering:
                found = sender.find(sub, post)
                if found is not None:
                    self.store.mark_sent(post.id, found, now, self._shown(post, sub))
                    log.info("digest: %s was already posted as message %s; recorded it", ctx, found)
                    result.recovered.append(post.id)
                    return
            digest = self.compose(post, sub.guild_id)
            if post.kind == "digest" and digest.empty:
                self.store.mark_sent(post.id, None, now, [])
                log.warning("digest: %s covers %d article(s) no longer loaded; nothing to post", ctx, len(post.article_ids))
                result.skipped.append(post.id)
                return
            if not self.store.holds_lease(post.id, self.owner, now):
                log.warning("digest: lost the lease on %s before sending; leaving it to its new owner", ctx)
                return
            message_id = sender.send(sub, post, digest)
        except PermanentSendError as exc:
            retry = _backoff(post.attempts) * 10
            log.warning("digest: cannot post %s: %s; retrying in %.0f s", ctx, exc, retry)
            self._release(post, now + retry, str(exc))
            result.failed.append(post.id)
            return
        except Exception as exc:  # noqa: BLE001 - one bad subscription must not stop the others
            retry = _backoff(post.attempts)
            log.exception("digest: posting %s failed (attempt %d); retrying in %.0f s", ctx, post.attempts, retry)
            self._release(post, now + retry, f"{exc.__class__.__name__}: {exc}")
            result.failed.append(post.id)
            return
        try:
            self.store.mark_sent(post.id, message_id, now, None if post.kind == "empty" else digest.shown())
        except Exception as exc:  # noqa: BLE001 - sent but not recorded: the next attempt finds the message
            log.exception("digest: %s was sent as message %s but not recorded; will recover", ctx, message_id)
            try:
                self._release(post, now, f"record failed: {exc!r}")
            except Exception:  # noqa: BLE001 - the lease runs out on its own
                log.exception("digest: could not release %s", ctx)
            result.failed.append(post.id)
            return
        log.info("digest: posted %s as message %s (%d article(s))", ctx, message_id, len(post.article_ids))
        result.posted.append(post.id)


def run_due_digests(app, store: Store, now: float | None, sender: DigestSender, *,
                    empty_note: bool | None = None) -> TickResult:
    """One tick with a throwaway runner (the bot keeps one :class:`DigestRunner` instead)."""
    return DigestRunner(app, store, empty_note=empty_note).tick(now, sender)
