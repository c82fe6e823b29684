"""Digests without Discord: grouping by story, and exactly-once posting across
restarts, crashes and concurrent ticks (a plain sender stands in for Discord)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bot.corpus.article import Article
from bot.engines.digest import Digest, DigestRunner, PermanentSendError, Story, StoryArticle, DigestSentence, compose_digest
from bot.render.discord import MAX_EMBEDS, MAX_TOTAL, embed_size, render_digest
from bot.store import Schedule, Store

QUAKE_A = Article.build(
    id="quake-a",
    title="Strong earthquake strikes off the coast of northern Chile",
    date="02 March 2025",
    text=(
        "A magnitude 7.1 earthquake struck off the coast of northern Chile on Sunday, the national seismology centre said. "
        "The quake was centred about 60 kilometres west of the port city of Iquique at a depth of 30 kilometres. "
        "Authorities briefly issued a tsunami warning for the coast and evacuated low-lying neighbourhoods. "
        "There were no immediate reports of deaths, but several buildings in Iquique suffered damage. "
        "Chile is one of the most seismically active countries in the world."
    ),
)
QUAKE_B = Article.build(
    id="quake-b",
    title="Chile lifts tsunami warning after powerful quake near Iquique",
    date="02 March 2025",
    text=(
        "Chilean authorities lifted a tsunami warning on Sunday evening after a powerful earthquake shook the north of the country. "
        "The magnitude 7.1 quake hit the sea off Iquique, sending residents running to higher ground. "
        "The interior minister said power had been cut to thousands of homes and that engineers were inspecting damaged roads. "
        "Hospitals in the region treated a dozen people for minor injuries. "
        "Aftershocks continued through the night."
    ),
)
RATES = Article.build(
    id="rates",
    title="European Central Bank holds interest rates steady",
    date="06 March 2025",
    text=(
        "The European Central Bank kept its main interest rate unchanged on Thursday, as expected by economists. "
        "The ECB president said inflation in the euro area was moving back toward the bank's two percent target. "
        "Markets had priced in a pause after a series of cuts last year. "
        "The euro rose slightly against the dollar after the announcement. "
        "The next policy meeting is scheduled for April."
    ),
)
LATER = Article.build(
    id="later",
    title="Volcano erupts in Iceland for the third time this year",
    date="09 March 2025",
    text=(
        "A volcano on Iceland's Reykjanes peninsula erupted on Sunday for the third time this year. "
        "Lava fountains rose from a fissure several kilometres long. "
        "The nearby town of Grindavik had been evacuated as a precaution. "
        "Flights at Keflavik airport were not affected."
    ),
)

LEASE = 60.0


class ProcessDied(BaseException):
    """Stands in for the process dying: nothing in the tick catches it."""


class ChannelSender:
    """A channel that remembers its messages; ``find`` looks them up by nonce like the Discord sender."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.finds = 0
        self.fail_before_send = 0
        self.fail_after_send = 0
        self.die_after_send = False
        self.permanent = False
        self.delay = 0.0
        self._lock = threading.Lock()

    def send(self, sub, post, digest):
        if self.permanent:
            raise PermanentSendError("Missing Access")
        if self.fail_before_send:
            self.fail_before_send -= 1
            raise ConnectionError("network down")
        time.sleep(self.delay)
        with self._lock:
            mid = 1000 + len(self.messages)
            self.messages.append({"id": mid, "channel": sub.channel_id, "post": post.id, "nonce": post.nonce,
                                  "articles": post.article_ids, "digest": digest})
        if self.fail_after_send:
            self.fail_after_send -= 1
            raise ConnectionResetError("connection reset after the message was created")
        if self.die_after_send:
            raise ProcessDied()
        return mid

    def find(self, sub, post):
        self.finds += 1
        return next((m["id"] for m in self.messages if m["channel"] == sub.channel_id and m["nonce"] == post.nonce), None)


@pytest.fixture
def world(fast_app_factory):
    """The sample app, a store on DATA_DIR, one channel subscribed every 5 minutes (nothing new yet)."""
    app = fast_app_factory()
    store = Store(app.settings.db_path, lease_seconds=LEASE)
    runner = DigestRunner(app, store, owner="first")
    runner.sync_articles()
    t0 = time.time()
    sub, _ = store.subscribe(1, 10, Schedule.every(5), 42, now=t0)
    yield app, store, runner, sub, t0
    store.close()


