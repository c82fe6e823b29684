"""Digest recovery through the real client: a crash between sending a digest and
recording it must not post it twice after a restart, nor skip what came next.

Recovery reads the channel's recent messages (GET /channels/{id}/messages), and
Discord deduplicates a retried send by its nonce (``enforce_nonce``); the fake
in tests/fakes/ implements both the way Discord behaves.
"""

from __future__ import annotations

import time

import pytest

from bot.store import Store
from tests.fakes import discord_payloads as P
from tests.fakes.discord_server import FakeDiscord
from tests.test_digest import LATER, QUAKE_A, RATES
from tests.test_discord_bot import _channel_option, start


class SimulatedCrash(Exception):
    pass


@pytest.fixture
def bot_app(fast_app_factory):
    return fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0)


def digest_posts(fake):
    return [r for r in fake.requests_to(f"/channels/{fake.channel_id}/messages", "POST") if r.status == 200]


def digest_messages(fake):
    return [m for m in fake.messages_in() if m["embeds"] and (m["embeds"][-1].get("footer") or {}).get("text", "").startswith("Digest #")]


async def _subscribe_and_add(fake, bot, articles):
    rec = await fake.send_command(
        "digest", [_channel_option(fake), {"name": "every", "type": P.OPT_INTEGER, "value": 5}],
        subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS,
    )
    await fake.wait_for_response(rec)
    [sub] = bot.store.subscriptions()
    bot.app.add_articles(articles)
    bot.store.set_next_due(sub.id, time.time() - 1)
    return sub


async def test_crash_between_send_and_record_no_duplicate_no_gap(bot_app, monkeypatch):
    async with FakeDiscord() as fake:
        async with start(fake, bot_app) as bot:
            sub = await _subscribe_and_add(fake, bot, [QUAKE_A, RATES])

            def crash(*args, **kwargs):
                raise SimulatedCrash("the process died after Discord accepted the message")

            monkeypatch.setattr(bot.store, "mark_sent", crash)
            result = await bot.digest_tick()
            assert result.failed and len(digest_messages(fake)) == 1
            [post] = bot.store.posts(sub.id)
            assert post.state == "pending"
        monkeypatch.undo()
        bot_app.add_articles([LATER])  # arrives while the bot is down

        async with start(fake, bot_app) as bot2:  # restart: new client, new store, same DATA_DIR
            result = await bot2.digest_tick()
            assert result.recovered == [post.id] and not result.posted
            assert len(digest_messages(fake)) == 1 and len(digest_posts(fake)) == 1  # nothing sent again
            history = fake.requests_to(f"/channels/{fake.channel_id}/messages", "GET")
            assert history and history[0].query["limit"] == "100" and "after" in history[0].query
            recovered = bot2.store.post(post.id)
            assert recovered.state == "sent" and recovered.message_id == int(digest_messages(fake)[0]["id"])

            # no gap: the article that arrived meanwhile is the whole of the next digest
            bot2.store.set_next_due(sub.id, time.time() - 1)
            result = await bot2.digest_tick()
            assert len(result.posted) == 1
            later = digest_messages(fake)[-1]
            assert len(digest_messages(fake)) == 2
            assert [e["title"] for e in later["embeds"]] == [LATER.title]


async def test_resend_after_a_lost_answer_is_deduplicated_by_nonce(bot_app):
    """The request reached Discord but the answer was lost (timeout): the retry carries the same
    nonce, so Discord hands back the first message instead of posting a second one."""
    async with FakeDiscord() as fake:
        async with start(fake, bot_app) as bot:
            sub = await _subscribe_and_add(fake, bot, [RATES])
            from bot.adapters.discord.sender import DiscordDigestSender
            from bot.engines.digest import compose_digest

            bot.digests.sync_articles()
            post = bot.store.claim(sub.id, time.time(), "lost-answer")

            first = await DiscordDigestSender(bot, None)._send(sub, post, compose_digest(bot.app, post.article_ids))
            second = await DiscordDigestSender(bot, None)._send(sub, post, compose_digest(bot.app, post.article_ids))
            assert first == second and len(digest_messages(fake)) == 1
            assert bot.store.subscription(sub.id).last_cursor < bot.store.max_cursor()


async def test_a_second_store_on_the_same_file_sees_the_post(bot_app):
    async with FakeDiscord() as fake:
        async with start(fake, bot_app) as bot:
            sub = await _subscribe_and_add(fake, bot, [RATES])
            assert (await bot.digest_tick()).posted
            other = Store(bot_app.settings.db_path)
            assert other.last_sent(sub.id).message_id == int(digest_messages(fake)[0]["id"])
            other.close()


async def test_a_developing_story_is_posted_as_what_is_new(bot_app):
    """A second post on the same story shows only the new sentence, marked as an update, with its
    source; a third whose article says nothing new is the one "no new facts" line."""
    from tests.test_story_updates import NEW_FACT, QUAKE_REPEAT, QUAKE_UPDATE

    async with FakeDiscord() as fake:
        async with start(fake, bot_app) as bot:
            sub = await _subscribe_and_add(fake, bot, [QUAKE_A])
            assert (await bot.digest_tick()).posted
            [first] = digest_messages(fake)
            assert first["embeds"][0]["title"] == QUAKE_A.title

            bot_app.add_articles([QUAKE_UPDATE])
            bot.store.set_next_due(sub.id, time.time() - 1)
            assert (await bot.digest_tick()).posted
            update = digest_messages(fake)[-1]
            [story] = update["embeds"]
            assert story["title"] == f"Update: {QUAKE_UPDATE.title}"
            assert story["description"] == NEW_FACT
            [field] = story["fields"]
            # cited as always: its article, its date, its link
            assert field["name"] == f"1. {QUAKE_UPDATE.title} ({QUAKE_UPDATE.date})"
            assert field["value"] == f"{NEW_FACT} [source](https://news.example/chile-quake-hotel)"

            bot_app.add_articles([QUAKE_REPEAT])
            bot.store.set_next_due(sub.id, time.time() - 1)
            assert (await bot.digest_tick()).posted
            nothing = digest_messages(fake)[-1]
            assert [e["title"] for e in nothing["embeds"]] == ["Earlier stories"]
            assert nothing["embeds"][0]["description"] == (
                f"**Update:** {QUAKE_REPEAT.title} — No new facts in 1 more article")
            assert nothing["embeds"][0]["footer"]["text"].startswith("Digest #")
