"""/feed, /summary url: and the "Summarise link" message command through the real discord.py
client against the fake Discord, with the feeds and pages served by a web server on 127.0.0.1."""

from __future__ import annotations

import pytest

from bot.adapters.discord.client import PrecisBot
from bot.sources.service import Sources
from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401  (fixture)
from tests.fakes.discord_server import FakeDiscord, running_client
from tests.fakes.web import rss
from tests.test_discord_bot import assert_within_limits
from tests.test_sources import feed_items, fetcher, serve_story, site, story  # noqa: F401  (site: fixture)

EPHEMERAL = P.MESSAGE_FLAG_EPHEMERAL
DENIED = "You need the Manage Server permission for that."


@pytest.fixture
def feed_app(fast_app_factory):
    return fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0,
                            fetch_allow_private=True)


def start(fake: FakeDiscord, app):
    def make():
        bot = PrecisBot(app, digest_interval=None, feed_interval=None)
        bot.sources = Sources(app.settings, bot.store, app=app, fetcher=fetcher())
        bot.handlers.sources = bot.sources
        return bot

    return running_client(fake, make)


def url_option(value: str, name: str = "url") -> dict:
    return {"name": name, "type": P.OPT_STRING, "value": value}


async def test_feed_add_and_remove_need_manage_server_and_the_feed_is_the_guilds(fake_discord, feed_app, site):
    fake = fake_discord
    site.static("/feed.xml", rss(feed_items(site, [0, 1, 2])), "application/rss+xml")
    feed_url = site.url("/feed.xml")
    async with start(fake, feed_app) as bot:
        denied = await fake.send_command("feed", [url_option(feed_url)], subcommand="add")
        [msg] = await fake.wait_for_response(denied)
        assert msg["content"] == DENIED and msg["flags"] & EPHEMERAL
        assert bot.store.feeds() == [] and site.hits == []

        rec = await fake.send_command("feed", [url_option(feed_url)], subcommand="add",
                                      permissions=P.MODERATOR_PERMISSIONS)
        await fake.wait_for_ack(rec)
        assert rec.callback_type == 5 and rec.ack_latency < 3.0
        [msg] = await fake.wait_for_response(rec, timeout=30)
        embed = msg["embeds"][0]
        assert embed["title"] == "Feed added" and "3 item(s) added" in embed["description"]
        assert "digests announce only what arrives from here on" in embed["description"]
        [feed] = bot.store.feeds()
        assert feed.guild_id == fake.guild_id and feed.url == feed_url and feed.added_by == fake.user_id
        mine = [a for a in bot.app.corpus if a.guild_id == fake.guild_id]
        assert sorted(a.title for a in mine) == sorted(story(n)[0] for n in range(3))

        listing = await fake.send_command("feed", subcommand="list")  # anyone may look
        [msg] = await fake.wait_for_response(listing)
        text = msg["embeds"][0]["description"]
        assert msg["flags"] & EPHEMERAL and feed_url in text and "status: ok (3 new of 3 item(s))" in text
        assert "items: 3" in text and "last success: 20" in text

        auto = await fake.send_autocomplete("feed", [url_option("daily", "feed")], focused="feed", subcommand="remove")
        await fake.wait_for_ack(auto)
        [choice] = auto.callback_data["choices"]
        assert choice["value"] == str(feed.id) and "The Daily Example" in choice["name"]

        denied = await fake.send_command("feed", [url_option(str(feed.id), "feed")], subcommand="remove")
        [msg] = await fake.wait_for_response(denied)
        assert msg["content"] == DENIED and len(bot.store.feeds()) == 1
        rec = await fake.send_command("feed", [url_option(str(feed.id), "feed")], subcommand="remove",
                                      permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["embeds"][0]["title"] == "Feed removed" and bot.store.feeds() == []


async def test_adding_something_that_is_not_a_feed_says_why_and_keeps_nothing(fake_discord, feed_app, site):
    fake = fake_discord
    serve_story(site, 3, "/page.html")
    async with start(fake, feed_app) as bot:
        rec = await fake.send_command("feed", [url_option(site.url("/page.html"))], subcommand="add",
                                      permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["flags"] & EPHEMERAL
        assert "did not give a feed I can read: not a feed: the server sent an HTML page" in msg["content"]
        assert bot.store.feeds() == []


async def test_summary_of_a_pasted_link_and_of_a_messages_first_link(fake_discord, feed_app, site):
    fake = fake_discord
    url, title, paras = serve_story(site, 4, "/story.html")
    url2, title2, paras2 = serve_story(site, 5, "/other.html")
    async with start(fake, feed_app) as bot:
        rec = await fake.send_command("summary", [url_option(url), {"name": "length", "type": P.OPT_INTEGER, "value": 2}])
        [msg] = await fake.wait_for_response(rec, timeout=30)
        main, support = msg["embeds"]
        assert main["title"].startswith(title) and len(support["fields"]) == 2
        link = f" [source]({url})"  # each supporting sentence links to the page it is from
        assert all(f["value"].endswith(link) and f["value"].removesuffix(link) in " ".join(paras)
                   for f in support["fields"]), support["fields"]
        [art] = [a for a in bot.app.corpus if a.url == url]
        assert art.guild_id == fake.guild_id

        message = P.make_message(content=f"Have you seen this? <{url2}>, wild.", author=P.make_user(user_id=P.DEFAULT_USER_ID))
        resolved = {"messages": {message["id"]: message}}
        rec = await fake.send_command("Summarise link", command_type=3, target_id=int(message["id"]), resolved=resolved)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert msg["embeds"][0]["title"].startswith(title2)
        assert any(a.url == url2 and a.guild_id == fake.guild_id for a in bot.app.corpus)

        empty = P.make_message(content="no link here", author=P.make_user(user_id=P.DEFAULT_USER_ID))
        rec = await fake.send_command("Summarise link", command_type=3, target_id=int(empty["id"]),
                                      resolved={"messages": {empty["id"]: empty}})
        [msg] = await fake.wait_for_response(rec)
        assert msg["content"] == "That message has no link to summarise." and msg["flags"] & EPHEMERAL

        rec = await fake.send_command("summary", [url_option(site.url("/gone.html"))])
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["content"] == "I could not use that link: HTTP 404: not found"


async def test_ask_answered_from_a_feed_article_links_each_supporting_sentence(fake_discord, feed_app, site):
    fake = fake_discord
    site.static("/feed.xml", rss(feed_items(site, [0, 1, 2])), "application/rss+xml")
    lisbon_url = site.url("/news/0.html")  # story 0: "Lisbon opens its new tram line after 2 years of work"
    async with start(fake, feed_app) as bot:
        rec = await fake.send_command("feed", [url_option(site.url("/feed.xml"))], subcommand="add",
                                      permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert msg["embeds"][0]["title"] == "Feed added"
        by_title = {a.title: a for a in bot.app.corpus if a.guild_id == fake.guild_id}
        assert by_title[story(0)[0]].url == lisbon_url

        rec = await fake.send_command("ask", [{"name": "question", "type": P.OPT_STRING,
                                               "value": "When did Lisbon open its new tram line?"}])
        [msg] = await fake.wait_for_response(rec, timeout=30)
        body = fake.requests_to(f"/webhooks/{fake.application_id}/*", "POST")[-1].json
        assert body.get("allowed_mentions") == {"parse": []}
        answer, support = msg["embeds"]
        assert answer["title"] == "Q: When did Lisbon open its new tram line?" and support["title"] == "Supporting sentences"
        fields = support["fields"]
        assert fields and fields[0]["name"].startswith(f"1. {story(0)[0]}")
        assert fields[0]["value"].endswith(f" [source]({lisbon_url})"), fields[0]
        assert "Lisbon opened its new tram line" in fields[0]["value"]
        for f in fields:  # every supporting sentence carries its own article's link, whole
            title = next(t for t in by_title if f["name"].split(". ", 1)[1].startswith(t))
            assert f["value"].endswith(f" [source]({by_title[title].url})") and len(f["value"]) <= 1024
        assert_within_limits(body)
