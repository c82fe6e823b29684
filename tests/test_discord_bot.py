"""The real Precis Discord client (discord.py 2.7) against the offline fake Discord.

Each test logs the bot in, lets it sync its commands, dispatches
INTERACTION_CREATE the way Discord would, and checks what the bot sent back
(the fake records every request; it fails the test on any route it does not
know, and ``running_client`` fails it on any ERROR logged by discord.py).

Set PRECIS_DUMP_DIR to write the recorded request bodies of one /summary
followup, one /ask followup and one digest post there as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from bot.adapters.discord.client import PrecisBot
from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401  (fixture)
from tests.fakes.discord_server import FakeDiscord, running_client
from tests.test_digest import QUAKE_A, QUAKE_B, RATES

EPHEMERAL = P.MESSAGE_FLAG_EPHEMERAL
KAZAKH_TITLE = "China allowing 2,000 ethnic Kazakhs to leave Xinjiang region"


def dump(name: str, body: object) -> None:
    folder = os.environ.get("PRECIS_DUMP_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(body, indent=2, ensure_ascii=False))


@pytest.fixture
def bot_app(fast_app_factory):
    """The sample corpus, commands synced to the fake's guild, no cooldown, no file watcher."""
    return fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0)


def start(fake: FakeDiscord, app, **kwargs):
    kwargs.setdefault("digest_interval", None)  # tests drive the digest ticks themselves
    return running_client(fake, lambda: PrecisBot(app, **kwargs))


def followups(fake: FakeDiscord) -> list:
    return fake.requests_to(f"/webhooks/{fake.application_id}/*", "POST")


def no_mentions(body: dict) -> bool:
    return body.get("allowed_mentions") == {"parse": []}


def assert_within_limits(body: dict) -> None:
    assert len(body.get("content") or "") <= 2000
    embeds = body.get("embeds") or []
    assert len(embeds) <= 10
    total = 0
    for e in embeds:
        assert len(e.get("title") or "") <= 256 and len(e.get("description") or "") <= 4096
        assert len(e.get("fields") or []) <= 25
        for f in e.get("fields") or []:
            assert 1 <= len(f["name"]) <= 256 and 1 <= len(f["value"]) <= 1024
            total += len(f["name"]) + len(f["value"])
        total += len(e.get("title") or "") + len(e.get("description") or "") + len((e.get("footer") or {}).get("text") or "")
    assert total <= 6000


# ------------------------------------------------------------------ sync


