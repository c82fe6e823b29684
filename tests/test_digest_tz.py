"""Digests in a server's time zone (``/digest subscribe tz:``): the schedule keeps the
zone in its stored text, due times follow the zone's wall clock across daylight-saving
changes, and old ``daily@HH:MM`` rows stay UTC. The clock is injected throughout."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.engines.digest import DigestRunner
from bot.store import Schedule, ScheduleError, Store
from bot.store.schedule import COMMON_ZONES, resolve_zone, suggest_zones, zone_names
from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401  (fixture)
from tests.test_digest import QUAKE_A, QUAKE_B, RATES, ChannelSender
from tests.test_discord_bot import _channel_option, start

NY = ZoneInfo("America/New_York")


def utc(text: str) -> float:
    """Epoch seconds of an ISO time in UTC, e.g. ``utc("2026-03-08T12:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M")


# 2026 US changes: clocks spring forward at 02:00 EST = 07:00 UTC on Sunday 8 March,
# and fall back at 02:00 EDT = 06:00 UTC on Sunday 1 November.
SPRING = utc("2026-03-08T07:00")
FALL = utc("2026-11-01T06:00")


# ------------------------------------------------------------------ the stored text


def test_old_rows_without_a_zone_parse_as_utc_exactly_as_before():
    old = Schedule.parse("daily@08:00")
    assert old == Schedule.daily("08:00") and old.tz is None
    assert old.to_text() == "daily@08:00" and old.describe() == "daily at 08:00 UTC"
    # UTC does not move with New York's clocks: 08:00 UTC on both sides of both changes
    assert iso(old.next_after(SPRING - 1)) == "2026-03-08T08:00"
    assert iso(old.next_after(SPRING + 1)) == "2026-03-08T08:00"
    assert iso(old.next_after(FALL + 1)) == "2026-11-01T08:00"


@pytest.mark.parametrize("schedule, text", [
    (Schedule.daily("08:00", "America/New_York"), "daily@08:00@America/New_York"),
    (Schedule.daily("23:45", "Asia/Tokyo"), "daily@23:45@Asia/Tokyo"),
    (Schedule.daily("7:05", "america/argentina/buenos aires"), "daily@07:05@America/Argentina/Buenos_Aires"),
    (Schedule.daily("08:00", "UTC"), "daily@08:00"),  # UTC is stored the old way
    (Schedule.daily("08:00", ""), "daily@08:00"),
    (Schedule.daily("08:00 UTC"), "daily@08:00"),
    (Schedule.every(90), "every:90"),
])
def test_to_text_and_parse_round_trip(schedule, text):
    assert schedule.to_text() == text
    assert Schedule.parse(text) == schedule
    assert Schedule.parse(text).to_text() == text


def test_describe_names_the_zone():
    assert Schedule.daily("08:00", "America/New_York").describe() == "daily at 08:00 America/New_York"
    assert Schedule.daily("8:00", "asia/tokyo").describe() == "daily at 08:00 Asia/Tokyo"


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "America/New_Yrok", "EST-5", "localtime", "Factory",
                                "../../etc/passwd", "posix/America/New_York", "America/"])
def test_an_unknown_zone_is_refused_politely(tz):
    with pytest.raises(ScheduleError, match="don't know the time zone") as err:
        Schedule.daily("08:00", tz)
    assert "America/New_York" in str(err.value)  # says what a zone name looks like


def test_a_misspelt_zone_gets_a_suggestion():
    with pytest.raises(ScheduleError, match="Did you mean `America/New_York`"):
        resolve_zone("America/New_Yrok")


def test_a_utc_time_with_another_zone_is_refused():
    with pytest.raises(ScheduleError, match="without UTC"):
        Schedule.daily("08:00 UTC", "Europe/Berlin")


def test_a_stored_row_with_an_unknown_zone_is_an_error_not_utc():
    with pytest.raises(ScheduleError):
        Schedule.parse("daily@08:00@Nowhere/Land")


# ------------------------------------------------------------------ due times across DST


@pytest.mark.parametrize("now, due", [
    # March: 08:00 EST = 13:00 UTC before the change, 08:00 EDT = 12:00 UTC after it
    ("2026-03-07T12:59", "2026-03-07T13:00"),
    ("2026-03-07T13:00", "2026-03-08T12:00"),  # exactly due -> the next day, already EDT
    (SPRING - 1, "2026-03-08T12:00"),
    (SPRING + 1, "2026-03-08T12:00"),
    ("2026-03-08T12:00", "2026-03-09T12:00"),
    # November: 08:00 EDT = 12:00 UTC before, 08:00 EST = 13:00 UTC after
    ("2026-10-31T11:59", "2026-10-31T12:00"),
    ("2026-10-31T12:00", "2026-11-01T13:00"),
    (FALL - 1, "2026-11-01T13:00"),
    (FALL + 1, "2026-11-01T13:00"),
    ("2026-11-01T13:00", "2026-11-02T13:00"),
])
def test_new_york_0800_is_0800_new_york_time_on_both_sides_of_each_change(now, due):
    s = Schedule.daily("08:00", "America/New_York")
    t = utc(now) if isinstance(now, str) else now
    got = s.next_after(t, anchor=t)
    assert iso(got) == due
    local = datetime.fromtimestamp(got, NY)
    assert (local.hour, local.minute) == (8, 0)


