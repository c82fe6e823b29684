"""Per-host politeness across processes (review of issue 31): one request at a time per host and the
pause after it hold for every process on one PostgreSQL (the host's turn is claimed in the store,
``feed_hosts``), a slow host does not hold the other hosts up, and SQLite (one process) keeps the
fetcher's own gate. Pages and feeds are served on 127.0.0.1 under several host names (a resolver
sends them there); PostgreSQL from tests/pg_fixtures.py."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from aiohttp import web

from bot.sources import fetch
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


def _two_processes(target, pause: float = PAUSE) -> tuple[Sources, Sources, Store, Store]:
    """Two Sources as two processes would have them: each its own store, fetcher and gate."""
    st1, st2 = Store(target), Store(target)
    s1 = Sources(_settings(), st1, fetcher=fetcher(resolver=_local, host_pause=pause))
    s2 = Sources(_settings(), st2, fetcher=fetcher(resolver=_local, host_pause=pause))
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
    assert Down.calls == 1  # not asked again for SHARED_RETRY_S (below)
    assert sum("shared turns cannot be read" in r.message for r in caplog.records) == 1  # once per outage


async def test_a_store_that_hangs_costs_one_timeout_per_retry_period_not_one_per_request(monkeypatch, caplog):
    """A database that does not answer (a partition): a claim fails only after the connect timeout.
    After one failure the gate keeps to this process's own turns for SHARED_RETRY_S, then asks again;
    the outage is logged once, its end once."""
    monkeypatch.setattr(fetch, "SHARED_RETRY_S", 0.5)

    class Hung:
        calls, up = 0, False

        def claim(self, host):
            Hung.calls += 1
            if Hung.up:
                return None
            time.sleep(0.3)  # the connect timeout
            raise OSError("timeout expired")

        def free(self, host):
            pass

    gate = HostGate(0.0, shared=Hung())
    with caplog.at_level(logging.WARNING, logger="bot.sources.fetch"):
        t0 = time.monotonic()
        for _ in range(5):
            await gate.acquire("a.test")
            await gate.finish("a.test")
        assert time.monotonic() - t0 < 0.45 and Hung.calls == 1  # one timeout paid, not five
        await asyncio.sleep(0.5)
        await gate.acquire("a.test")  # the period is over: asked again (still down)
        await gate.finish("a.test")
        assert Hung.calls == 2
        await asyncio.sleep(0.5)
        Hung.up = True
        await gate.acquire("a.test")
        await gate.finish("a.test")
        assert Hung.calls == 3 and "a.test" not in gate._held  # noqa: SLF001 - taken, and freed at the end
    messages = [r.message for r in caplog.records]
    assert sum("cannot be read" in m for m in messages) == 1 and sum("read again" in m for m in messages) == 1


class _Slow:
    """Shared turns whose claim wins after ``claim_s`` and whose free takes ``free_s`` (a slow database)."""

    def __init__(self, claim_s: float = 0.2, free_s: float = 0.5) -> None:
        self.claim_s, self.free_s = claim_s, free_s
        self.freed: list[str] = []  # the threads free ran on

    def claim(self, host):
        time.sleep(self.claim_s)
        return None

    def free(self, host):
        time.sleep(self.free_s)
        self.freed.append(threading.current_thread().name)


async def test_a_turn_won_after_its_waiter_was_cancelled_is_given_back_off_the_event_loop():
    shared = _Slow()
    gate = HostGate(0.0, shared=shared)
    task = asyncio.ensure_future(gate.acquire("a.test"))
    await asyncio.sleep(0.05)
    task.cancel()  # while the claim is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    worst = 0.0
    for _ in range(80):  # the loop keeps running while the turn is given back (0.5 s)
        t = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - t)
    assert worst < 0.2, worst
    assert len(shared.freed) == 1 and shared.freed[0] != threading.main_thread().name


def test_a_turn_won_after_the_loop_shut_down_is_given_back():
    """``asyncio.run`` returning with a claim in flight cancels its waiter; the worker thread, whose
    claim then wins, gives the turn back (nobody else will: every process would wait for its hold)."""
    shared = _Slow(free_s=0.05)

    async def stop_mid_claim():
        asyncio.ensure_future(HostGate(0.0, shared=shared).acquire("b.test"))
        await asyncio.sleep(0.05)

    asyncio.run(stop_mid_claim())
    deadline = time.monotonic() + 2.0
    while not shared.freed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(shared.freed) == 1


async def test_a_cancel_racing_the_claims_end_gives_the_turn_back_once():
    """Cancelled just as the claim returns (the worker may or may not have handed the turn over yet):
    given back exactly once, never kept."""
    for _ in range(20):
        loop = asyncio.get_running_loop()
        box: dict[str, asyncio.Task] = {}

        class Racy(_Slow):
            def claim(self, host):
                time.sleep(0.01)
                loop.call_soon_threadsafe(box["task"].cancel)
                return None

        shared = Racy(free_s=0.0)
        gate = HostGate(0.0, shared=shared)
        box["task"] = asyncio.ensure_future(gate.acquire("c.test"))
        try:
            await box["task"]
        except asyncio.CancelledError:
            pass
        else:  # the acquire finished first: the turn is held and ended by finish
            await gate.finish("c.test")
        await asyncio.sleep(0.05)
        assert len(shared.freed) == 1 and not gate._held  # noqa: SLF001


async def test_a_process_waiting_for_a_host_another_holds_backs_off(monkeypatch):
    """While another process's request is in flight (claim says 0.0: its end is not known) the waiter
    asks again after 50 ms, then twice as long each time up to the pause, not every 50 ms; it still
    goes as soon as the turn is free plus the pause."""

    class Other:
        calls = 0
        until = time.monotonic() + 1.5  # the other process's request ends then

        def claim(self, host):
            Other.calls += 1
            left = Other.until + 0.5 - time.monotonic()  # its end, then the pause
            if time.monotonic() < Other.until:
                return 0.0
            return None if left <= 0 else left

        def free(self, host):
            pass

    gate = HostGate(0.5, shared=Other())
    await gate.acquire("a.test")
    done = time.monotonic()
    await gate.finish("a.test")
    assert Other.calls <= 9, Other.calls  # every 50 ms: about 32
    assert Other.until + 0.5 - 0.01 <= done < Other.until + 0.5 + 0.15


async def test_a_waiting_process_claims_seldom_while_another_holds_the_host(site, pg_url):  # noqa: F811
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.5)
        return web.Response(text="slow")

    site.route("/slow", slow)
    s1, s2, st1, st2 = _two_processes(pg_url, pause=1.0)
    claims = []
    claim = s2.fetcher.gate.shared.claim
    s2.fetcher.gate.shared.claim = lambda host: claims.append(host) or claim(host)
    first = asyncio.ensure_future(s1.fetcher.fetch(f"http://slow.test:{site.port}/slow"))
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    await s2.fetcher.fetch(f"http://slow.test:{site.port}/slow")
    await first
    assert len(claims) <= 10, len(claims)  # every 50 ms: about 30
    assert time.monotonic() - t0 >= 1.4 + 1.0  # after the other's request and the pause
    st1.close()
    st2.close()


async def test_a_cancel_while_the_turn_waits_to_be_freed_still_frees_it():
    """``finish`` frees the shared turn in a worker thread; a cancel while that free waits for a free worker
    (a slow store holds them) must not drop it: the row would keep this process as holder ~26 s, making
    every process wait, and nothing here would free it again."""
    import concurrent.futures
    import threading

    class Turns:
        freed = 0

        def claim(self, host):
            return None

        def free(self, host):
            Turns.freed += 1

    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    gate = HostGate(0.01, Turns())
    await gate.acquire("h.test")
    busy = threading.Event()
    blocker = loop.run_in_executor(None, busy.wait)  # the only worker is taken
    task = asyncio.create_task(gate.finish("h.test"))
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    busy.set()
    await blocker
    await asyncio.sleep(0.1)
    assert Turns.freed == 1