async def test_commands_sync_to_the_dev_guild_with_descriptions_bounds_and_autocomplete(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app):
        cmds = {c["name"]: c for c in fake.synced_commands(fake.guild_id)}
        assert set(cmds) == {"summary", "ask", "articles", "digest", "corpus", "feed", "about", "help", "Summarise link"}
        assert fake.synced_commands() == []  # dev guild only: nothing global

        def opts(cmd):
            return {o["name"]: o for o in cmd.get("options") or []}

        assert cmds["Summarise link"]["type"] == 3 and cmds["Summarise link"]["description"] == ""  # a message command
        for cmd in cmds.values():
            assert cmd["description"] or cmd["type"] == 3
            for o in cmd.get("options") or []:
                assert o["description"]
                for sub in o.get("options") or []:
                    assert sub["description"]

        s = opts(cmds["summary"])
        assert [o for o in s] == ["article", "topic", "mode", "length", "private", "url"]
        assert s["article"]["type"] == P.OPT_STRING and s["article"]["autocomplete"] is True
        assert not s["article"]["required"] and not s["topic"]["required"]
        assert (s["article"]["min_length"], s["article"]["max_length"]) == (1, 200)
        assert [c["value"] for c in s["mode"]["choices"]] == ["extractive", "abstractive"]
        assert s["length"]["type"] == P.OPT_INTEGER and (s["length"]["min_value"], s["length"]["max_value"]) == (1, 10)
        assert s["private"]["type"] == P.OPT_BOOLEAN

        a = opts(cmds["ask"])
        assert a["question"]["required"] and (a["question"]["min_length"], a["question"]["max_length"]) == (1, 300)
        assert [c["value"] for c in a["mode"]["choices"]] == ["extractive", "abstractive"] and "private" in a

        assert opts(cmds["articles"])["query"]["autocomplete"] is True

        d = opts(cmds["digest"])
        assert set(d) == {"now", "subscribe", "unsubscribe", "status"}
        assert all(o["type"] == P.OPT_SUB_COMMAND for o in d.values())
        sub = opts(d["subscribe"])
        assert sub["channel"]["type"] == P.OPT_CHANNEL and sub["channel"]["required"]
        assert sub["channel"]["channel_types"] == [0, 5]  # text and announcement channels
        assert sub["at"]["autocomplete"] is True and (sub["every"]["min_value"], sub["every"]["max_value"]) == (5, 10080)
        assert opts(d["unsubscribe"])["channel"]["type"] == P.OPT_CHANNEL

        f = opts(cmds["feed"])
        assert set(f) == {"add", "edit", "remove", "list"} and cmds["feed"]["contexts"] == [0]
        assert opts(f["add"])["url"]["required"] and opts(f["remove"])["feed"]["autocomplete"] is True
        for name in ("add", "edit"):  # the filters: optional strings
            assert all(o["type"] == P.OPT_STRING and not o["required"] and o["max_length"] == 2200
                       for k, o in opts(f[name]).items() if k in ("include", "exclude"))
            assert {"include", "exclude"} <= set(opts(f[name]))
        assert opts(f["edit"])["feed"]["required"] and opts(f["edit"])["feed"]["autocomplete"] is True
        assert sub["ping"]["type"] == P.OPT_ROLE and not sub["ping"]["required"]
        assert s["url"]["type"] == P.OPT_STRING and not s["url"]["required"]

        corpus = cmds["corpus"]
        assert corpus["default_member_permissions"] == str(P.Perm.MANAGE_GUILD)
        assert set(opts(corpus)) == {"reload"}


async def test_without_a_dev_guild_commands_sync_globally_once(fake_discord, fast_app_factory):
    fake = fake_discord
    app = fast_app_factory(watch_corpus=False)
    async with start(fake, app):
        cmds = {c["name"]: c for c in fake.synced_commands()}
        assert set(cmds) == {"summary", "ask", "articles", "digest", "corpus", "feed", "about", "help", "Summarise link"}
        assert cmds["digest"]["contexts"] == [0] and cmds["corpus"]["contexts"] == [0]  # guild only
    async with start(fake, app):  # a restart with the same commands does not sync again
        pass
    puts = fake.requests_to(f"/applications/{fake.application_id}/commands", "PUT")
    assert len(puts) == 1 and fake.guild_commands == {}


# ------------------------------------------------------------------ /summary /ask /articles


