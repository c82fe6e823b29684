"""Operations (issue 33): Prometheus metrics, /healthz and /readyz on METRICS_PORT, through the real
client against the offline fake Discord, scraped over HTTP and parsed with prometheus-client's parser."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import BotMetrics, MetricsServer
from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401  (fixture)
from tests.pg_fixtures import pg_url  # noqa: F401  (fixture)
from tests.test_digest import QUAKE_A, RATES
from tests.test_discord_bot import _channel_option, start

KAZAKH_Q = "How many ethnic Kazakhs is China allowing to leave Xinjiang?"
UNANSWERABLE = "Who won the 1998 World Cup?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def metrics_app(fast_app_factory):
    return fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0,
                            metrics_port=free_port())


async def get(bot, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(bot.metrics_server.url + path)


async def scrape(bot) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one GET /metrics."""
    r = await get(bot, "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


async def wait_status(bot, path: str, status: int, timeout: float = 15.0) -> httpx.Response:
    t = time.monotonic()
    while True:
        r = await get(bot, path)
        if r.status_code == status or time.monotonic() - t > timeout:
            return r
        await asyncio.sleep(0.1)


async def test_commands_digests_and_feed_polls_are_counted_and_scraped_over_http(fake_discord, metrics_app):
    fake = fake_discord
    async with start(fake, metrics_app) as bot:
        assert bot.metrics_server is not None and bot.metrics_server.port == metrics_app.settings.metrics_port
        assert bot.metrics_server.host == "127.0.0.1"
        rec = await fake.send_command("summary", {"article": "Kazakhs"})
        await fake.wait_for_response(rec, timeout=20)
        rec = await fake.send_command("ask", {"question": KAZAKH_Q})
        [msg] = await fake.wait_for_response(rec, timeout=20)
        assert "2,000" in str(msg)
        rec = await fake.send_command("ask", {"question": UNANSWERABLE})  # not in the articles: abstains
        await fake.wait_for_response(rec, timeout=20)
        rec = await fake.send_command("summary", {"article": "Kazakhs", "topic": "Japan"})  # the member's mistake
        await fake.wait_for_response(rec)
        held = []
        while bot.pool.admits("ask"):  # the cheap lane full
            held.append(bot.pool.reserve("ask"))
        rec = await fake.send_command("ask", {"question": KAZAKH_Q})  # busy
        [msg] = await fake.wait_for_response(rec)
        assert "busy" in msg["content"]
        for slot in held:
            slot.release()
        rec = await fake.send_command("about")
        await fake.wait_for_response(rec)

        # a digest: subscribe, new articles, one tick posts it
        rec = await fake.send_command("digest", [_channel_option(fake), {"name": "every", "type": P.OPT_INTEGER,
                                                                         "value": 5}],
                                      subcommand="subscribe", permissions=P.MODERATOR_PERMISSIONS)
        await fake.wait_for_response(rec)
        [sub] = bot.store.subscriptions()
        bot.app.add_articles([QUAKE_A, RATES])
        bot.store.set_next_due(sub.id, time.time() - 1)
        assert len((await bot.digest_tick()).posted) == 1

        # a feed that cannot be fetched: one failed poll, and it is the stalest feed
        feed, _ = bot.store.add_feed(fake.guild_id, "http://127.0.0.1:1/feed.xml", None, time.time() - 100)
        assert (await bot.sources.poll(feed)).status == "error"

        m = await scrape(bot)
        interactions = {(dict(k[1])["command"], dict(k[1])["outcome"]): v for k, v in m.items()
                        if k[0] == "precis_interactions_total"}
        assert interactions == {("summary", "answered"): 1, ("ask", "answered"): 1, ("ask", "abstained"): 1,
                                ("summary", "refused"): 1, ("ask", "busy"): 1, ("about", "answered"): 1,
                                ("digest subscribe", "answered"): 1}
        assert value(m, "precis_interaction_ack_seconds_count", command="ask") == 3
        assert value(m, "precis_interaction_answer_seconds_count", command="ask") == 2  # answered + abstained
        assert value(m, "precis_interaction_answer_seconds_count", command="summary") == 1
        assert value(m, "precis_interaction_ack_seconds_bucket", command="summary", le="3.0") == 2  # within 3 s
        assert 0 < value(m, "precis_interaction_answer_seconds_sum", command="summary") < 20
        assert value(m, "precis_queue_wait_seconds_count", lane="cheap") >= 3  # /summary and two /ask
        assert value(m, "precis_queue_wait_seconds_count", lane="model") == 0
        assert value(m, "precis_queue_jobs", lane="cheap") == 0
        assert value(m, "precis_digests_total", result="posted") == 1
        assert value(m, "precis_digests_total", result="failed") == 0
        assert value(m, "precis_feed_polls_total", result="error") == 1
        assert value(m, "precis_feed_polls_total", result="ok") == 0
        assert value(m, "precis_feeds", state="failing") == 1
        assert 99 <= value(m, "precis_feed_last_success_age_seconds") < 200
        assert value(m, "precis_corpus_articles") == len(bot.app.snapshot.index.articles) == 4
        assert value(m, "precis_model_up") == 1 and value(m, "precis_model_loaded") == 0  # loads on first use
        assert value(m, "precis_database_up") == 1 and value(m, "precis_discord_connected") == 1
        assert value(m, "process_resident_memory_bytes") > 10_000_000
        # no label with an unbounded value: nothing names a guild, user, channel or URL
        labels = {k for key in m for k, _ in key[1]}
        assert labels <= {"command", "outcome", "lane", "result", "state", "le"}

        health = await get(bot, "/healthz")
        assert health.status_code == 200 and health.text.strip() == "ok"
        ready = await get(bot, "/readyz")
        assert ready.status_code == 200 and ready.text.strip() == "ready"
        assert (await get(bot, "/nothing")).status_code == 404
        url = bot.metrics_server.url
    with pytest.raises(httpx.ConnectError):  # close() stopped the server
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(url + "/healthz")


async def test_readyz_waits_for_the_corpus(fake_discord, settings_factory, memo_embedder):
    from bot.app import Precis

    app = Precis(settings_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False,
                                  metrics_port=free_port()), embedder=memo_embedder)  # not loaded yet
    async with start(fake_discord, app) as bot:
        r = await get(bot, "/readyz")
        assert r.status_code == 503 and r.text.strip() == "not ready: corpus not loaded"
        assert (await get(bot, "/healthz")).status_code == 200
        m = await scrape(bot)
        assert value(m, "precis_corpus_loaded") == 0 and value(m, "precis_corpus_articles") == 0
        await asyncio.to_thread(app.load, progress=False)
        r = await get(bot, "/readyz")
        assert r.status_code == 200 and r.text.strip() == "ready"
        m = await scrape(bot)
        assert value(m, "precis_corpus_loaded") == 1 and value(m, "precis_corpus_articles") == 2
        # a dropped gateway connection: not ready until discord.py has resumed it
        bot.dispatch("disconnect")
        await asyncio.sleep(0.05)
        r = await get(bot, "/readyz")
        assert r.status_code == 503 and "discord not connected" in r.text
        bot.dispatch("resumed")
        await asyncio.sleep(0.05)
        assert (await get(bot, "/readyz")).status_code == 200


