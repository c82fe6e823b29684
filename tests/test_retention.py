"""Retention: MAX_ARTICLE_AGE_DAYS retires feed and link articles by arrival, MAX_ARTICLES caps the
corpus (oldest arrivals first), CORPUS_PATH articles never age out, and a digest never shows an
article it can no longer show (through the fake Discord)."""

from __future__ import annotations

import json
import time
import pytest

from bot.corpus.article import Article
from bot.handlers.core import Handlers
from tests.fakes import discord_payloads as P
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.web import story
from tests.test_discord_bot import start
from tests.test_discord_digest import digest_messages

DAY = 86400.0


def fetched(n: int, arrived: float, guild: int | None = P.DEFAULT_GUILD_ID) -> Article:
    title, paras = story(n)
    return Article.build(id=f"story-{n}", title=title, text="\n".join(paras), guild_id=guild, arrived=arrived,
                         source=f"feed http://example.invalid/{n}")


async def test_retention_removes_old_articles_from_answers_and_articles_without_breaking_a_digest(fast_app_factory):
    app = fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0)
    now = time.time()
    old, fresh = fetched(0, now - 29.5 * DAY), fetched(2, now - 1 * DAY)  # Lisbon tram line, Nairobi hospital wing
    async with FakeDiscord() as fake, start(fake, app) as bot:
        from bot.store import Schedule

        sub, _ = bot.store.subscribe(fake.guild_id, fake.channel_id, Schedule.every(5), 1)
        app.add_articles([old, fresh])
        bot.digests.sync_articles()  # both are registered: the next digest covers them
        q = [{"name": "question", "type": P.OPT_STRING, "value": "How much did the new tram line in Lisbon cost?"}]
        rec = await fake.send_command("ask", q)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert old.title in json.dumps(msg)

        gone = app.retire(now + 1 * DAY)  # a day later the Lisbon story is past 30 days
        assert [a.id for a in gone] == [old.id] and old.id not in app.corpus and app.article_row(old.id) is None
        assert fresh.id in app.corpus and len([a for a in app.corpus if a.guild_id is None]) > 0

        rec = await fake.send_command("ask", q)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert old.title not in json.dumps(msg)
        rec = await fake.send_command("articles", [])
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert old.title not in json.dumps(msg) and fresh.title in json.dumps(msg)

        bot.store.set_next_due(sub.id, time.time() - 1)
        result = await bot.digest_tick()
        assert len(result.posted) == 1
        digest = json.dumps(digest_messages(fake))
        assert fresh.title in digest and old.title not in digest and "Lisbon" not in digest

        # a digest whose every article retired posts nothing (and does not fail)
        app.add_articles([fetched(3, now - 29.9 * DAY)])
        bot.digests.sync_articles()
        app.retire(now + 1 * DAY)
        bot.store.set_next_due(sub.id, time.time() - 1)
        before = len(digest_messages(fake))
        result = await bot.digest_tick()
        assert result.skipped and not result.posted and not result.failed
        assert len(digest_messages(fake)) == before


def test_corpus_path_articles_never_age_out(fast_app_factory):
    app = fast_app_factory(max_article_age_days=1)
    files = len(app.corpus)
    now = time.time()
    app.add_articles([fetched(n, now - (5 - n) * 3600, guild=None) for n in range(4)])
    assert len(app.corpus) == files + 4
    gone = app.retire(now + 10 * 365 * DAY)  # ten years on: every fetched article went, no file article
    assert sorted(a.id for a in gone) == [f"story-{n}" for n in range(4)] and len(app.corpus) == files


def test_max_articles_retires_the_oldest_arrivals_first(fast_app_factory):
    files = len(fast_app_factory().corpus)
    app = fast_app_factory(max_articles=files + 3, max_article_age_days=0)  # 0: no age limit
    app.add_articles([fetched(n, 1000.0 + n) for n in range(6)])  # arrived long before the corpus files
    assert len(app.corpus) == files + 3
    assert {a.id for a in app.corpus if a.guild_id} == {"story-3", "story-4", "story-5"}


def test_a_capped_corpus_path_article_does_not_come_back_with_a_reload(fast_app_factory):
    files = len(fast_app_factory().corpus)
    app = fast_app_factory(max_articles=files - 1)
    assert len(app.corpus) == files - 1 and len(app.index.articles) == files - 1
    report = app.load(progress=False)
    assert report.added == 0 and len(app.corpus) == files - 1


def test_fetched_articles_past_their_age_are_not_loaded_again_after_a_restart(fast_app_factory):
    app = fast_app_factory()
    path = app.settings.fetched_path
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    recs = [{"id": "old", "title": "Old story", "text": "An old story about a harbour bridge.", "arrived": now - 40 * DAY},
            {"id": "new", "title": "New story", "text": "A new story about a solar farm.", "arrived": now - DAY}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    app.load(progress=False)
    assert "new" in app.corpus and "old" not in app.corpus and path.read_text().count("\n") == 2  # file kept
    h = Handlers(app)
    assert "Old story" not in json.dumps([a.title for a in h.articles(per_page=25).articles])


@pytest.mark.parametrize("bad", ["soon", True])
def test_a_bad_arrived_value_is_a_clear_load_issue(fast_app_factory, bad):
    app = fast_app_factory()
    path = app.settings.fetched_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": "x", "title": "T", "text": "Some text here.", "arrived": bad}) + "\n")
    report = app.load(progress=False)
    assert any('"arrived" must be a number' in str(i) for i in report.issues) and "x" not in app.corpus


def test_batched_retirement_hides_an_overdue_article_at_once_and_retires_it_with_its_batch(fast_app_factory):
    app = fast_app_factory(max_article_age_days=30)
    now = time.time()
    lisbon = fetched(0, now - 1 * DAY, guild=None)  # the Lisbon tram line story
    filler = [Article.build(id=f"filler-{i}", title=f"Harbour news {i}", text=f"Story {i} about a quiet harbour town.",
                            arrived=now, source="feed x") for i in range(250)]
    app.add_articles([lisbon] + filler)
    h = Handlers(app)
    q = "How much did the new tram line in Lisbon cost?"
    assert any(s.article_id == lisbon.id for s in h.ask(q).supporting)
    later = now + 29 * DAY + 600  # Lisbon is 10 minutes past 30 days: 1 of ~254 articles, under 1 %
    app.clock = lambda: later
    assert app.retire(later, batched=True) == [] and lisbon.id in app.corpus  # it waits for its batch...
    assert not any(s.article_id == lisbon.id for s in h.ask(q).supporting)  # ...and no one sees it meanwhile
    assert lisbon.title not in [a.title for a in h.articles("Lisbon tram", per_page=25).articles]
    gone = app.retire(later + 3600.0, batched=True)  # an hour overdue: it goes
    assert [a.id for a in gone] == [lisbon.id] and lisbon.id not in app.corpus
