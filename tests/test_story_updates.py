"""A developing story told as what is new: a digest story that an earlier post of the same
subscription already told shows only the sentences that add to it, marked as an update, or one
"no new facts" line (engine, runner + store, rendering; the fake Discord in test_discord_digest)."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np

from bot.corpus.article import Article
from bot.engines.digest import (Digest, DigestRunner, DigestSentence, EarlierStory, Story, StoryArticle,
                                compose_digest, novel_mask)
from bot.render.discord import MAX_EMBEDS, MAX_TOTAL, embed_size, render_digest
from bot.store import Schedule, Store
from bot.store import db as store_db
from tests.test_digest import QUAKE_A, RATES, ChannelSender

NEW_FACT = "Rescue workers pulled three bodies from a collapsed hotel in Iquique on Monday, the regional governor said."
QUAKE_UPDATE = Article.build(
    id="quake-update",
    title="Bodies found in Iquique hotel after Chile earthquake",
    date="03 March 2025",
    url="https://news.example/chile-quake-hotel",
    text=(
        "The magnitude 7.1 earthquake struck off the coast of northern Chile on Sunday. "
        f"{NEW_FACT} "
        "The quake was centred about 60 kilometres west of Iquique."
    ),
)
QUAKE_REPEAT = Article.build(
    id="quake-repeat",
    title="Powerful earthquake hits off northern Chile",
    date="03 March 2025",
    text=(
        "A magnitude 7.1 earthquake struck northern Chile on Sunday, the seismology centre said. "
        "The quake was centred 60 kilometres west of Iquique at a depth of 30 kilometres. "
        "Authorities briefly issued a tsunami warning and evacuated low-lying areas."
    ),
)


def _told(app, ids):
    """What a first digest of ``ids`` showed, as the next one sees it."""
    return [EarlierStory(tuple(st["articles"]), tuple(st["sentences"])) for st in compose_digest(app, ids).shown()]


def test_a_continuing_story_shows_only_the_new_sentence_with_its_support(fast_app_factory):
    app = fast_app_factory()
    app.add_articles([QUAKE_A, RATES, QUAKE_UPDATE])
    d = compose_digest(app, ["quake-update"], earlier=_told(app, ["quake-a", "rates"]))
    [story] = d.stories
    assert story.update and [s.text for s in story.sentences] == [NEW_FACT]
    [s] = story.sentences
    assert s.article_id == "quake-update" and QUAKE_UPDATE.sentences[s.index] == s.text
    # without the earlier post, it is a story like any other
    [fresh] = compose_digest(app, ["quake-update"]).stories
    assert not fresh.update and len(fresh.sentences) == 2


def test_a_continuing_story_with_nothing_new_has_no_sentences(fast_app_factory):
    app = fast_app_factory()
    app.add_articles([QUAKE_A, QUAKE_REPEAT])
    [story] = compose_digest(app, ["quake-repeat"], earlier=_told(app, ["quake-a"])).stories
    assert story.update and story.sentences == ()


def test_another_story_is_not_an_update(fast_app_factory):
    app = fast_app_factory()
    app.add_articles([QUAKE_A, RATES])
    [story] = compose_digest(app, ["rates"], earlier=_told(app, ["quake-a"])).stories
    assert not story.update and len(story.sentences) == 2


def test_earlier_articles_no_longer_loaded_fall_back_to_a_full_story(fast_app_factory):
    app = fast_app_factory()
    app.add_articles([QUAKE_UPDATE])
    [story] = compose_digest(app, ["quake-update"], earlier=[EarlierStory(("gone",), ("Old news.",))]).stories
    assert not story.update and len(story.sentences) == 2


def test_novel_mask_numbers_and_names_make_a_near_paraphrase_new():
    v = np.array([[1.0, 0.0]], np.float32)
    near = np.array([[0.85, np.sqrt(1 - 0.85**2)]], np.float32)
    assert not novel_mask(near, ["The toll rose to 7 in Iquique."], v, ["The toll rose to 7 in Iquique."])[0]
    assert novel_mask(near, ["The toll rose to 12 in Iquique."], v, ["The toll rose to 7 in Iquique."])[0]
    assert novel_mask(near, ["The toll rose to 7 in Arica."], v, ["The toll rose to 7 in Iquique."])[0]
    assert not novel_mask(v, ["The toll rose to 12 in Arica."], v, ["The toll rose to 7 in Iquique."])[0]  # same sentence
    assert novel_mask(near, ["x"], np.zeros((0, 2), np.float32), []).all()


def test_the_runner_records_what_it_showed_and_tells_the_next_post_by_what_is_new(fast_app_factory):
    app = fast_app_factory()
    store = Store(app.settings.db_path, lease_seconds=60)
    runner = DigestRunner(app, store, owner="t")
    runner.sync_articles()
    t0 = time.time()
    sub, _ = store.subscribe(1, 10, Schedule.every(5), 42, now=t0)
    sender = ChannelSender()
    app.add_articles([QUAKE_A, RATES])
    assert runner.tick(t0 + 300, sender).posted
    first = sender.messages[0]["digest"]
    assert not any(st.update for st in first.stories)
    quake = next(st for st in first.stories if st.articles[0].id == "quake-a")
    assert (("quake-a",), tuple(s.text for s in quake.sentences)) in store.told_before(sub.id)

    app.add_articles([QUAKE_UPDATE])
    assert runner.tick(t0 + 600, sender).posted
    [story] = sender.messages[1]["digest"].stories
    assert story.update and [s.text for s in story.sentences] == [NEW_FACT]

    app.add_articles([QUAKE_REPEAT])
    assert runner.tick(t0 + 900, sender).posted
    [story] = sender.messages[2]["digest"].stories
    assert story.update and story.sentences == ()
    msg = render_digest(sender.messages[2]["digest"], ref="Digest #3")
    assert [e["title"] for e in msg.embeds] == ["Earlier stories"]
    assert msg.embeds[0]["description"] == f"**Update:** {QUAKE_REPEAT.title} — No new facts in 1 more article"
    store.close()


def test_a_v3_database_opens_keeps_its_posts_and_records_what_posts_show(tmp_path):
    path = tmp_path / "data" / "precis.sqlite3"
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path, isolation_level=None)
    for script in (store_db._SCHEMA_V1, store_db._SCHEMA_V2, store_db._SCHEMA_V3):
        for stmt in script.split(";"):
            if stmt.strip():
                con.execute(stmt)
    con.execute("INSERT INTO subscriptions(guild_id, channel_id, schedule, created_by, created_at, next_due)"
                " VALUES (7, 70, ?, 1, 1, 2)", (Schedule.every(5).to_text(),))
    con.execute("INSERT INTO posts(subscription_id, digest_key, kind, from_cursor, to_cursor, article_ids, state, nonce,"
                " created_at, sent_at) VALUES (1, '1-2', 'digest', 0, 2, ?, 'sent', 'n', 1, 1)", (json.dumps(["a", "b"]),))
    con.execute("PRAGMA user_version = 3")
    con.close()

    store = Store(path)
    assert store.schema_version == store_db.SCHEMA_VERSION == 4
    [post] = store.posts(1)
    assert post.article_ids == ("a", "b") and post.state == "sent"
    assert store.told_before(1) == []  # posted before v4: tells nothing
    store.register_articles([("c", "C")])
    claimed = store.claim(1, time.time() + 10, "me")
    shown = [{"articles": ["c"], "sentences": ["C happened."]}]
    assert store.mark_sent(claimed.id, 5, time.time(), shown)
    assert store.told_before(1) == [(("c",), ("C happened.",))]
    assert store.told_before(1, before_post_id=claimed.id) == []
    store.close()


def test_a_big_digest_with_updates_and_unchanged_stories_fits_one_message():
    long = "word " * 300
    arts = lambda i: tuple(StoryArticle(f"a{i}{j}", f"Title {j}", "01 Jan 2025") for j in range(2))  # noqa: E731
    updates = tuple(Story(f"Story {i} " + "t" * 300, arts(i),
                          tuple(DigestSentence(f"a{i}0", "Title 0", "01 Jan 2025", k, long + ".", 1.0) for k in range(3)),
                          update=True) for i in range(12))
    unchanged = tuple(Story(f"Quiet {i} *bold*", arts(100 + i), (), update=True) for i in range(30))
    more = tuple(StoryArticle(f"m{i}", f"More {i} " + "x" * 150, None) for i in range(50))
    msg = render_digest(Digest(updates + unchanged, more, article_count=134), ref="Digest #9")
    assert len(msg.embeds) <= MAX_EMBEDS and msg.embed_chars <= MAX_TOTAL
    assert all(embed_size(e) <= MAX_TOTAL for e in msg.embeds)
    titles = [e["title"] for e in msg.embeds]
    assert titles[0].startswith("Update: Story 0") and "Earlier stories" in titles and titles[-1] == "Also new"
    quiet = next(e for e in msg.embeds if e["title"] == "Earlier stories")["description"]
    assert quiet.startswith("**Update:** Quiet 0 \\*bold\\* — No new facts in 2 more articles")
    assert msg.embeds[-1]["footer"]["text"].startswith("Digest #9")