async def test_readyz_follows_postgresql_unreachable_back_stopped_and_back(fake_discord, pg_url,  # noqa: F811
                                                                           fast_app_factory):
    from sqlalchemy.engine import make_url

    from tests.test_store_startup import Forwarder

    real = make_url(pg_url)
    fwd = Forwarder(real.port or 5432)  # refuses connections until opened
    url = pg_url.replace(f":{real.port or 5432}/", f":{fwd.port}/", 1)
    app = fast_app_factory(discord_dev_guild_id=P.DEFAULT_GUILD_ID, watch_corpus=False, cooldown_seconds=0,
                           database_url=url, metrics_port=free_port())
    try:
        async with start(fake_discord, app) as bot:
            bot.store.retry_every = 0.2
            bot.metrics.database.ttl = 0.1
            r = await get(bot, "/readyz")
            assert r.status_code == 503 and r.text.startswith("not ready: database unreachable (")
            assert "corpus" not in r.text and "discord" not in r.text
            assert value(await scrape(bot), "precis_database_up") == 0
            assert (await get(bot, "/healthz")).status_code == 200  # alive all the same

            fwd.open()  # the server answers
            r = await wait_status(bot, "/readyz", 200)
            assert r.status_code == 200 and r.text.strip() == "ready"
            assert value(await scrape(bot), "precis_database_up") == 1

            stop_forwarding(fwd)  # the server stops: the pooled connections break, new ones are refused
            r = await wait_status(bot, "/readyz", 503)
            assert r.status_code == 503 and "database unreachable" in r.text

            fwd.open()  # and comes back
            r = await wait_status(bot, "/readyz", 200)
            assert r.status_code == 200
    finally:
        fwd.close()


def stop_forwarding(fwd) -> None:
    """The Forwarder's port refuses connections again and its open connections end (it can open again)."""
    async def stop():
        fwd.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(stop(), fwd.loop).result(5)
    fwd.server = None


def test_healthz_says_when_the_event_loop_stops_turning(sample_app):
    m = BotMetrics(sample_app, None, connected=lambda: False, stale_after=0.2)
    server = MetricsServer(m, "127.0.0.1", 0).start()
    try:
        assert server.port != 0
        with httpx.Client(timeout=5) as client:
            r = client.get(server.url + "/healthz")
            assert r.status_code == 503 and "not started" in r.text
            m.beat()
            assert client.get(server.url + "/healthz").status_code == 200
            time.sleep(0.4)  # no beat since: the loop is stuck
            r = client.get(server.url + "/healthz")
            assert r.status_code == 503 and "has not turned" in r.text
            r = client.get(server.url + "/readyz")
            assert r.status_code == 503 and r.text.strip() == "not ready: discord not connected"
            m.stopping = True  # a stop under way: load balancers drain this one
            assert client.get(server.url + "/readyz").text.strip() == "not ready: stopping; discord not connected"
            # the metrics still answer while the loop is stuck (served from a thread of their own)
            assert client.get(server.url + "/metrics").status_code == 200
    finally:
        server.stop()
        m.close()


def test_a_port_in_use_is_refused_at_start(sample_app):
    taken = MetricsServer(BotMetrics(sample_app), "127.0.0.1", 0).start()
    try:
        with pytest.raises(OSError):
            MetricsServer(BotMetrics(sample_app), "127.0.0.1", taken.port).start()
    finally:
        taken.stop()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_metrics_host_is_served(sample_app):
    server = MetricsServer(BotMetrics(sample_app, None, connected=lambda: False), "::1", 0).start()
    try:
        assert server.url.startswith("http://[::1]:")
        assert httpx.get(f"{server.url}/metrics", timeout=5).status_code == 200
    finally:
        server.stop()


def test_each_bot_has_its_own_registry(sample_app):
    a, b = BotMetrics(sample_app), BotMetrics(sample_app)
    a.interaction("ask", "answered", ack=0.01, answer=0.2)
    assert a.registry.get_sample_value("precis_interactions_total", {"command": "ask", "outcome": "answered"}) == 1
    assert b.registry.get_sample_value("precis_interactions_total", {"command": "ask", "outcome": "answered"}) is None
    assert a.registry.get_sample_value("precis_interaction_answer_seconds_count", {"command": "ask"}) == 1
