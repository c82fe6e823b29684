"""Failure modes: what the bot does when a part of its world breaks.

Already covered elsewhere (not repeated here):

* a corrupt embedding cache is detected, set aside and rebuilt:
  ``tests/test_index.py::test_corrupt_cache_is_detected_and_rebuilt``;
* a model folder that is missing, has no config or holds corrupt/missing weights
  raises a clear ``ModelUnavailable`` (the generator alone):
  ``tests/test_generator.py::test_missing_folder_raises``, ``test_folder_without_config_raises``,
  ``test_corrupt_weights_raise``, ``test_missing_weights_file_raises``, ``test_corrupt_gguf_raises``;
  ``tests/test_abstractive.py::test_missing_or_corrupt_model_folder_gives_a_clear_message``;
* a new garbled (binary) corpus file and a deleted one while watched:
  ``tests/test_watch.py::test_new_files_are_loaded_and_deleted_or_garbled_ones_lose_nothing``;
  a failing reload: ``test_a_failing_reload_keeps_the_watcher_alive``;
* a 429 on a /summary followup, and on a digest post:
  ``tests/test_discord_bot.py::test_rate_limited_followup_is_retried``, ``test_digest_post_is_retried_after_a_429``;
* the process dying between sending a digest and recording it:
  ``tests/test_discord_digest.py::test_crash_between_send_and_record_no_duplicate_no_gap``,
  ``tests/test_digest.py::test_crash_between_send_and_record_neither_duplicates_nor_skips``.

Here: the summary model failing to load, seen through the handlers and through
Discord; a locked and a corrupt SQLite store; corpus files that were already
loaded being garbled or cut off, and the watched folder removed and re-created;
5xx (and 429) answers to followups, and a 503 on a digest post.

It also covers a clear user message for a locked store, a corrupt store set
aside so the bot still starts, salvaging a partly corrupt store, and a watcher
that survives its folder being re-created.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bot.adapters.discord.client import PrecisBot
from bot.app import Precis
from bot.corpus.watch import watch_corpus
from bot.handlers.core import Handlers
from bot.store import Schedule, Store, StoreError
from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401  (fixture)
from tests.fakes.discord_server import FakeDiscord
from tests.test_digest import QUAKE_A, RATES
from tests.test_discord_bot import _channel_option, start

EPHEMERAL = P.MESSAGE_FLAG_EPHEMERAL
GENERIC_ERROR = "Something went wrong on my side; it has been logged."
QUESTION = "How many ethnic Kazakhs is China allowing to leave Xinjiang?"


def bot_settings(**overrides):
    """The sample corpus, commands synced to the fake's guild, no cooldown, no watcher."""
    overrides.setdefault("discord_dev_guild_id", P.DEFAULT_GUILD_ID)
    overrides.setdefault("watch_corpus", False)
    overrides.setdefault("cooldown_seconds", 0)
    return overrides


# ====================================================================== a model that fails to load