async def test_summary_acknowledges_at_once_and_follows_up_with_supporting_sentences(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        rec = await fake.send_command("summary", {"article": "Kazakhs"})
        await fake.wait_for_ack(rec)
        assert rec.callback_type == 5 and rec.ack_latency < 3.0  # deferred, "thinking"
        [msg] = await fake.wait_for_response(rec, timeout=20)
        body = followups(fake)[-1].json
        dump("summary_followup", body)
        assert no_mentions(body) and msg["mentions"] == [] and not msg["mention_everyone"]
        assert not msg["flags"] & EPHEMERAL
        main, support = msg["embeds"]
        assert main["title"].startswith(KAZAKH_TITLE) and main["description"]
        assert support["title"] == "Supporting sentences"
        article = bot.app.corpus.articles[0]
        assert len(support["fields"]) == 3
        for n, f in enumerate(support["fields"], 1):
            assert f["name"] == f"{n}. {KAZAKH_TITLE} (09 January 2019)"
            assert f["value"] in article.sentences  # a real sentence of the article
        assert_within_limits(body)


async def test_summary_by_id_and_by_topic(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        japan = bot.app.corpus.articles[1]
        rec = await fake.send_command("summary", {"article": japan.id, "length": 2})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["embeds"][0]["title"].startswith(japan.title) and len(msg["embeds"][1]["fields"]) == 2
        rec = await fake.send_command("summary", {"topic": "coronavirus travel ban", "private": True})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["flags"] & EPHEMERAL and msg["embeds"][0]["title"] == "Topic: coronavirus travel ban"
        assert all(japan.title in f["name"] for f in msg["embeds"][1]["fields"])


async def test_article_autocomplete_offers_matching_titles(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        rec = await fake.send_autocomplete("summary", {"article": "kazakh"}, focused="article")
        await fake.wait_for_ack(rec)
        assert rec.callback_type == 8
        [choice] = rec.callback_data["choices"]
        assert choice == {"name": f"{KAZAKH_TITLE} (09 January 2019)", "value": bot.app.corpus.articles[0].id}
        # (an empty value would be what Discord sends first, but the fake checks min_length on the focused option)
        rec = await fake.send_autocomplete("summary", {"article": ""}, focused="article")
        await fake.wait_for_ack(rec)
        assert len(rec.callback_data["choices"]) == 2


async def test_ask_with_everyone_in_the_question_pings_nobody(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app):
        question = "@everyone how many ethnic Kazakhs is China allowing to leave? <@&1200000000000000400>"
        rec = await fake.send_command("ask", {"question": question})
        await fake.wait_for_ack(rec)
        assert rec.callback_type == 5 and rec.ack_latency < 3.0
        [msg] = await fake.wait_for_response(rec, timeout=20)
        body = followups(fake)[-1].json
        dump("ask_followup", body)
        assert no_mentions(body)
        assert not msg["mention_everyone"] and msg["mentions"] == [] and msg["mention_roles"] == []
        # the question as read: mentions are not question terms (issue 30), so they are not echoed either
        assert msg["embeds"][0]["title"] == "Q: how many ethnic Kazakhs is China allowing to leave?"
        if len(msg["embeds"]) > 1:  # an answer (not an abstention) carries its support
            assert msg["embeds"][1]["title"] == "Supporting sentences"
            assert all(f["value"] for f in msg["embeds"][1]["fields"])
        assert_within_limits(body)


async def test_show_all_supporting_sentences_and_page_through_them(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app):
        rec = await fake.send_command("summary", {"article": "Kazakhs", "length": 10})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert len(msg["embeds"][1]["fields"]) == 5
        assert msg["embeds"][1]["footer"]["text"].startswith("Showing 5 of 10")
        [button] = msg["components"][0]["components"]
        assert button["label"] == "Show all 10 supporting sentences"
        click = await fake.click(button["custom_id"], msg["id"])
        [page] = await fake.wait_for_response(click)
        assert page["flags"] & EPHEMERAL and page["embeds"][0]["title"] == "Supporting sentences (1–5 of 10)"
        prev, position, nxt = page["components"][0]["components"]
        assert prev["disabled"] and position["label"] == "1 / 2"
        click2 = await fake.click(nxt["custom_id"], page["id"])
        await fake.wait_for_ack(click2)
        assert click2.callback_type == 7
        edited = fake.message(page["id"])
        assert edited["embeds"][0]["title"] == "Supporting sentences (6–10 of 10)"
        assert [f["name"][:3] for f in edited["embeds"][0]["fields"]] == ["6. ", "7. ", "8. ", "9. ", "10."]


async def test_articles_are_paged_with_buttons(fake_discord, fast_app_factory):
    from bot.corpus.article import Article

    app = fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0)
    app.add_articles([Article.build(id=f"extra-{i:02d}", title=f"Extra story number {i}",
                                    text=f"Extra story {i} has one sentence. And another one here.") for i in range(10)])
    fake = fake_discord
    async with start(fake, app):
        rec = await fake.send_command("articles")
        [msg] = await fake.wait_for_response(rec, timeout=10)
        embed = msg["embeds"][0]
        assert embed["title"] == "Articles (newest first)" and embed["footer"]["text"] == "Page 1 of 2 · 12 article(s)"
        assert "Extra story number 9" in embed["description"]
        prev, nxt = msg["components"][0]["components"]
        assert prev["disabled"] and not nxt.get("disabled")
        click = await fake.click(nxt["custom_id"], msg["id"])
        await fake.wait_for_ack(click)
        assert click.callback_type == 6  # deferred update, then the message is edited
        await fake.wait_until(lambda: "Page 2 of 2" in fake.message(msg["id"])["embeds"][0]["footer"]["text"])
        page2 = fake.message(msg["id"])
        assert KAZAKH_TITLE in page2["embeds"][0]["description"]
        prev, nxt = page2["components"][0]["components"]
        assert not prev.get("disabled") and nxt["disabled"]


# ------------------------------------------------------------------ errors, busy, cooldown, 429


async def test_errors_are_short_and_ephemeral(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app):
        both = await fake.send_command("summary", {"article": "Kazakhs", "topic": "Japan"})
        [msg] = await fake.wait_for_response(both)
        assert both.callback_type == 4 and msg["flags"] & EPHEMERAL and "exactly one" in msg["content"]

        missing = await fake.send_command("summary", {"article": "zzzz qqqq"})
        await fake.wait_for_ack(missing)
        assert missing.callback_type == 5  # acknowledged first, then the handler found nothing
        [msg] = await fake.wait_for_response(missing, timeout=20)
        assert msg["flags"] & EPHEMERAL and msg["content"].startswith("No article matches")
        assert missing.deleted_original  # the public "thinking..." placeholder is gone


async def test_busy_pool_answers_busy_at_once(fake_discord, fast_app_factory):
    app = fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0,
                           workers=1, queue_limit=1)
    fake = fake_discord
    async with start(fake, app) as bot:
        held = [bot.pool.reserve(), bot.pool.reserve()]  # one running, one waiting: full
        rec = await fake.send_command("ask", {"question": "What did the ministry say?"})
        [msg] = await fake.wait_for_response(rec)
        assert rec.callback_type == 4 and msg["flags"] & EPHEMERAL and "busy" in msg["content"]
        for slot in held:
            slot.release()
        rec = await fake.send_command("ask", {"question": "What did the ministry say?"})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert rec.callback_type == 5 and msg["embeds"]


async def test_busy_only_past_the_expected_wait_limit_and_says_how_long(fake_discord, fast_app_factory):
    app = fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0,
                           workers=1, queue_max_wait_seconds=10)
    fake = fake_discord
    async with start(fake, app) as bot:
        bot.pool.costs.observe("ask", 6.0)  # /ask measured slow: one running + one waiting is 12 s ahead
        held = [bot.pool.reserve("ask"), bot.pool.reserve("ask")]
        rec = await fake.send_command("ask", {"question": "What did the ministry say?"})
        [msg] = await fake.wait_for_response(rec)
        assert rec.callback_type == 4 and msg["flags"] & EPHEMERAL
        assert msg["content"].startswith("I'm busy right now (the wait would be about 12 s)")
        assert not bot.gen_pool.pending  # the model lane is another queue: not involved
        for slot in held:
            slot.release()


