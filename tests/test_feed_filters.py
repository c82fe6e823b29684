"""Per-feed filters (include / exclude words and phrases) and the opt-in role ping on digests:
the filter rules, the store's v2 -> v3 migration, the console, and the real discord.py client
against the fake Discord (tests/fakes/), with the feeds served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from bot.sources.filters import MAX_TERM_CHARS, MAX_TERMS, FeedFilter, FilterError, parse_terms
from bot.sources.service import Sources
from bot.store import Schedule, Store
from bot.store import db as store_db
from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401  (fixture)
from tests.fakes.web import rss
from tests.test_digest import QUAKE_A, RATES
from tests.test_discord_digest import digest_messages
from tests.test_discord_feeds import DENIED, EPHEMERAL, feed_app, start, url_option  # noqa: F401  (feed_app: fixture)
from tests.test_sources import feed_items, fetcher, site, story  # noqa: F401  (site: fixture)

# ------------------------------------------------------------------ the rules


@pytest.mark.parametrize(("text", "terms"), [
    ("Climate,  heat WAVE ", ("climate", "heat wave")),
    ("a,,b, a", ("a", "b")),
    ("", ()),
    ("-", ()),
    ("  ,  ", ()),
])
def test_terms_are_comma_separated_lower_cased_and_deduplicated(text, terms):
    assert parse_terms(text) == terms


@pytest.mark.parametrize(("text", "message"), [
    (",".join(f"w{i}" for i in range(MAX_TERMS + 1)), f"at most {MAX_TERMS}"),
    ("x" * (MAX_TERM_CHARS + 1), f"at most {MAX_TERM_CHARS} characters"),
    ("ok, ?!", "has no letter or digit"),
    ("y, " * 1000, "too long"),
])
def test_bad_terms_say_why(text, message):
    with pytest.raises(FilterError, match=message):
        parse_terms(text, "include")


def test_whole_words_and_phrases_case_insensitive():
    f = FeedFilter(include=("tram line", "c++"), exclude=("rate",))
    assert f.passes("Lisbon opens its new TRAM\nline")
    assert not f.passes("Lisbon opens its new tramline")
    assert f.passes("Learning C++ today")
    assert not f.passes("tram line", "the interest rate rose")  # exclude wins
    assert f.passes("tram line", "interest rates and pirates")  # not whole words
    assert FeedFilter().passes("anything") and FeedFilter(exclude=("x",)).passes("y")
    assert not FeedFilter(include=("osaka",)).passes("Lisbon")


# ------------------------------------------------------------------ the store


def test_a_v2_database_opens_keeps_its_feeds_and_subscriptions_and_gains_the_new_columns(tmp_path):
    path = tmp_path / "data" / "precis.sqlite3"
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path, isolation_level=None)
    for script in (store_db._SCHEMA_V1, store_db._SCHEMA_V2):
        for stmt in script.split(";"):
            if stmt.strip():
                con.execute(stmt)
    con.execute("INSERT INTO feeds(guild_id, url, added_at, next_poll, items) VALUES (7, 'http://a.example/rss', 1, 1, 5)")
    con.execute("INSERT INTO subscriptions(guild_id, channel_id, schedule, created_by, created_at, next_due)"
                " VALUES (7, 70, ?, 1, 1, 2)", (Schedule.every(5).to_text(),))
    con.execute("PRAGMA user_version = 2")
    con.close()

    store = Store(path)
    assert store.schema_version == store_db.SCHEMA_VERSION >= 3
    [feed] = store.feeds(7)
    assert (feed.url, feed.items, feed.include, feed.exclude, feed.filtered) == ("http://a.example/rss", 5, (), (), False)
    [sub] = store.subscriptions(7)
    assert (sub.channel_id, sub.ping_role_id) == (70, None)
    changed = store.set_feed_filters(7, feed.id, include=("heat wave",), exclude=None)
    assert (changed.include, changed.exclude) == (("heat wave",), ())
    assert store.set_feed_filters(8, feed.id, include=()) is None  # another guild's feed
    sub2, created = store.subscribe(7, 70, Schedule.every(10), 1, ping_role_id=123)
    assert not created and sub2.ping_role_id == 123
    store.close()
    again = Store(path)
    assert again.feeds(7)[0].include == ("heat wave",) and again.subscriptions(7)[0].ping_role_id == 123
    again.close()


# ------------------------------------------------------------------ polling


async def test_an_item_one_feed_filters_out_still_reaches_another_servers_feed(site, fast_app_factory):
    app = fast_app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    sources = Sources(app.settings, store, app=app, fetcher=fetcher())
    items = feed_items(site, [0, 1])
    site.static("/feed.xml", rss(items + items[:1]), "application/rss+xml")  # item 0 twice
    filtered, _ = store.add_feed(1, site.url("/feed.xml"), exclude=("lisbon",))
    first = await sources.poll(filtered)
    assert [n.title for n in first.new] == [story(1)[0]] and first.filtered == 2
    assert "1 new of 3 item(s); 2 filtered out" in store.feed(filtered.id).last_status
    assert not any(a.title == story(0)[0] for a in app.corpus)

    other, _ = store.add_feed(2, site.url("/feed.xml"))  # another server, no filter: it gets item 0
    second = await sources.poll(other)
    assert [n.title for n in second.new] == [story(0)[0]]
    assert next(a for a in app.corpus if a.title == story(0)[0]).guild_id == 2

    again = await sources.poll(store.feed(filtered.id))  # the filtered feed still keeps it out, shared or not
    assert again.new == [] and again.filtered == 0
    lisbon = next(a for a in app.corpus if a.title == story(0)[0])
    assert (lisbon.id, 1) not in store.shared_articles()  # not shared with the server whose filter kept it out
    store.close()


# ------------------------------------------------------------------ the console


async def test_console_feed_add_edit_and_list_with_filters(site, fast_app_factory):
    from bot.adapters.console import handle_line
    from bot.handlers.core import Handlers

    app = fast_app_factory(fetch_allow_private=True)
    store = Store(app.settings.db_path)
    handlers = Handlers(app, Sources(app.settings, store, app=app, fetcher=fetcher()))
    site.static("/feed.xml", rss(feed_items(site, [0, 1, 2])), "application/rss+xml")

    def say(line: str) -> str:
        return handle_line(handlers, line)

    out = await asyncio.to_thread(say, f"/feed add url:{site.url('/feed.xml')} exclude:Lisbon, hospital wing")
    assert out.startswith("Feed added") and "1 item(s) added" in out and "2 item(s) filtered out" in out
    assert [a.title for a in app.corpus if a.url and a.url.startswith(site.url("/news/"))] == [story(1)[0]]
    out = await asyncio.to_thread(say, "/feed list")
    assert "filter: exclude: lisbon, hospital wing" in out and "1 new of 3 item(s); 2 filtered out" in out
    out = await asyncio.to_thread(say, "/feed edit feed:1 include:Osaka, heat wave exclude:")
    assert out.startswith("Feed filters changed") and "include: osaka, heat wave" in out and "exclude" not in out
    assert "filter: include: osaka, heat wave" in await asyncio.to_thread(say, "/feed list")
    out = await asyncio.to_thread(say, "/feed edit 1 include:-")
    assert "Filter: none (every item is kept)" in out and "filter:" not in await asyncio.to_thread(say, "/feed list")
    out = await asyncio.to_thread(say, "/feed edit feed:1")
    assert out.startswith("Error: Give include: or exclude:")
    out = await asyncio.to_thread(say, "/feed edit feed:9 include:x")
    assert out.startswith("Error: No such feed here")
    out = await asyncio.to_thread(say, "/feed edit feed:1 exclude:" + ",".join(f"w{i}" for i in range(25)))
    assert out.startswith("Error: The exclude filter has 25 terms; at most 20")
    assert store.feed(1).exclude == ()  # a bad edit changes nothing
    store.close()


# ------------------------------------------------------------------ Discord: /feed with filters


def _opt(name: str, value: str) -> dict:
    return {"name": name, "type": P.OPT_STRING, "value": value}


async def test_filtered_items_are_never_announced_answered_or_listed(fake_discord, feed_app, site):
    fake = fake_discord
    state = {"items": feed_items(site, [0])}
    site.conditional("/feed.xml", lambda: (str(len(state["items"])), rss(state["items"]).encode()))
    async with start(fake, feed_app) as bot:
        # include misses item 0 (Lisbon's tram line) already on the first poll
        rec = await fake.send_command("feed", [url_option(site.url("/feed.xml")),
                                               _opt("include", "library, hospital wing, cycle lane"),
                                               _opt("exclude", "Nairobi")],
                                      subcommand="add", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        text = msg["embeds"][0]["description"]
        assert msg["embeds"][0]["title"] == "Feed added" and "0 item(s) added" in text
        assert "include: library, hospital wing, cycle lane · exclude: nairobi (1 item(s) filtered out)" in text
        [feed] = bot.store.feeds()
        assert feed.include == ("library", "hospital wing", "cycle lane") and feed.exclude == ("nairobi",)

        rec = await fake.send_command("digest", [{"name": "channel", "type": P.OPT_CHANNEL, "value": str(fake.channel_id)},
                                                 {"name": "every", "type": P.OPT_INTEGER, "value": 5}],
                                      subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
        await fake.wait_for_response(rec)
        [sub] = bot.store.subscriptions()

        # 1: Osaka's library (passes); 2: Nairobi's hospital wing (excluded); 3: Quito's harbour bridge (include
        # misses); 0 again: filtered out before, it never comes back
        state["items"] = feed_items(site, [1, 2, 3, 0])
        result = await bot.sources.poll(bot.store.feed(feed.id))
        assert [n.title for n in result.new] == [story(1)[0]] and result.filtered == 2
        assert site.hits_to("/news/2.html") == []  # excluded by its feed text: its page is not even fetched
        titles = {a.title for a in bot.app.corpus}
        assert story(1)[0] in titles and not titles & {story(n)[0] for n in (0, 2, 3)}
        again = await bot.sources.poll(bot.store.feed(feed.id))  # the same items again: nothing comes back
        assert again.new == [] and again.filtered == 0

        bot.store.set_next_due(sub.id, time.time() - 1)
        assert (await bot.digest_tick()).posted
        [digest] = digest_messages(fake)
        assert [e["title"] for e in digest["embeds"]] == [story(1)[0]]

        for n, shown in ((1, True), (2, False), (3, False)):
            rec = await fake.send_command("articles", [_opt("query", story(n)[0].split(" opens")[0])])
            [msg] = await fake.wait_for_response(rec, timeout=30)
            listed = " ".join([msg.get("content") or ""] + [str(e) for e in msg["embeds"]])
            assert (story(n)[0] in listed) is shown, (n, listed[:500])

        rec = await fake.send_command("ask", [_opt("question", "When did Osaka open its new library?")])
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert msg["embeds"][1]["fields"][0]["name"].startswith(f"1. {story(1)[0]}")
        rec = await fake.send_command("ask", [_opt("question", "When did Nairobi open its new hospital wing?")])
        [msg] = await fake.wait_for_response(rec, timeout=30)
        everything = " ".join([msg.get("content") or ""] + [str(e) for e in msg["embeds"]])
        assert "Nairobi" not in everything.replace("When did Nairobi open its new hospital wing?", "")


async def test_feed_edit_changes_filters_list_shows_them_and_bad_input_says_why(fake_discord, feed_app, site):
    fake = fake_discord
    site.static("/feed.xml", rss(feed_items(site, [0, 1])), "application/rss+xml")
    async with start(fake, feed_app) as bot:
        rec = await fake.send_command("feed", [url_option(site.url("/feed.xml")), _opt("exclude", "x" * 101)],
                                      subcommand="add", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert msg["flags"] & EPHEMERAL and "is too long (at most 100 characters)" in msg["content"]
        assert bot.store.feeds() == [] and site.hits_to("/feed.xml") == []

        rec = await fake.send_command("feed", [url_option(site.url("/feed.xml"))], subcommand="add",
                                      permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        [feed] = bot.store.feeds()
        assert not feed.filtered

        denied = await fake.send_command("feed", [_opt("feed", str(feed.id)), _opt("include", "osaka")],
                                         subcommand="edit")
        [msg] = await fake.wait_for_response(denied)
        assert msg["content"] == DENIED and not bot.store.feed(feed.id).filtered

        rec = await fake.send_command("feed", [_opt("feed", site.url("/feed.xml")), _opt("include", "Osaka, Heat Wave"),
                                               _opt("exclude", "sport")],
                                      subcommand="edit", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert msg["embeds"][0]["title"] == "Feed filters changed"
        assert "include: osaka, heat wave · exclude: sport" in msg["embeds"][0]["description"]
        assert bot.store.feed(feed.id).include == ("osaka", "heat wave")

        listing = await fake.send_command("feed", subcommand="list")
        [msg] = await fake.wait_for_response(listing)
        assert "filter: include: osaka, heat wave · exclude: sport" in msg["embeds"][0]["description"]

        rec = await fake.send_command("feed", [_opt("feed", str(feed.id)), _opt("exclude", "-")],
                                      subcommand="edit", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        f = bot.store.feed(feed.id)
        assert (f.include, f.exclude) == (("osaka", "heat wave"), ())  # include stays, exclude cleared

        for opts, error in (
            ([_opt("include", ",".join(f"t{i}" for i in range(21)))], "The include filter has 21 terms; at most 20"),
            ([_opt("exclude", "!!")], "The exclude term '!!' has no letter or digit to match."),
            ([], "Give include: or exclude:"),
        ):
            rec = await fake.send_command("feed", [_opt("feed", str(feed.id)), *opts], subcommand="edit",
                                          permissions=P.MODERATOR_PERMISSIONS)
            [msg] = await fake.wait_for_response(rec, timeout=30)
            assert msg["flags"] & EPHEMERAL and error in msg["content"], msg["content"]
        rec = await fake.send_command("feed", [_opt("feed", "999"), _opt("include", "a")], subcommand="edit",
                                      permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec, timeout=30)
        assert "No such feed here" in msg["content"]
        f = bot.store.feed(feed.id)
        assert (f.include, f.exclude) == (("osaka", "heat wave"), ())


# ------------------------------------------------------------------ Discord: the digest's role ping


async def _subscribe(fake, bot, channel_id: int, ping: int | None):
    opts = [{"name": "channel", "type": P.OPT_CHANNEL, "value": str(channel_id)},
            {"name": "every", "type": P.OPT_INTEGER, "value": 5}]
    if ping is not None:
        opts.append({"name": "ping", "type": P.OPT_ROLE, "value": str(ping)})
    rec = await fake.send_command("digest", opts, subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
    [msg] = await fake.wait_for_response(rec, timeout=30)
    return msg


async def test_a_digest_with_ping_mentions_exactly_that_role_and_one_without_mentions_no_one(fake_discord, feed_app):
    fake = fake_discord
    role = P.DEFAULT_MOD_ROLE_ID
    async with start(fake, feed_app) as bot:
        msg = await _subscribe(fake, bot, fake.channel_id, role)
        assert f"Each digest pings <@&{role}>" in msg["embeds"][0]["description"]
        [sub] = bot.store.subscriptions()
        assert sub.ping_role_id == role
        bot.app.add_articles([QUAKE_A, RATES])
        bot.store.set_next_due(sub.id, time.time() - 1)
        assert (await bot.digest_tick()).posted
        [req] = [r for r in fake.requests_to(f"/channels/{fake.channel_id}/messages", "POST") if r.status == 200]
        assert req.json["content"].startswith(f"<@&{role}> ")
        am = req.json["allowed_mentions"]
        assert am["parse"] == [] and [int(r) for r in am["roles"]] == [role]
        assert set(am) <= {"parse", "roles", "replied_user"} and not am.get("replied_user")
        [posted] = digest_messages(fake)
        assert posted["mention_roles"] == [str(role)] and posted["mentions"] == [] and not posted["mention_everyone"]

        status = await fake.send_command("digest", subcommand="status")
        [msg] = await fake.wait_for_response(status)
        assert f"Ping: <@&{role}>" in str(msg["embeds"][0])

        # subscribing again without ping: the role is dropped, and digests mention no one again
        msg = await _subscribe(fake, bot, fake.channel_id, None)
        assert "Digests ping no one" in msg["embeds"][0]["description"]
        assert bot.store.subscription(sub.id).ping_role_id is None
        from tests.test_digest import LATER

        bot.app.add_articles([LATER])
        bot.store.set_next_due(sub.id, time.time() - 1)
        assert (await bot.digest_tick()).posted
        req = [r for r in fake.requests_to(f"/channels/{fake.channel_id}/messages", "POST") if r.status == 200][-1]
        assert req.json["allowed_mentions"] == {"parse": []} and "<@&" not in (req.json.get("content") or "")
        assert digest_messages(fake)[-1]["mention_roles"] == []


async def test_ping_at_everyone_is_refused(fake_discord, feed_app):
    fake = fake_discord
    async with start(fake, feed_app) as bot:
        msg = await _subscribe(fake, bot, fake.channel_id, fake.guild_id)  # the @everyone role has the guild's id
        assert msg["flags"] & EPHEMERAL and "not @everyone" in msg["content"]
        assert bot.store.subscriptions() == []
