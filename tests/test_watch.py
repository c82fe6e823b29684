"""Watching CORPUS_PATH: new files are loaded without a restart; deleted or garbled
files are logged and lose nothing already loaded."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.corpus.watch import watch_corpus

STORY = "{title}\nThe {title} story has a first sentence. It also has a second one.\n"


async def _until(cond, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def _write_until(path, text, cond, timeout=10.0):
    """Write ``text`` to ``path`` until ``cond()`` (a watcher that was not looking yet sees the next write)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    n = 0
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting after writing {path}")
        path.write_text(text + "\n" * n)
        n += 1
        for _ in range(10):
            if cond():
                return
            await asyncio.sleep(0.05)


async def _settled(count, quiet=0.6, timeout=10.0):
    """Wait until ``count()`` has not changed for ``quiet`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    last, since = count(), loop.time()
    while loop.time() - since < quiet:
        if loop.time() > end:
            raise AssertionError("still changing")
        await asyncio.sleep(0.05)
        if count() != last:
            last, since = count(), loop.time()


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "one.txt").write_text(STORY.format(title="Alpha"))
    return d


async def _watching(path, reload, **kw):
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_corpus(path, reload, stop_event=stop, ready=ready, debounce_ms=100,
                                            force_polling=True, poll_delay_ms=50, **kw))
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.sleep(0.3)  # let the watcher take its first look
    return stop, task


async def test_new_files_are_loaded_and_deleted_or_garbled_ones_lose_nothing(fast_app_factory, corpus, caplog):
    caplog.set_level(logging.INFO, logger="bot.corpus")
    app = fast_app_factory(corpus_path=corpus, watch_corpus=False)
    assert len(app.corpus) == 1
    stop, task = await _watching(corpus, lambda: asyncio.to_thread(app.load, progress=False))
    try:
        await _write_until(corpus / "two.txt", STORY.format(title="Bravo"), lambda: len(app.corpus) == 2)

        (corpus / "bad.txt").write_bytes(b"\x00\x01\x02 not text")
        await _until(lambda: "binary file" in caplog.text)
        assert len(app.corpus) == 2

        (corpus / "one.txt").unlink()
        await _until(lambda: "was deleted" in caplog.text)
        assert {a.title for a in app.corpus} == {"Alpha", "Bravo"}  # nothing lost
        assert "articles already loaded from it are kept" in caplog.text
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_batch_of_writes_triggers_one_reload_and_other_files_none(corpus):
    calls = []

    async def reload():
        calls.append(1)

    stop, task = await _watching(corpus, reload)
    try:
        await _write_until(corpus / "warm.txt", STORY.format(title="Warm"), lambda: calls)  # it is watching
        await _settled(lambda: len(calls))  # a warm-up write seen late must not count for the batch below
        calls.clear()
        for i in range(5):
            (corpus / f"n{i}.jsonl").write_text('{"title": "T", "text": "Body sentence."}\n')
        (corpus / "notes.csv").write_text("ignored")
        await _until(lambda: calls)
        await asyncio.sleep(0.4)
        assert len(calls) == 1
        (corpus / "other.csv").write_text("still ignored")
        await asyncio.sleep(0.5)
        assert len(calls) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_failing_reload_keeps_the_watcher_alive(corpus, caplog):
    calls = []

    async def reload():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("index build failed")

    stop, task = await _watching(corpus, reload)
    try:
        await _write_until(corpus / "a.txt", STORY.format(title="Charlie"), lambda: len(calls) >= 1)
        await asyncio.sleep(0.3)
        await _write_until(corpus / "b.txt", STORY.format(title="Delta"), lambda: len(calls) >= 2)
        assert "reload failed" in caplog.text
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_missing_path_is_waited_for(tmp_path, caplog, monkeypatch):
    import bot.corpus.watch as watch

    monkeypatch.setattr(watch, "MISSING_POLL_S", 0.1)
    calls = []

    async def reload():
        calls.append(1)

    missing = tmp_path / "later"
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_corpus(missing, reload, stop_event=stop, ready=ready, debounce_ms=100,
                                            force_polling=True, poll_delay_ms=50))
    await _until(lambda: "does not exist" in caplog.text)
    missing.mkdir()
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.sleep(0.3)
    await _write_until(missing / "x.txt", STORY.format(title="Echo"), lambda: calls)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_single_file_corpus_path_reacts_to_that_file_only(corpus):
    calls = []

    async def reload():
        calls.append(1)

    target = corpus / "one.txt"
    stop, task = await _watching(target, reload)
    try:
        (corpus / "neighbour.txt").write_text(STORY.format(title="Foxtrot"))
        await asyncio.sleep(0.5)
        assert calls == []
        await _write_until(target, STORY.format(title="Alpha") + STORY.format(title="Golf"), lambda: calls)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def test_the_console_sees_a_file_dropped_into_corpus_path(fast_app_factory, corpus):
    """The console's watcher (a thread with its own loop, as `python -m bot console` starts it)."""
    import time

    from bot.adapters.console import handle_line
    from bot.corpus.watch import BackgroundWatch
    from bot.handlers.core import Handlers

    app = fast_app_factory(corpus_path=corpus, watch_corpus=False)
    h = Handlers(app)
    assert "No articles match" in handle_line(h, "/articles query:Bravo")
    watch = BackgroundWatch(corpus, lambda: app.load(progress=False), debounce_ms=100, force_polling=True,
                            poll_delay_ms=50).start()
    try:
        time.sleep(0.3)  # the watcher's first look
        end = time.monotonic() + 20
        n = 0
        while "Bravo" not in handle_line(h, "/articles query:Bravo"):
            assert time.monotonic() < end, "the dropped-in file never appeared"
            (corpus / "two.txt").write_text(STORY.format(title="Bravo") + "\n" * n)
            n += 1
            time.sleep(0.5)
        assert "Bravo" in handle_line(h, "/ask question:What does the Bravo story have?")
    finally:
        watch.stop()
    assert not watch._thread.is_alive()
