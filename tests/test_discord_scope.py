"""Guild scoping through the real discord.py client against the fake Discord with two guilds:
an article guild A's feed or pasted link brought is never cited, listed, autocompleted or
digested in guild B; an article both guilds' feeds brought is visible to both."""

from __future__ import annotations

import json
import time

import pytest

from bot.store import Schedule
from tests.fakes import discord_payloads as P
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.web import rss, story
from tests.test_discord_feeds import start
from tests.test_sources import feed_items, serve_story, site  # noqa: F401  (site: fixture)

A, B = P.DEFAULT_GUILD_ID, P.DEFAULT_GUILD_ID + 1000
CHAN_A, CHAN_B = P.DEFAULT_CHANNEL_ID, P.DEFAULT_CHANNEL_ID + 1000
# story(0): Lisbon tram line (A only), story(1): Osaka library (both), story(2): Nairobi hospital wing (B only),
# story(5): Perth cycle lane (a link pasted in A)
LISBON, OSAKA, NAIROBI, PERTH = (story(n)[0] for n in (0, 1, 2, 5))


@pytest.fixture
def scope_app(fast_app_factory):
    # no dev guild: the commands are synced globally, so both guilds have them
    return fast_app_factory(discord_dev_guild_id=None, watch_corpus=False, cooldown_seconds=0, fetch_allow_private=True)


def two_guilds() -> FakeDiscord:
    return FakeDiscord(guilds=[P.make_default_guild(guild_id=A, channel_id=CHAN_A),
                               P.make_default_guild(guild_id=B, channel_id=CHAN_B)])


def opt(name: str, value, kind=P.OPT_STRING) -> dict:
    return {"name": name, "type": kind, "value": value}


async def ask(fake, guild: int, question: str) -> str:
    rec = await fake.send_command("ask", [opt("question", question)], guild_id=guild)
    [msg] = await fake.wait_for_response(rec, timeout=30)
    return json.dumps(msg)


async def articles(fake, guild: int, query: str | None = None) -> str:
    rec = await fake.send_command("articles", [opt("query", query)] if query else [], guild_id=guild)
    [msg] = await fake.wait_for_response(rec, timeout=30)
    return json.dumps(msg)


async def autocomplete(fake, guild: int, typed: str) -> list[str]:
    rec = await fake.send_autocomplete("summary", [opt("article", typed)], focused="article", guild_id=guild)
    await fake.wait_for_ack(rec)
    return [c["name"] for c in rec.callback_data["choices"]]