def restart(app, owner="second"):
    """A fresh store and runner on the same DATA_DIR (the corpus stays loaded)."""
    store = Store(app.settings.db_path, lease_seconds=LEASE)
    return store, DigestRunner(app, store, owner=owner)


# ------------------------------------------------------------------ composing


def test_articles_on_one_story_are_grouped_and_summarised_with_support(fast_app_factory):
    sample_app = fast_app_factory()
    sample_app.add_articles([QUAKE_A, RATES, QUAKE_B])
    d = compose_digest(sample_app, ["quake-a", "rates", "quake-b"])
    assert d.article_count == 3 and d.missing == 0
    quake, rates = d.stories
    assert {a.id for a in quake.articles} == {"quake-a", "quake-b"}
    assert [a.id for a in rates.articles] == ["rates"]
    assert len(quake.sentences) == 3 and len(rates.sentences) == 2
    assert {s.article_id for s in quake.sentences} == {"quake-a", "quake-b"}  # support from both
    for s in quake.sentences + rates.sentences:
        article = sample_app.corpus.get(s.article_id)
        assert s.text == article.sentences[s.index] and s.title == article.title and s.date == article.date


def test_unknown_ids_are_counted_not_fatal(fast_app_factory):
    sample_app = fast_app_factory()
    d = compose_digest(sample_app, ["gone"])
    assert d.empty and d.missing == 1


def test_a_big_digest_fits_one_message():
    long = "word " * 300
    stories = tuple(
        Story(f"Story {i} " + "t" * 300, tuple(StoryArticle(f"a{i}{j}", f"Title {j}", "01 Jan 2025") for j in range(3)),
              tuple(DigestSentence(f"a{i}0", f"Title {k}", "01 Jan 2025", k, long + ".", 1.0) for k in range(3)))
        for i in range(12)
    )
    more = tuple(StoryArticle(f"m{i}", f"More {i} " + "x" * 150, None) for i in range(200))
    msg = render_digest(Digest(stories, more, article_count=236), ref="Digest #7")
    assert len(msg.embeds) <= MAX_EMBEDS and msg.embed_chars <= MAX_TOTAL and len(msg.content) <= 2000
    assert msg.embeds[-1]["footer"]["text"].startswith("Digest #7 · 236 new article(s)")
    assert "more: see /articles" in msg.embeds[-1]["description"]
    assert all(embed_size(e) <= MAX_TOTAL for e in msg.embeds)


# ------------------------------------------------------------------ exactly once


def test_a_due_digest_posts_once_and_not_again_after_a_restart(world):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    assert not runner.tick(t0 + 300, sender)  # due, nothing new: no post
    app.add_articles([QUAKE_A, RATES, QUAKE_B])
    assert not runner.tick(t0 + 301, sender)  # not due again until t0 + 600
    result = runner.tick(t0 + 600, sender)
    assert len(result.posted) == 1 and len(sender.messages) == 1
    assert set(sender.messages[0]["articles"]) == {"quake-a", "rates", "quake-b"}
    assert len(sender.messages[0]["digest"].stories) == 2
    assert not runner.tick(t0 + 601, sender)
    assert not runner.tick(t0 + 900, sender)  # due again, nothing new

    store2, runner2 = restart(app)
    assert not runner2.tick(t0 + 1200, sender)
    assert len(sender.messages) == 1 and sender.finds == 0
    [post] = store2.posts(sub.id)
    assert post.state == "sent" and post.message_id == 1000
    store2.close()


def test_nothing_new_means_no_post_unless_the_note_is_configured(world):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    assert not runner.tick(t0 + 300, sender)
    noting = DigestRunner(app, store, empty_note=True, owner="noting")
    result = noting.tick(t0 + 600, sender)
    assert len(result.posted) == 1 and sender.messages[0]["digest"].empty
    assert not noting.tick(t0 + 601, sender)  # one note per slot