def _broken_model(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "no-such-model"
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text("{ this is not json")
    (folder / "model.safetensors").write_bytes(b"\x00 not weights either")
    return folder


BROKEN = {"missing": "no model folder", "corrupt": "config.json"}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_summary_model_that_fails_to_load_leaves_the_rest_working(settings_factory, memo_embedder, tmp_path,
                                                                     caplog, kind):
    model = _broken_model(tmp_path, kind)
    calls = []

    def generator():  # the app's own loader, counted
        calls.append(1)
        return app._default_generator()

    app = Precis(settings_factory(summary_model=str(model)), embedder=memo_embedder, generator_factory=generator)
    app.load(progress=False)  # the app starts: the model loads on first use
    h = Handlers(app)
    assert "loads on first use" in h.about().text

    # extractive work never touches the model
    summary = h.summary(article="Kazakhs")
    assert summary.ok and len(summary.lines) == 3 and all(line.support for line in summary.lines)
    answer = h.ask(QUESTION)
    assert answer.ok and answer.kind == "answer"
    assert h.summary(topic="coronavirus travel ban").ok

    # abstractive work: a clear error naming the model and the reason
    caplog.set_level(logging.INFO)
    for reply in (h.summary(article="Kazakhs", mode="abstractive"),
                  h.summary(topic="coronavirus travel ban", mode="abstractive"),
                  h.ask(QUESTION, mode="abstractive")):
        assert not reply.ok and reply.kind == "error"
        assert reply.text.startswith("Abstractive mode is unavailable")
        assert str(model) in reply.text and BROKEN[kind] in reply.text
        assert "mode:extractive" in reply.text
    assert calls == [1]  # the failure is remembered: not retried on every request
    assert [r.getMessage() for r in caplog.records if r.name == "bot.app" and r.levelno == logging.ERROR] == [
        f"model unavailable: {app.generator.error}"]

    about = h.about().text
    assert f"Summary model: {model} (unavailable: " in about and BROKEN[kind] in about
    assert h.summary(article="Kazakhs").ok  # and extractive still works afterwards


async def test_through_discord_an_abstractive_summary_gets_a_short_private_error(fake_discord, fast_app_factory,
                                                                                 tmp_path):
    fake = fake_discord
    model = _broken_model(tmp_path, "missing")
    app = fast_app_factory(summary_model=str(model), **bot_settings())
    async with start(fake, app) as bot:
        rec = await fake.send_command("summary", {"article": "Kazakhs", "mode": "abstractive"})
        await fake.wait_for_ack(rec)
        assert rec.callback_type == 5 and rec.ack_latency < 3.0
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["flags"] & EPHEMERAL and not msg["embeds"]
        text = msg["content"]
        assert text.startswith("Abstractive mode is unavailable") and str(model) in text and "no model folder" in text
        assert len(text) < 600
        assert rec.deleted_original  # the public "thinking..." placeholder is gone: nobody else sees the error

        # the error followup itself hits a 500 once: retried, still delivered
        payload = fake.make_command("ask", {"question": QUESTION, "mode": "abstractive"})
        fake.inject_error(f"/webhooks/{fake.application_id}/{payload['token']}", method="POST", status=500)
        rec = await fake.dispatch_interaction(payload)
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["flags"] & EPHEMERAL and msg["content"].startswith("Abstractive mode is unavailable")

        # the bot keeps working
        rec = await fake.send_command("summary", {"article": "Kazakhs"})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert not msg["flags"] & EPHEMERAL and len(msg["embeds"][1]["fields"]) == 3
        rec = await fake.send_command("ask", {"question": QUESTION})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert msg["embeds"]
        rec = await fake.send_command("about")
        [msg] = await fake.wait_for_response(rec)
        assert f"Summary model: {model} (unavailable:" in msg["embeds"][0]["description"]
        assert bot.app.generator.error and not bot.app.generator.loaded


# ====================================================================== SQLite: locked


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another connection (another process, in real life) holding the write lock."""
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    return other


async def _subscribe(fake: FakeDiscord, **schedule):
    opts = [_channel_option(fake)]
    for name, value in schedule.items():
        opts.append({"name": name, "type": P.OPT_INTEGER if name == "every" else P.OPT_STRING, "value": value})
    rec = await fake.send_command("digest", opts, subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
    [msg] = await fake.wait_for_response(rec, timeout=10)
    return msg


def _digest_messages(fake: FakeDiscord) -> list[dict]:
    return [m for m in fake.messages_in()
            if m["embeds"] and (m["embeds"][-1].get("footer") or {}).get("text", "").startswith("Digest #")]


async def test_a_locked_store_refuses_writes_with_an_error_and_loses_nothing(fake_discord, fast_app_factory, caplog):
    fake = fake_discord
    app = fast_app_factory(**bot_settings())
    store = Store(app.settings.db_path, busy_timeout_ms=200)  # the default waits 5 s for a lock
    caplog.set_level(logging.INFO)
    try:
        async with start(fake, app, store=store) as bot:
            msg = await _subscribe(fake, every=5)
            assert msg["embeds"][0]["title"] == "Digest subscribed"
            [sub] = store.subscriptions()
            bot.app.add_articles([QUAKE_A, RATES])
            store.set_next_due(sub.id, time.time() - 1)

            other = _hold_write_lock(app.settings.db_path)
            try:
                # a write: refused with an ephemeral error, and the reason logged
                rec = await fake.send_command(
                    "digest", [_channel_option(fake), {"name": "at", "type": P.OPT_STRING, "value": "07:30"}],
                    subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
                [msg] = await fake.wait_for_response(rec, timeout=10)
                assert msg["flags"] & EPHEMERAL and rec.deleted_original
                assert "database is locked" in caplog.text
                # reads still work (WAL): the subscription is there, unchanged
                rec = await fake.send_command("digest", subcommand="status")
                [msg] = await fake.wait_for_response(rec)
                [field] = msg["embeds"][0]["fields"]
                assert "every 5 minutes" in field["value"] and "New articles waiting" in field["value"]
                # a digest tick cannot claim its post: it fails, posts nothing and moves no cursor
                with pytest.raises((sqlite3.OperationalError, StoreError), match="locked"):
                    await bot.digest_tick()
                assert _digest_messages(fake) == []
            finally:
                other.execute("ROLLBACK")
                other.close()

            # the lock is gone: the subscription is intact, the digest goes out once, writes succeed
            assert [s.schedule.to_text() for s in store.subscriptions()] == ["every:5"]
            result = await bot.digest_tick()
            assert len(result.posted) == 1 and len(_digest_messages(fake)) == 1
            assert {e["title"] for e in _digest_messages(fake)[0]["embeds"]} == {QUAKE_A.title, RATES.title}
            assert not await bot.digest_tick()
            msg = await _subscribe(fake, at="07:30")
            assert msg["embeds"][0]["title"] == "Digest schedule changed"
            assert [s.schedule.to_text() for s in store.subscriptions()] == ["daily@07:30"]
    finally:
        store.close()


async def test_a_locked_store_tells_the_user_to_try_again(fake_discord, fast_app_factory):
    fake = fake_discord
    app = fast_app_factory(**bot_settings())
    store = Store(app.settings.db_path, busy_timeout_ms=200)
    try:
        async with start(fake, app, store=store):
            other = _hold_write_lock(app.settings.db_path)
            try:
                rec = await fake.send_command("digest", [_channel_option(fake)], subcommand="subscribe",
                                              permissions=P.MODERATOR_PERMISSIONS)
                [msg] = await fake.wait_for_response(rec, timeout=10)
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert msg["flags"] & EPHEMERAL and msg["content"] != GENERIC_ERROR
            assert "locked" in msg["content"] and "try again" in msg["content"]
    finally:
        store.close()


def test_a_lock_at_start_up_is_waited_out_or_refused_with_a_reason(tmp_path):
    db = tmp_path / "data" / "precis.sqlite3"
    with Store(db) as first:
        first.subscribe(1, 2, Schedule.every(60), 3)

    # held for a moment (another process migrating or writing): waited out
    other = _hold_write_lock(db)
    releaser = threading.Timer(0.3, lambda: (other.execute("ROLLBACK"), other.close()))
    releaser.start()
    t = time.perf_counter()
    with Store(db, busy_timeout_ms=5000) as store:
        assert time.perf_counter() - t >= 0.1  # it waited for the lock
        assert [s.channel_id for s in store.subscriptions()] == [2]
    releaser.join()

    # held for longer than busy_timeout: refused with a reason, nothing changed
    other = _hold_write_lock(db)
    try:
        with pytest.raises((sqlite3.OperationalError, StoreError), match="locked"):
            Store(db, busy_timeout_ms=100)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Store(db) as store:
        assert [s.channel_id for s in store.subscriptions()] == [2]
        sub, created = store.subscribe(1, 5, Schedule.every(30), 3)
        assert created and len(store.subscriptions()) == 2


# ====================================================================== SQLite: corrupt


GARBAGE = b"this is not a database, it was overwritten by something else\n" * 200


def _kept_copies(folder: Path, data: bytes) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.read_bytes() == data]


def test_a_corrupt_store_file_is_never_overwritten(tmp_path):
    """Whatever the store does with a file that is not a database, the bytes stay on disk for recovery."""
    db = tmp_path / "data" / "precis.sqlite3"
    db.parent.mkdir()
    db.write_bytes(GARBAGE)
    try:
        Store(db).close()
    except sqlite3.DatabaseError as exc:  # what the store does today: refuse to open it
        assert "not a database" in str(exc)
    assert _kept_copies(db.parent, GARBAGE)


def _corrupt_pages(db: Path, first_page: int) -> None:
    """Overwrite every page from ``first_page`` (1-based) on: the schema and the first tables survive."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for i in range((first_page - 1) * page, len(data)):
        data[i] = 0x5A
    db.write_bytes(bytes(data))


async def test_a_corrupt_store_is_set_aside_and_the_bot_starts_and_says_why(fake_discord, fast_app_factory, caplog):
    fake = fake_discord
    app = fast_app_factory(**bot_settings())
    db = app.settings.db_path
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(GARBAGE)
    caplog.set_level(logging.INFO)
    async with start(fake, app) as bot:
        errors = [r.getMessage() for r in caplog.records if r.name == "bot.store.db" and r.levelno >= logging.ERROR]
        assert errors and str(db) in errors[0] and "corrupt" in errors[0]
        [aside] = _kept_copies(db.parent, GARBAGE)
        assert aside.name.startswith("precis.sqlite3.corrupt-") and aside.name in errors[0]
        msg = await _subscribe(fake, every=5)
        assert msg["embeds"][0]["title"] == "Digest subscribed"
        assert len(bot.store.subscriptions()) == 1


def test_a_partly_corrupt_store_keeps_the_subscriptions_it_can_read(tmp_path):
    db = tmp_path / "data" / "precis.sqlite3"
    with Store(db) as store:
        store.subscribe(10, 20, Schedule.every(60), 3)
        store.subscribe(10, 21, Schedule.daily("07:30"), 3)
        store.register_articles([(f"a{i}", "A long enough title " * 20) for i in range(300)])
        cursor = store.max_cursor()
    # the articles' later pages: the schema and the subscriptions are intact (their pages come first:
    # every table and index is created before the articles are written)
    with sqlite3.connect(db) as c:
        last_root = max(r[0] for r in c.execute("SELECT rootpage FROM sqlite_master"))
        pages = c.execute("PRAGMA page_count").fetchone()[0]
    assert pages > last_root + 10  # there are articles' pages to damage
    _corrupt_pages(db, last_root + 5)
    with Store(db) as store:
        assert [(s.channel_id, s.schedule.to_text()) for s in store.subscriptions()] == [(20, "every:60"), (21, "daily@07:30")]
        assert store.max_cursor() <= cursor
        store.register_articles([("new", "New")])  # and it takes writes
        assert store.schema_version >= 1
    assert any(p.name.startswith("precis.sqlite3.corrupt-") for p in db.parent.iterdir())


# ====================================================================== corpus files garbled or removed while watched


STORY = "{title}\nThe {title} story has a first sentence. It also has a second one.\n"
JSONL = '{{"id": "{id}", "title": "{title}", "text": "The {title} story is here. It has two sentences."}}\n'


async def _until(cond, timeout=10.0, what="a condition"):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _write_until(write, cond, timeout=10.0, what="a condition"):
    """``write(n)`` again until ``cond()``: a polling watcher that was not looking yet sees the next write."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    n = 0
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        write(n)
        n += 1
        for _ in range(10):
            if cond():
                return
            await asyncio.sleep(0.05)


async def test_loaded_corpus_files_garbled_or_cut_off_lose_nothing_and_say_why(fast_app_factory, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one.txt").write_text(STORY.format(title="Alpha"))
    (corpus / "two.jsonl").write_text(JSONL.format(id="b", title="Bravo") + JSONL.format(id="c", title="Charlie"))
    app = fast_app_factory(corpus_path=corpus, **bot_settings())
    assert {a.title for a in app.corpus} == {"Alpha", "Bravo", "Charlie"}
    bot = PrecisBot(app, store=Store(app.settings.db_path), digest_interval=None, watch=False)
    bot.digests.sync_articles()
    order = bot.store.articles_after(0)
    assert len(order) == 3
    reports = []

    async def reload():  # the bot's own reload (the corpus, then the digest order), off the event loop
        report = await asyncio.to_thread(bot.reload_corpus)
        reports.append(report)
        return report

    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_corpus(corpus, reload, stop_event=stop, ready=ready, debounce_ms=100,
                                            force_polling=True, poll_delay_ms=50))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.3)  # the watcher's first look

        # an already-loaded file overwritten with binary, another cut off mid-line (a half-finished copy)
        def garble(n: int) -> None:
            (corpus / "one.txt").write_bytes(b"\x00\x01\x02\xff garbled \x00" * (20 + n))
            (corpus / "two.jsonl").write_text(JSONL.format(id="b", title="Bravo") + '{"id": "c", "title": "Char')

        await _write_until(garble, lambda: reports and len(reports[-1].issues) == 2, what="the reload that skips both")
        report = reports[-1]
        assert report.articles == 3 and report.added == 0
        reasons = {(Path(i.file).name, i.line): i.reason for i in report.issues}
        assert set(reasons) == {("one.txt", None), ("two.jsonl", 2)}, reasons
        assert re.search("binary file|not UTF-8", reasons["one.txt", None])
        assert reasons["two.jsonl", 2].startswith("invalid JSON")
        skipped = [r for r in caplog.records if r.getMessage().startswith("corpus watch: skipped")]
        assert len(skipped) >= 2 and all(r.levelno == logging.WARNING for r in skipped)
        assert any("two.jsonl:2: invalid JSON" in r.getMessage() for r in skipped)

        # nothing lost: the articles, their answers, their digest order
        assert {a.title for a in app.corpus} == {"Alpha", "Bravo", "Charlie"}
        h = Handlers(app)
        assert h.summary(article="Alpha").ok and h.summary(article="Charlie").ok
        assert bot.store.articles_after(0) == order
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        bot.store.close()
        bot.pool.shutdown()
        bot._digest_executor.shutdown(wait=False)


async def test_a_removed_and_recreated_corpus_folder_is_watched_again(fast_app_factory, tmp_path, caplog, monkeypatch):
    import bot.corpus.watch as watch

    monkeypatch.setattr(watch, "MISSING_POLL_S", 0.2)
    caplog.set_level(logging.INFO)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one.txt").write_text(STORY.format(title="Alpha"))
    app = fast_app_factory(corpus_path=corpus, **bot_settings())

    stop, ready = asyncio.Event(), asyncio.Event()
    # the backend the bot uses (force_polling=None: inotify on Linux), a short debounce
    task = asyncio.create_task(watch_corpus(corpus, lambda: asyncio.to_thread(app.load, progress=False),
                                            stop_event=stop, ready=ready, debounce_ms=100))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.3)
        for p in corpus.iterdir():
            p.unlink()
        corpus.rmdir()
        await _until(lambda: "was deleted" in caplog.text or "removed" in caplog.text, 5, what="the removal to be logged")
        await asyncio.sleep(0.5)
        assert [a.title for a in app.corpus] == ["Alpha"]  # nothing lost
        corpus.mkdir()
        await _write_until(lambda n: (corpus / "two.txt").write_text(STORY.format(title="Bravo") + "\n" * n),
                           lambda: len(app.corpus) == 2, timeout=3, what="a file in the re-created folder to load")
        assert {a.title for a in app.corpus} == {"Alpha", "Bravo"}
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


# ====================================================================== 429 and 5xx answers to followups


async def test_server_errors_and_rate_limits_on_followups_are_retried_and_delivered(fake_discord, fast_app_factory):
    fake = fake_discord
    app = fast_app_factory(**bot_settings())
    hook = f"/webhooks/{fake.application_id}/{{token}}"
    async with start(fake, app):
        cases = [
            ("summary", {"article": "Kazakhs"}, [("error", 500)]),
            ("ask", {"question": QUESTION}, [("error", 503)]),
            ("summary", {"topic": "coronavirus travel ban", "private": True}, [("error", 502), ("rate_limit", 429)]),
        ]
        recs = []
        for name, options, faults in cases:
            payload = fake.make_command(name, options)
            pattern = hook.format(token=payload["token"])
            for kind, status in faults:
                if kind == "rate_limit":
                    fake.inject_rate_limit(pattern, method="POST", retry_after=0.05)
                else:
                    fake.inject_error(pattern, method="POST", status=status)
            recs.append((await fake.dispatch_interaction(payload), pattern, faults))
        for rec, pattern, faults in recs:
            await fake.wait_for_ack(rec)
            assert rec.callback_type == 5 and rec.ack_latency < 3.0
            [msg] = await fake.wait_for_response(rec, timeout=20)
            assert msg["embeds"] and not msg["content"]  # the real answer, not an error
            posts = fake.requests_to(pattern, "POST")
            assert [r.status for r in posts] == [s for _, s in faults] + [200]
            assert len(rec.followups) == 1  # delivered once
        assert recs[2][0].visible_messages()[0]["flags"] & EPHEMERAL


async def test_a_digest_post_answered_503_is_posted_once_by_a_later_tick(fake_discord, fast_app_factory):
    """discord.py does not retry a 503 on a channel post (only 500/502/504/524): the tick gives the
    post back and a later tick sends it, once."""
    fake = fake_discord
    app = fast_app_factory(**bot_settings())
    async with start(fake, app) as bot:
        await _subscribe(fake, every=5)
        [sub] = bot.store.subscriptions()
        bot.app.add_articles([RATES])
        bot.store.set_next_due(sub.id, time.time() - 1)
        fake.inject_error(f"/channels/{fake.channel_id}/messages", method="POST", status=503)
        now = time.time()
        first = await bot.digest_tick(now)
        assert first.failed and not first.posted and _digest_messages(fake) == []
        assert "503" in (bot.store.posts(sub.id)[0].last_error or "")
        assert not await bot.digest_tick(now + 1)  # backing off
        later = await bot.digest_tick(now + 3600)
        assert len(later.posted) == 1 and len(_digest_messages(fake)) == 1
        assert bot.store.subscription(sub.id).last_cursor == bot.store.max_cursor()
        assert [r.status for r in fake.requests_to(f"/channels/{fake.channel_id}/messages", "POST")] == [503, 200]
