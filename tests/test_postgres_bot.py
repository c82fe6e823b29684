"""The bot on PostgreSQL through the fake Discord: it starts and answers extractive queries while the
database is unreachable, says so in /about and the log (never the password), and works fully once
the server answers; /about names its shards."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from sqlalchemy.engine import make_url

from bot.store import Store
from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401 - fixture
from tests.pg_fixtures import pg_url  # noqa: F401 - fixture
from tests.test_discord_bot import _channel_option, start
from tests.test_store_startup import Forwarder

QUESTION = "How many ethnic Kazakhs is China allowing to leave Xinjiang?"


async def _about(fake) -> str:
    rec = await fake.send_command("about")
    [msg] = await fake.wait_for_response(rec)
    return msg["embeds"][0]["description"]


async def test_the_bot_answers_while_the_database_is_unreachable_and_recovers(fake_discord, pg_url, fast_app_factory,
                                                                             caplog):  # noqa: F811
    fake = fake_discord
    real = make_url(pg_url)
    fwd = Forwarder(real.port or 5432)
    url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@", 1) \
        .replace(f":{real.port or 5432}/", f":{fwd.port}/", 1)
    app = fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0,
                           database_url=url, shard_count=2, shard_ids="1")  # the fake's guild is on shard 1
    caplog.set_level(logging.INFO)
    try:
        async with start(fake, app) as bot:
            bot.store.retry_every = 0.2
            assert not bot.store.ready
            # extractive answers need no database
            rec = await fake.send_command("ask", {"question": QUESTION})
            [msg] = await fake.wait_for_response(rec, timeout=20)
            assert "2,000" in json.dumps(msg)
            about = await _about(fake)
            assert "Database: PostgreSQL" in about and "unreachable" in about and "retrying" in about
            assert "Shards: 1 of 2" in about
            # a command that needs the store says to try again
            rec = await fake.send_command("digest", [_channel_option(fake)], subcommand="subscribe",
                                          permissions=P.MODERATOR_PERMISSIONS)
            [msg] = await fake.wait_for_response(rec, timeout=10)
            assert msg["flags"] & P.MESSAGE_FLAG_EPHEMERAL and "try again shortly" in msg["content"]

            fwd.open()  # the server answers now
            assert await _wait(bot.store)
            rec = await fake.send_command("digest", [_channel_option(fake)], subcommand="subscribe",
                                          permissions=P.MODERATOR_PERMISSIONS)
            [msg] = await fake.wait_for_response(rec, timeout=10)
            assert msg["embeds"][0]["title"] == "Digest subscribed"
            assert [s.channel_id for s in bot.store.subscriptions()] == [fake.channel_id]
            about = await _about(fake)
            assert "Database: PostgreSQL" in about and "unreachable" not in about

            # another process fetched an article for this guild: it joins this one's corpus within seconds
            other = Store(pg_url)
            record = {"id": "other-process-1", "title": "Tallinn opens its new cable car after 9 years of work",
                      "text": "The city of Tallinn opened its new cable car on Monday, officials said.\n"
                              "The cable car cost 31 million euros and carries 900 people an hour.",
                      "date": "2026-12-01", "url": "https://news.example/tallinn", "arrived": time.time(),
                      "guild_id": fake.guild_id}
            other.register_articles([(record["id"], record["title"], fake.guild_id)])
            other.add_fetched([record])
            other.close()
            t = time.monotonic()
            while bot.app.article_row("other-process-1") is None and time.monotonic() - t < 10:  # indexed
                await asyncio.sleep(0.1)
            assert bot.app.article_row("other-process-1") is not None and time.monotonic() - t < 5
            rec = await fake.send_command("ask", {"question": "How much did the cable car in Tallinn cost?"})
            [msg] = await fake.wait_for_response(rec, timeout=20)
            assert "31 million euros" in json.dumps(msg) and "Tallinn opens its new cable car" in json.dumps(msg)
        log = caplog.text
        assert "unreachable at start-up" in log and "reachable after" in log and "shards: 1 of 2" in log
        assert "hunter2" not in log and "hunter2" not in about
    finally:
        fwd.close()


async def _wait(store, timeout: float = 15.0) -> bool:
    import asyncio

    return await asyncio.to_thread(store.wait_ready, timeout)