async def test_a_guilds_feed_and_link_articles_stay_in_that_guild(scope_app, site):
    app = scope_app
    state_a = {"items": feed_items(site, [0, 1]), "etag": "a1"}
    state_b = {"items": feed_items(site, [1, 2]), "etag": "b1"}
    site.conditional("/a.xml", lambda: (state_a["etag"], rss(state_a["items"]).encode()))
    site.conditional("/b.xml", lambda: (state_b["etag"], rss(state_b["items"]).encode()))
    perth_url, _, _ = serve_story(site, 5, "/perth.html")
    async with two_guilds() as fake, start(fake, app) as bot:
        store, sources = bot.store, bot.sources
        feed_a, _ = store.add_feed(A, site.url("/a.xml"))
        feed_b, _ = store.add_feed(B, site.url("/b.xml"))
        await sources.poll(feed_a)
        await sources.poll(feed_b)
        by_title = {a.title: a for a in app.corpus}
        assert by_title[LISBON].guild_id == A and by_title[OSAKA].guild_id == A and by_title[NAIROBI].guild_id == B
        assert len([a for a in app.corpus if a.title == OSAKA]) == 1  # brought by both, stored once

        rec = await fake.send_command("summary", [opt("url", perth_url)], guild_id=A)  # a link pasted in A
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert PERTH in json.dumps(msg)
        assert by_title.get(PERTH) is None and next(a for a in app.corpus if a.title == PERTH).guild_id == A

        # /ask: A's articles are cited in A, never in B; the shared one in both
        assert LISBON in await ask(fake, A, "How much did the new tram line in Lisbon cost?")
        assert LISBON not in await ask(fake, B, "How much did the new tram line in Lisbon cost?")
        assert PERTH not in await ask(fake, B, "How much did the new cycle lane in Perth cost?")
        assert NAIROBI in await ask(fake, B, "How much did the new hospital wing in Nairobi cost?")
        assert NAIROBI not in await ask(fake, A, "How much did the new hospital wing in Nairobi cost?")
        for g in (A, B):
            assert OSAKA in await ask(fake, g, "How much did the new library in Osaka cost?")

        # /articles: listed only where visible
        listed_a, listed_b = await articles(fake, A), await articles(fake, B)
        assert LISBON in listed_a and PERTH in listed_a and OSAKA in listed_a and NAIROBI not in listed_a
        assert LISBON not in listed_b and PERTH not in listed_b and OSAKA in listed_b and NAIROBI in listed_b
        assert "No articles match" in await articles(fake, B, "Lisbon tram")
        assert LISBON in await articles(fake, A, "Lisbon tram")

        # autocomplete and /summary article: / topic:
        assert not any("Lisbon" in c for c in await autocomplete(fake, B, "Lisbon"))
        assert any(LISBON in c for c in await autocomplete(fake, A, "Lisbon"))
        assert any(OSAKA in c for c in await autocomplete(fake, B, "Osaka"))
        rec = await fake.send_command("summary", [opt("article", by_title[LISBON].id)], guild_id=B)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert msg["content"].startswith("No article matches") and LISBON not in json.dumps(msg)
        rec = await fake.send_command("summary", [opt("topic", "Lisbon tram line")], guild_id=B)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert LISBON not in json.dumps(msg) and "Lisbon opened" not in json.dumps(msg)

        # /about counts what the guild may see
        n_global = len([a for a in app.corpus if a.guild_id is None])
        for g, n in ((A, n_global + 3), (B, n_global + 2)):
            rec = await fake.send_command("about", guild_id=g)
            await fake.wait_for_ack(rec)
            assert f"Corpus: {n} articles" in json.dumps(rec.callback_data)

        # digests: new items after the first polls; each guild's digest covers only what it may see
        sub_a, _ = store.subscribe(A, CHAN_A, Schedule.every(5), 1)
        sub_b, _ = store.subscribe(B, CHAN_B, Schedule.every(5), 1)
        state_a.update(items=feed_items(site, [3, 6]) + state_a["items"], etag="a2")  # 6: in both feeds
        state_b.update(items=feed_items(site, [4, 6]) + state_b["items"], etag="b2")
        await sources.poll(store.feed(feed_a.id))
        await sources.poll(store.feed(feed_b.id))
        for sub in (sub_a, sub_b):
            store.set_next_due(sub.id, time.time() - 1)
        result = await bot.digest_tick()
        assert len(result.posted) == 2
        digest_a = json.dumps(fake.messages_in(CHAN_A))
        digest_b = json.dumps(fake.messages_in(CHAN_B))
        t3, t4, t6 = (story(n)[0] for n in (3, 4, 6))
        assert t3 in digest_a and t6 in digest_a and t4 not in digest_a
        assert t4 in digest_b and t6 in digest_b and t3 not in digest_b
        assert LISBON not in digest_b and PERTH not in digest_b

        # B pastes the link A pasted: the one stored article becomes visible to B too
        rec = await fake.send_command("summary", [opt("url", perth_url)], guild_id=B)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert PERTH in json.dumps(msg)
        assert PERTH in await articles(fake, B) and len([a for a in app.corpus if a.title == PERTH]) == 1


async def test_console_guild_option_scopes_queries(fast_app_factory):
    from bot.adapters.console import handle_line
    from bot.corpus.article import Article
    from bot.handlers.core import Handlers

    app = fast_app_factory()
    title, paras = story(0)
    app.add_articles([Article.build(title=title, text=" ".join(paras), id="lisbon", guild_id=A)])
    h = Handlers(app)
    assert LISBON in handle_line(h, "/articles query:Lisbon tram", guild_id=A)
    assert "No articles match" in handle_line(h, "/articles query:Lisbon tram", guild_id=B)
    assert "No articles match" in handle_line(h, "/articles query:Lisbon tram")  # no --guild: global only
    assert LISBON not in handle_line(h, "/ask question:How much did the Lisbon tram line cost?")
    assert LISBON in handle_line(h, "/ask question:How much did the Lisbon tram line cost?", guild_id=A)
    app.scopes.share("lisbon", B)
    assert LISBON in handle_line(h, "/articles query:Lisbon tram", guild_id=B)