def test_a_week_of_due_times_across_the_spring_change_is_one_a_day_at_0800_local():
    s = Schedule.daily("08:00", "America/New_York")
    t, dues = utc("2026-03-05T00:00"), []
    for _ in range(7):
        t = s.next_after(t)
        dues.append(iso(t))
    assert dues == ["2026-03-05T13:00", "2026-03-06T13:00", "2026-03-07T13:00",
                    "2026-03-08T12:00", "2026-03-09T12:00", "2026-03-10T12:00", "2026-03-11T12:00"]


def test_a_zone_without_dst_and_ahead_of_utc():
    s = Schedule.daily("08:00", "Asia/Tokyo")  # UTC+9: 08:00 JST is 23:00 UTC the day before
    assert iso(s.next_after(utc("2026-03-08T22:00"))) == "2026-03-08T23:00"
    assert iso(s.next_after(utc("2026-03-08T23:00"))) == "2026-03-09T23:00"


def test_a_local_time_skipped_by_spring_forward_posts_once_an_hour_later_on_the_wall_clock():
    s = Schedule.daily("02:30", "America/New_York")  # 02:30 does not exist on 8 March 2026
    due = s.next_after(utc("2026-03-07T12:00"))
    assert iso(due) == "2026-03-08T07:30"  # 02:30 EST's instant, which the wall clock calls 03:30 EDT
    assert datetime.fromtimestamp(due, NY).strftime("%H:%M %Z") == "03:30 EDT"
    assert iso(s.next_after(due)) == "2026-03-09T06:30"  # then 02:30 EDT as usual


def test_a_local_time_repeated_by_fall_back_posts_once_at_its_first_occurrence():
    s = Schedule.daily("01:30", "America/New_York")  # 01:30 happens twice on 1 November 2026
    due = s.next_after(utc("2026-10-31T12:00"))
    assert iso(due) == "2026-11-01T05:30"  # 01:30 EDT
    assert iso(s.next_after(due)) == "2026-11-02T06:30"  # not 06:30 on 1 November (01:30 EST)


# ------------------------------------------------------------------ suggestions


def test_zone_suggestions_match_what_was_typed_and_stay_within_25():
    assert suggest_zones("tokyo") == ["Asia/Tokyo"]
    assert suggest_zones("new_y")[0] == "America/New_York"
    assert suggest_zones("America/New York")[0] == "America/New_York"
    americas = suggest_zones("america/")
    assert len(americas) == 25 and all(z.startswith("America/") for z in americas)
    assert suggest_zones("zzzz-no-such") == []
    assert set(COMMON_ZONES) <= set(zone_names()) and suggest_zones("") == list(COMMON_ZONES)
    assert len(suggest_zones("")) <= 25
    assert not any(z.startswith(("posix/", "right/")) or z == "localtime" for z in zone_names())
    assert len(zone_names()) > 400  # from the tzdata package, OS zone files or not


# ------------------------------------------------------------------ through the store and the runner


@pytest.fixture
def world(fast_app_factory):
    app = fast_app_factory()
    store = Store(app.settings.db_path, lease_seconds=60.0)
    runner = DigestRunner(app, store, owner="tz")
    runner.sync_articles()
    yield app, store, runner
    store.close()


@pytest.mark.parametrize("subscribed, first, second", [
    ("2026-03-07T14:00", "2026-03-08T12:00", "2026-03-09T12:00"),  # spring: posts at 12:00 UTC from the change on
    ("2026-03-06T14:00", "2026-03-07T13:00", "2026-03-08T12:00"),  # the change falls between two posts
    ("2026-10-30T14:00", "2026-10-31T12:00", "2026-11-01T13:00"),  # fall: 12:00 UTC, then 13:00 UTC
])
def test_a_new_york_digest_posts_at_0800_new_york_time_through_the_store_and_runner(world, subscribed, first, second):
    app, store, runner = world
    sub, created = store.subscribe(1, 10, Schedule.daily("08:00", "America/New_York"), 42, now=utc(subscribed))
    assert created and iso(sub.next_due) == first
    other = Store(app.settings.db_path)  # read back from the database by another store
    [again] = other.subscriptions()
    other.close()
    assert again.schedule == Schedule.daily("08:00", "America/New_York")
    sender = ChannelSender()

    app.add_articles([QUAKE_A, RATES])
    assert not runner.tick(utc(first) - 60, sender)  # 07:59 New York: not yet
    result = runner.tick(utc(first), sender)  # 08:00 New York
    assert len(result.posted) == 1 and len(sender.messages) == 1
    [sub] = store.subscriptions()
    assert iso(sub.next_due) == second

    app.add_articles([QUAKE_B])
    assert not runner.tick(utc(second) - 60, sender)
    assert len(runner.tick(utc(second), sender).posted) == 1
    assert [list(m["articles"]) for m in sender.messages] == [["quake-a", "rates"], ["quake-b"]]
    for t in (first, second):
        assert datetime.fromtimestamp(utc(t), NY).strftime("%H:%M") == "08:00"