def test_crash_between_send_and_record_neither_duplicates_nor_skips(world):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    app.add_articles([QUAKE_A])
    sender.die_after_send = True
    with pytest.raises(ProcessDied):
        runner.tick(t0 + 300, sender)
    [post] = store.posts(sub.id)
    assert post.state == "pending" and len(sender.messages) == 1
    sender.die_after_send = False
    app.add_articles([RATES])  # arrives while the bot is down

    store2, runner2 = restart(app)
    assert not runner2.tick(t0 + 301, sender)  # the dead process's lease has not run out yet
    result = runner2.tick(t0 + 300 + LEASE + 1, sender)
    assert result.recovered == [post.id] and result.posted == []  # found the message, did not resend
    assert len(sender.messages) == 1 and store2.post(post.id).message_id == 1000
    # no gap: the article that arrived meanwhile is in the next digest, and only it
    result = runner2.tick(t0 + 900, sender)
    assert len(result.posted) == 1 and sender.messages[1]["articles"] == ("rates",)
    store2.close()


def test_send_failure_before_delivery_is_retried_once_delivered(world):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    app.add_articles([QUAKE_A])
    sender.fail_before_send = 1
    result = runner.tick(t0 + 300, sender)
    assert result.failed and not sender.messages
    assert not runner.tick(t0 + 310, sender)  # backing off (30 s)
    result = runner.tick(t0 + 331, sender)
    assert len(result.posted) == 1 and len(sender.messages) == 1 and sender.finds == 1


def test_failure_after_delivery_is_recovered_not_resent(world):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    app.add_articles([QUAKE_A])
    sender.fail_after_send = 1
    assert runner.tick(t0 + 300, sender).failed
    result = runner.tick(t0 + 331, sender)
    assert result.recovered and len(sender.messages) == 1


def test_record_failure_after_send_is_recovered(world, monkeypatch):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    app.add_articles([QUAKE_A])
    real = store.mark_sent
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OSError("disk I/O error")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "mark_sent", flaky)
    assert runner.tick(t0 + 300, sender).failed
    result = runner.tick(t0 + 301, sender)  # released at once: recover on the next tick
    assert result.recovered and len(sender.messages) == 1
    assert store.subscription(sub.id).last_cursor == store.max_cursor()


def test_two_ticks_at_once_post_one_digest(world):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    sender.delay = 0.3
    app.add_articles([QUAKE_A, RATES])
    stores = [Store(app.settings.db_path, lease_seconds=LEASE) for _ in range(3)]
    runners = [DigestRunner(app, s, owner=f"p{i}") for i, s in enumerate(stores)]
    barrier = threading.Barrier(len(runners))
    results = []

    def go(r):
        barrier.wait()
        results.append(r.tick(t0 + 300, sender))

    threads = [threading.Thread(target=go, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.posted) for r in results) == 1 and len(sender.messages) == 1
    for s in stores:
        s.close()


def test_a_channel_we_cannot_post_in_keeps_its_articles_for_later(world):
    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    app.add_articles([QUAKE_A])
    sender.permanent = True
    assert runner.tick(t0 + 300, sender).failed
    assert store.subscription(sub.id).last_cursor < store.max_cursor()
    assert not runner.tick(t0 + 599, sender)  # long back-off (300 s)
    sender.permanent = False
    assert runner.tick(t0 + 601, sender).posted


def test_seq_order_survives_a_restart_with_a_different_load_order(fast_app_factory, tmp_path):
    app_factory = fast_app_factory
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "b.txt").write_text("Second title\nThe second article has a body sentence. It has two.\n")
    app = app_factory(corpus_path=corpus)
    store = Store(app.settings.db_path)
    DigestRunner(app, store).sync_articles()
    sub, _ = store.subscribe(1, 10, Schedule.every(5), None, now=time.time())
    (corpus / "a.txt").write_text("First title\nAn article that sorts first but arrived later. Indeed.\n")
    app2 = app_factory(corpus_path=corpus)  # a restart: a.txt now loads before b.txt
    runner = DigestRunner(app2, store)
    runner.sync_articles()
    assert [aid for aid, _ in store.articles_after(sub.last_cursor)] == [app2.corpus.articles[0].id]
    store.close()


def test_run_due_digests_is_the_plain_tick(world):
    from bot.engines.digest import run_due_digests

    app, store, runner, sub, t0 = world
    sender = ChannelSender()
    app.add_articles([LATER])
    assert len(run_due_digests(app, store, t0 + 300, sender).posted) == 1
    assert not run_due_digests(app, store, t0 + 300, sender)
