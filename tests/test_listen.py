"""LISTEN for other processes' articles and shares (bot/store/listen.py) on the real PostgreSQL: a
notification wakes the listener at once (its fallback poll is 30 s here), a share is told apart, and a
lost connection falls back to polling, then listens again."""

from __future__ import annotations

import threading
import time

import psycopg

from bot.store import Store
from bot.store.listen import ArticleListener, conninfo_of
from tests.pg_fixtures import pg_url  # noqa: F401 - fixture


class Calls:
    def __init__(self) -> None:
        self.times: list[tuple[float, bool]] = []
        self.event = threading.Event()

    def __call__(self, shares: bool) -> None:
        self.times.append((time.monotonic(), shares))
        self.event.set()

    def wait_for(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return pred()


def _record(i: int) -> dict:
    return {"id": f"listen-{i}", "title": f"Article {i}", "text": f"Sentence {i} of the listen test.",
            "arrived": time.time()}


def _wait_listening(listener: ArticleListener, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not listener.listening and time.monotonic() < deadline:
        time.sleep(0.02)
    assert listener.listening


def test_a_notification_wakes_the_listener_at_once_and_says_when_it_is_a_share(pg_url):  # noqa: F811
    store = Store(pg_url)
    calls = Calls()
    listener = ArticleListener(conninfo_of(store), calls, fallback_s=30, safety_s=60).start()
    try:
        _wait_listening(listener)
        assert calls.wait_for(lambda: len(calls.times) >= 1, 5)  # the catch-up after connecting
        before = len(calls.times)
        t0 = time.monotonic()
        other = Store(pg_url)  # another process
        other.add_fetched([_record(1)])
        assert calls.wait_for(lambda: len(calls.times) > before, 2), "no wake-up within 2 s"
        assert calls.times[before][0] - t0 < 2 and calls.times[before][1] is False
        n = len(calls.times)
        other.share_article("listen-1", 4242)
        assert calls.wait_for(lambda: len(calls.times) > n, 2)
        assert calls.times[n][1] is True  # a share: the guild shares are read now too
        assert listener.notified >= 2
        other.close()
    finally:
        listener.stop()
        store.close()


def test_a_lost_connection_falls_back_to_polling_then_listens_again(pg_url):  # noqa: F811
    store = Store(pg_url)
    calls = Calls()
    listener = ArticleListener(conninfo_of(store), calls, fallback_s=0.2, safety_s=60, reconnect_s=1.5).start()
    try:
        _wait_listening(listener)
        pid = listener._conn.info.backend_pid  # noqa: SLF001 - the test cuts this very connection
        with psycopg.connect(conninfo_of(store), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert calls.wait_for(lambda: not listener.listening, 5)
        n = len(calls.times)
        assert calls.wait_for(lambda: len(calls.times) >= n + 3, 3)  # polling every 0.2 s meanwhile
        _wait_listening(listener)  # connected again
        assert listener._conn.info.backend_pid != pid  # noqa: SLF001
        before = len(calls.times)
        time.sleep(0.5)
        # listening again: no more polling (only a wake-up on a notification)
        assert len(calls.times) - before <= 1
        other = Store(pg_url)
        other.add_fetched([_record(2)])
        other.close()
        assert calls.wait_for(lambda: len(calls.times) > before + 0, 2)
    finally:
        listener.stop()
        store.close()


def test_the_listening_connection_keeps_alive_and_is_pinged_at_each_safety_sync(pg_url):  # noqa: F811
    """A connection that died silently is found: TCP keepalives on it, and a query at each safety sync."""
    store = Store(pg_url)
    calls = Calls()
    listener = ArticleListener(conninfo_of(store), calls, fallback_s=30, safety_s=0.3).start()
    try:
        _wait_listening(listener)
        params = listener._conn.info.get_parameters()  # noqa: SLF001
        assert params.get("keepalives") == "1" and params.get("keepalives_idle") == "30"
        assert calls.wait_for(lambda: listener.pings >= 2, 5)
        assert listener.listening
    finally:
        listener.stop()
        store.close()


def test_conninfo_of_a_store_url():
    class S:
        url = "postgresql+psycopg://u:p@h:5432/db?options=-csearch_path%3Dx"

    assert conninfo_of(S()) == "postgresql://u:p@h:5432/db?options=-csearch_path%3Dx"
    assert conninfo_of(object()) is None