def test_an_existing_utc_subscription_stays_utc(world):
    app, store, runner = world
    store.subscribe(1, 10, Schedule.daily("08:00"), 42, now=utc("2026-03-07T14:00"))
    con = sqlite3.connect(app.settings.db_path)
    assert con.execute("SELECT schedule FROM subscriptions").fetchall() == [("daily@08:00",)]  # the text is unchanged
    con.close()
    sender = ChannelSender()
    app.add_articles([RATES])
    [sub] = store.subscriptions()
    assert iso(sub.next_due) == "2026-03-08T08:00" and sub.schedule.tz is None
    assert len(runner.tick(utc("2026-03-08T08:00"), sender).posted) == 1
    assert iso(store.subscriptions()[0].next_due) == "2026-03-09T08:00"


# ------------------------------------------------------------------ through Discord


@pytest.fixture
def bot_app(fast_app_factory):
    return fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0)


def _opt(name: str, value, type_=P.OPT_STRING) -> dict:
    return {"name": name, "type": type_, "value": value}


async def test_subscribe_with_tz_shows_the_zone_and_posts_at_0800_there(fake_discord, bot_app):
    fake = fake_discord
    async with start(fake, bot_app) as bot:
        auto = await fake.send_autocomplete("digest", [_channel_option(fake), _opt("tz", "new_y")],
                                            focused="tz", subcommand="subscribe")
        await fake.wait_for_ack(auto)
        choices = auto.callback_data["choices"]
        assert choices[0] == {"name": "America/New_York", "value": "America/New_York"} and len(choices) <= 25

        # the at: suggestions name the zone being chosen, not UTC
        auto = await fake.send_autocomplete("digest", [_channel_option(fake), _opt("tz", "America/New_York"),
                                                       _opt("at", "7:40")], focused="at", subcommand="subscribe")
        await fake.wait_for_ack(auto)
        names = [c["name"] for c in auto.callback_data["choices"]]
        assert names[0] == "07:40 America/New_York" and not any("UTC" in n for n in names)
        auto = await fake.send_autocomplete("digest", [_channel_option(fake), _opt("at", "7:40")],
                                            focused="at", subcommand="subscribe")
        await fake.wait_for_ack(auto)
        assert auto.callback_data["choices"][0]["name"] == "07:40 UTC"

        bad = await fake.send_command("digest", [_channel_option(fake), _opt("at", "08:00"), _opt("tz", "Mars/Base")],
                                      subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(bad)
        assert msg["flags"] & 64 and "don't know the time zone `Mars/Base`" in msg["content"]
        both = await fake.send_command("digest", [_channel_option(fake), _opt("every", 60, P.OPT_INTEGER),
                                                  _opt("tz", "Asia/Tokyo")],
                                       subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(both)
        assert msg["flags"] & 64 and "leave `tz:` out" in msg["content"]
        assert bot.store.subscriptions() == []

        rec = await fake.send_command("digest", [_channel_option(fake), _opt("at", "08:00"), _opt("tz", "america/new_york")],
                                      subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(rec)
        assert "daily at 08:00 America/New_York" in msg["embeds"][0]["description"]
        [sub] = bot.store.subscriptions()
        assert sub.schedule.to_text() == "daily@08:00@America/New_York"
        due = datetime.fromtimestamp(sub.next_due, NY)
        assert (due.hour, due.minute) == (8, 0)

        status = await fake.send_command("digest", subcommand="status")
        [msg] = await fake.wait_for_response(status)
        [field] = msg["embeds"][0]["fields"]
        assert "Schedule: daily at 08:00 America/New_York" in field["value"]

        # the real tick, with the clock injected: nothing at 07:59 New York, the digest at 08:00
        bot.app.add_articles([QUAKE_A, RATES])
        assert not await bot.digest_tick(sub.next_due - 60)
        assert len((await bot.digest_tick(sub.next_due)).posted) == 1
        [after] = bot.store.subscriptions()
        nxt = datetime.fromtimestamp(after.next_due, NY)
        assert (nxt.hour, nxt.minute) == (8, 0) and (nxt.date() - due.date()).days == 1