async def test_a_noticeable_wait_is_told_then_the_answer_replaces_the_note(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        bot.pool.costs.observe("summary", 4.0)
        held = [bot.pool.reserve("summary") for _ in range(bot.pool.workers + 2)]  # (4 x 4 s) / 2 = 8 s ahead
        rec = await fake.send_command("summary", {"article": "Kazakhs"})
        await fake.wait_for_ack(rec)
        assert rec.callback_type == 5  # acknowledged at once, as always
        await fake.wait_until(lambda: rec.original and (rec.original.get("content") or "").startswith("Queued:"), 5,
                              what="the queued note")
        note = rec.original["content"]
        assert note.startswith("Queued: about 12 s behind 4 other requests") and not rec.original["embeds"]
        for slot in held:
            slot.release()
        await fake.wait_until(lambda: rec.original.get("embeds"), 20, what="the answer")
        [msg] = rec.visible_messages()  # the note became the answer: one message, no leftover "Queued"
        assert msg is rec.original and not msg.get("content") and KAZAKH_TITLE in msg["embeds"][0]["title"]
        assert not followups(fake)


async def test_a_burst_of_cheap_requests_beyond_the_old_fixed_limit_is_all_answered(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        assert bot.pool.workers == 2  # the old rule refused everything past 2 running + 8 waiting
        recs = []
        for i in range(30):
            if i % 2:
                recs.append(await fake.send_command("ask", {"question": "How many Kazakhs may leave?"},
                                                    user_id=P.DEFAULT_USER_ID + 1 + i))
            else:
                recs.append(await fake.send_command("summary", {"article": "Japan travel ban"},
                                                    user_id=P.DEFAULT_USER_ID + 1 + i))
        for rec in recs:
            msgs = await fake.wait_for_response(rec, timeout=60)
            await fake.wait_until(lambda: not (rec.visible_messages()[-1].get("content") or "").startswith("Queued:"),
                                  60, what="the answer after the queued note")
            assert rec.callback_type == 5 and rec.ack_latency is not None and rec.ack_latency < 3
            assert "busy" not in (msgs[-1].get("content") or "") and rec.visible_messages()[-1]["embeds"]
        assert bot.pool.pending == 0 and bot.pool.costs.samples.get("ask") == 15


async def test_per_user_cooldown(fake_discord, fast_app_factory):
    app = fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=60)
    fake = fake_discord
    async with start(fake, app):
        first = await fake.send_command("summary", {"article": "Kazakhs"})
        await fake.wait_for_response(first, timeout=20)
        again = await fake.send_command("ask", {"question": "Who is leaving?"})
        [msg] = await fake.wait_for_response(again)
        assert again.callback_type == 4 and msg["flags"] & EPHEMERAL and msg["content"].startswith("Slow down")
        other = await fake.send_command("ask", {"question": "Who is leaving?"}, user_id=P.DEFAULT_OWNER_ID)
        await fake.wait_for_ack(other)
        assert other.callback_type == 5  # another user is not held back


async def test_rate_limited_followup_is_retried(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app):
        fake.inject_rate_limit(f"/webhooks/{fake.application_id}/*", method="POST", count=1, retry_after=0.05)
        rec = await fake.send_command("summary", {"article": "Kazakhs"})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        posts = followups(fake)
        assert [r.status for r in posts] == [429, 200] and posts[0].injected == "rate_limit"
        assert msg["embeds"][1]["fields"]


async def test_about_and_help(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app):
        rec = await fake.send_command("about")
        [msg] = await fake.wait_for_response(rec)
        text = msg["embeds"][0]["description"]
        assert "Corpus: 2 articles" in text and "Uptime" in text and "Version" in text and "Embedder" in text
        rec = await fake.send_command("help")
        [msg] = await fake.wait_for_response(rec)
        assert msg["flags"] & EPHEMERAL and "/summary" in msg["embeds"][0]["description"]


async def test_corpus_reload_needs_manage_server_and_adds_new_articles(fake_discord, fast_app_factory, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one.txt").write_text("First story title\nThe first story has a sentence. And a second one.\n")
    app = fast_app_factory(corpus_path=corpus, discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False,
                           cooldown_seconds=0)
    fake = fake_discord
    async with start(fake, app) as bot:
        denied = await fake.send_command("corpus", subcommand="reload")
        [msg] = await fake.wait_for_response(denied)
        assert msg["flags"] & EPHEMERAL and "Manage Server" in msg["content"]
        (corpus / "two.txt").write_text("Second story title\nA new story arrived. It has two sentences.\n")
        (corpus / "bad.txt").write_bytes(b"\x00\x01binary")
        rec = await fake.send_command("corpus", subcommand="reload", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["flags"] & EPHEMERAL
        assert "2 articles from 3 file(s), 1 new" in msg["embeds"][0]["description"]
        assert "binary file" in msg["embeds"][0]["description"]
        assert len(bot.app.corpus) == 2 and bot.store.max_cursor() == 2


# ------------------------------------------------------------------ digests


def _channel_option(fake: FakeDiscord) -> dict:
    return {"name": "channel", "type": P.OPT_CHANNEL, "value": str(fake.channel_id)}


async def test_digest_subscribe_needs_manage_server(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        denied = await fake.send_command("digest", [_channel_option(fake)], subcommand="subscribe")
        [msg] = await fake.wait_for_response(denied)
        assert denied.callback_type == 4 and msg["flags"] & EPHEMERAL
        assert msg["content"] == "You need the Manage Server permission for that."
        assert bot.store.subscriptions() == []

        rec = await fake.send_command(
            "digest", [_channel_option(fake), {"name": "at", "type": P.OPT_STRING, "value": "07:30"}],
            subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS,
        )
        await fake.wait_for_ack(rec)
        assert rec.ack_latency < 3.0
        [msg] = await fake.wait_for_response(rec)
        assert msg["embeds"][0]["title"] == "Digest subscribed" and "daily at 07:30 UTC" in msg["embeds"][0]["description"]
        [sub] = bot.store.subscriptions()
        assert (sub.guild_id, sub.channel_id, sub.created_by) == (fake.guild_id, fake.channel_id, fake.user_id)
        assert sub.schedule.to_text() == "daily@07:30" and sub.last_cursor == 2

        status = await fake.send_command("digest", subcommand="status")
        [msg] = await fake.wait_for_response(status)
        [field] = msg["embeds"][0]["fields"]
        assert field["name"] == "#general" and "daily at 07:30 UTC" in field["value"]

        auto = await fake.send_autocomplete("digest", [_channel_option(fake), {"name": "at", "type": P.OPT_STRING, "value": "7:40"}],
                                            focused="at", subcommand="subscribe")
        await fake.wait_for_ack(auto)
        assert auto.callback_data["choices"][0]["value"] == "07:40"

        bad = await fake.send_command("digest", [_channel_option(fake), {"name": "at", "type": P.OPT_STRING, "value": "25:00"}],
                                      subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(bad)
        assert msg["flags"] & EPHEMERAL and "not a time of day" in msg["content"]

        nope = await fake.send_command("digest", [_channel_option(fake)], subcommand="unsubscribe")
        [msg] = await fake.wait_for_response(nope)
        assert "Manage Server" in msg["content"] and bot.store.subscriptions()
        bye = await fake.send_command("digest", [_channel_option(fake)], subcommand="unsubscribe",
                                      permissions=P.MODERATOR_PERMISSIONS)
        await fake.wait_for_response(bye)
        assert bot.store.subscriptions() == []
        again = await fake.send_command("digest", [_channel_option(fake)], subcommand="unsubscribe",
                                        permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(again)
        assert msg["flags"] & EPHEMERAL and "has no digest subscription" in msg["content"]


async def _subscribe(fake: FakeDiscord, every: int = 5):
    rec = await fake.send_command(
        "digest", [_channel_option(fake), {"name": "every", "type": P.OPT_INTEGER, "value": every}],
        subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS,
    )
    await fake.wait_for_response(rec)


def _channel_posts(fake: FakeDiscord) -> list:
    return fake.requests_to(f"/channels/{fake.channel_id}/messages", "POST")


async def test_digest_tick_posts_once_and_not_again_after_a_restart(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        await _subscribe(fake)
        [sub] = bot.store.subscriptions()
        assert not await bot.digest_tick()  # not due yet
        bot.store.set_next_due(sub.id, time.time() - 1)
        assert not await bot.digest_tick()  # due, but nothing new: no post
        bot.app.add_articles([QUAKE_A, RATES, QUAKE_B])
        bot.store.set_next_due(sub.id, time.time() - 1)
        result = await bot.digest_tick()
        assert len(result.posted) == 1
        [post] = _channel_posts(fake)
        body = post.json
        dump("digest_post", body)
        assert post.status == 200 and no_mentions(body) and body["nonce"] and body["enforce_nonce"] is True
        assert_within_limits(body)
        assert body["content"].startswith("**News digest**: 3 new article(s) in 2 stories")
        quake, rates = body["embeds"]
        assert "2 articles on this story" in quake["description"]
        assert {f["name"].split(". ", 1)[1] for f in quake["fields"]} == {
            f"{QUAKE_A.title} (02 March 2025)", f"{QUAKE_B.title} (02 March 2025)"}
        assert rates["title"] == RATES.title and rates["footer"]["text"].startswith(f"Digest #{result.posted[0]} ·")
        assert not await bot.digest_tick(time.time() + 10)  # already posted
    # a restart: a new client and a new store on the same DATA_DIR
    async with start(fake, bot_app) as bot2:
        [sub] = bot2.store.subscriptions()
        bot2.store.set_next_due(sub.id, time.time() - 1)
        assert not await bot2.digest_tick()
        assert len(_channel_posts(fake)) == 1 and len(fake.messages_in()) == 2  # the digest + the subscribe reply


async def test_digest_post_is_retried_after_a_429(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        await _subscribe(fake)
        [sub] = bot.store.subscriptions()
        bot.app.add_articles([RATES])
        bot.store.set_next_due(sub.id, time.time() - 1)
        fake.inject_rate_limit(f"/channels/{fake.channel_id}/messages", method="POST", retry_after=0.05)
        result = await bot.digest_tick()
        assert len(result.posted) == 1 and [r.status for r in _channel_posts(fake)] == [429, 200]


async def test_digest_now_previews_without_moving_the_schedule(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        rec = await fake.send_command("digest", subcommand="now")
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["flags"] & EPHEMERAL and msg["content"].startswith("**Newest articles**: 2 new article(s)")
        await _subscribe(fake)
        bot.app.add_articles([RATES])
        rec = await fake.send_command("digest", {"private": False}, subcommand="now")
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert not msg["flags"] & EPHEMERAL and msg["content"].startswith("**Next digest (preview)**: 1 new article(s)")
        assert [e["title"] for e in msg["embeds"]] == [RATES.title]
        [sub] = bot.store.subscriptions()
        assert bot.store.posts(sub.id) == [] and sub.last_cursor == 2


async def test_the_scheduler_loop_posts_due_digests_by_itself(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app, digest_interval=0.1) as bot:
        await _subscribe(fake)
        [sub] = bot.store.subscriptions()
        bot.app.add_articles([QUAKE_A])
        bot.store.set_next_due(sub.id, time.time() - 1)
        await fake.wait_until(lambda: _channel_posts(fake), 10, what="the scheduled digest")
        await fake.wait_until(lambda: bot.store.last_sent(sub.id), 5, what="the post to be recorded")
        await asyncio.sleep(0.3)  # a few more ticks: nothing more to post
        assert len(_channel_posts(fake)) == 1


async def test_new_files_in_corpus_path_are_loaded_while_running(fake_discord, fast_app_factory, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one.txt").write_text("First story title\nThe first story has a sentence. And a second one.\n")
    app = fast_app_factory(corpus_path=corpus, discord_dev_guild_id=P.DEFAULT_GUILD_ID, cooldown_seconds=0)
    fake = fake_discord
    async with start(fake, app, watch=True) as bot:
        await asyncio.sleep(0.5)  # the watcher starts in setup_hook; give it a moment to look
        (corpus / "two.txt").write_text("Second story title\nA new story arrived. It has two sentences.\n")
        await fake.wait_until(lambda: bot.store.max_cursor() == 2, 15, what="the watcher to load two.txt")
        assert len(bot.app.corpus) == 2
