"""Per-host politeness across processes (review of issue 31): one request at a time per host and the
pause after it hold for every process on one PostgreSQL (the host's turn is claimed in the store,
``feed_hosts``), a slow host does not hold the other hosts up, and SQLite (one process) keeps the
fetcher's own gate. Pages and feeds are served on 127.0.0.1 under several host names (a resolver
sends them there); PostgreSQL from tests/pg_fixtures.py."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from bot.sources.fetch import HostGate
from bot.sources.service import Sources
from bot.store import Store
from tests.fakes.web import WebServer
from tests.pg_fixtures import pg_url, store_target  # noqa: F401 - fixtures
from tests.test_feed_fanout import site  # noqa: F401 - fixture
from tests.test_feed_once import _anywhere as _local
from tests.test_feed_once import _settings
from tests.test_sources import fetcher

PAUSE = 0.2


def _timed(site: WebServer, log: list[tuple[str, float, float]], delay: float) -> None:
    """Every path answers after ``delay`` s; (host, start, end) of each request in ``log``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        await asyncio.sleep(delay)
        log.append((request.host.split(":")[0], start, time.monotonic()))
        return web.Response(text="ok")

    for i in range(8):
        site.route(f"/p{i}", handler)


def _two_processes(target) -> tuple[Sources, Sources, Store, Store]:
    """Two Sources as two processes would have them: each its own store, fetcher and gate."""
    st1, st2 = Store(target), Store(target)
    s1 = Sources(_settings(), st1, fetcher=fetcher(resolver=_local, host_pause=PAUSE))
    s2 = Sources(_settings(), st2, fetcher=fetcher(resolver=_local, host_pause=PAUSE))
    return s1, s2, st1, st2


async def test_two_processes_on_one_postgresql_keep_one_request_at_a_time_per_host_and_the_pause(site, pg_url):  # noqa: F811
    log: list[tuple[str, float, float]] = []
    _timed(site, log, 0.05)
    s1, s2, st1, st2 = _two_processes(pg_url)
    url = lambda i: f"http://news.test:{site.port}/p{i}"  # noqa: E731
    await asyncio.gather(*(s1.fetcher.fetch(url(i)) for i in range(3)), *(s2.fetcher.fetch(url(i)) for i in range(3, 6)))
    runs = sorted((start, end) for _, start, end in log)
    assert len(runs) == 6
    gaps = [b_start - a_end for (_, a_end), (b_start, _) in zip(runs, runs[1:])]
    assert min(gaps) >= PAUSE - 0.01, gaps  # never two at once, and the pause between them, whichever process
    st1.close()
    st2.close()


async def test_a_slow_host_held_by_one_process_does_not_hold_up_another_host(site, pg_url):  # noqa: F811
    log: list[tuple[str, float, float]] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.Response(text="slow")

    async def quick(request: web.Request) -> web.StreamResponse:
        log.append((request.host.split(":")[0], time.monotonic(), time.monotonic()))
        return web.Response(text="quick")

    site.route("/slow", slow)
    site.route("/quick", quick)
    s1, s2, st1, st2 = _two_processes(pg_url)
    t0 = time.monotonic()
    slow_fetch = asyncio.ensure_future(s1.fetcher.fetch(f"http://slow.test:{site.port}/slow"))
    await asyncio.sleep(0.2)  # process 1 holds slow.test's turn
    got = await s2.fetcher.fetch(f"http://quick.test:{site.port}/quick")
    assert got.content == b"quick" and time.monotonic() - t0 < 0.9  # not behind the slow host
    waited = asyncio.ensure_future(s2.fetcher.fetch(f"http://slow.test:{site.port}/quick"))
    await slow_fetch
    await waited
    ends_slow = t0 + 1.0
    assert log[-1][0] == "slow.test" and log[-1][1] >= ends_slow + PAUSE - 0.05  # same host: after its turn and pause
    st1.close()
    st2.close()


def test_a_hosts_turn_is_one_holders_until_freed_or_its_hold_runs_out(store_target):  # noqa: F811
    store = Store(store_target)
    assert store.claim_host("a.test", "p1", hold=0.6) is None
    assert store.claim_host("a.test", "p2", hold=0.6) == 0.0  # in flight: its end is not known
    assert store.claim_host("b.test", "p2", hold=0.6) is None  # another host: free
    store.free_host("a.test", "p1", pause=0.3)
    wait = store.claim_host("a.test", "p2", hold=0.6)
    assert wait is not None and 0.1 < wait <= 0.3  # the rest of the pause
    time.sleep(wait + 0.02)
    assert store.claim_host("a.test", "p2", hold=0.6) is None
    store.free_host("a.test", "p1", pause=5)  # not p1's any more: changes nothing
    assert store.claim_host("a.test", "p1", hold=0.6) == 0.0
    time.sleep(0.65)  # p2 died holding it: its hold runs out
    assert store.claim_host("a.test", "p1", hold=0.6) is None
    store.close()


def test_sqlite_keeps_the_fetchers_own_gate(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    sources = Sources(_settings(), store, fetcher=fetcher(host_pause=PAUSE))
    assert sources.fetcher.gate.shared is None
    store.close()


async def test_an_unreachable_store_leaves_each_process_its_own_turns(caplog):
    class Down:
        calls = 0

        def claim(self, host):
            Down.calls += 1
            raise OSError("connection refused")

        def free(self, host):
            raise AssertionError("never claimed")

    gate = HostGate(0.0, shared=Down())
    with caplog.at_level(logging.WARNING, logger="bot.sources.fetch"):
        for _ in range(3):
            await gate.acquire("a.test")
            await gate.finish("a.test")
    assert Down.calls == 3
    assert sum("shared turns cannot be read" in r.message for r in caplog.records) == 1  # once per outage
