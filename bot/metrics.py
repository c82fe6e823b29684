"""Operations: Prometheus metrics, ``/healthz`` and ``/readyz`` on METRICS_PORT (docs/operations.md).

One :class:`BotMetrics` per bot (its own ``CollectorRegistry``, so several bots can run in one
process, as the tests do). The bot counts what happens (interactions, digests, feed polls, queue
waits); what *is* (articles in the corpus, the model, the database, the stalest feed) is read at
scrape time. No label holds an unbounded value: no guild, user, channel or URL.

:class:`MetricsServer` serves the registry and the two health endpoints from the standard library's
``ThreadingHTTPServer`` (prometheus-client's ``MetricsHandler`` answers ``/metrics``) in a thread of
its own, so a scrape still answers while the event loop is stuck - and ``/healthz`` says it is:

* ``/healthz``: 200 while the event loop turns (the bot's loop beats :meth:`BotMetrics.beat` every
  second), 503 once the last beat is older than ``stale_after`` seconds (or before the first);
* ``/readyz``: 200 once the corpus is loaded, Discord is connected and the database answers (and the
  bot is not stopping); 503 otherwise, the body naming what is not ready (``not ready: database
  unreachable (...)``). The database is asked (a small read of the feed rows, off the event loop, at
  most ``timeout`` seconds waited for) at most once per ``ttl`` seconds; that read also gives the
  feed gauges.

Nothing here knows Discord: the bot passes what to read (``connected``) and what to count.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import MetricsHandler

log = logging.getLogger(__name__)

# Seconds, for the time to acknowledge (Discord's deadline is 3 s) and to answer (a model may take a minute).
INTERACTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

OUTCOMES = ("answered", "abstained", "busy", "cooldown", "refused", "failed")
DIGEST_RESULTS = ("posted", "recovered", "skipped", "failed")
POLL_RESULTS = {"ok": "ok", "not-modified": "not_modified", "error": "error"}


def corpus_loaded(app: Any) -> bool:
    """``Precis.load`` has run at least once (``Precis.corpus_loaded``)."""
    return bool(getattr(app, "corpus_loaded", False))


@dataclass
class DatabaseState:
    ok: bool
    error: str | None = None
    at: float = 0.0  # time.monotonic() when asked
    feeds: list = field(default_factory=list)  # the store's feed rows (bot.store.Feed)
    wall: float = 0.0  # time.time() when asked (feed ages)


class DatabaseProbe:
    """Whether the database answers: one small read (the feed rows) in a thread of its own, at most
    ``timeout`` seconds waited for, the answer kept ``ttl`` seconds. A read still running when asked
    again is waited for, not doubled."""

    def __init__(self, store: Any, *, ttl: float = 5.0, timeout: float = 2.0) -> None:
        self.store = store
        self.ttl = float(ttl)
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._last: DatabaseState | None = None
        self._running: Future | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="precis-metrics-db")

    def _ask(self) -> DatabaseState:
        try:
            feeds = self.store.feeds()
        except Exception as exc:  # noqa: BLE001 - any failure: the database does not answer
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
            return DatabaseState(False, text, time.monotonic(), wall=time.time())
        return DatabaseState(True, None, time.monotonic(), list(feeds), time.time())

    def check(self) -> DatabaseState:
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.at < self.ttl:
                return last
            if self._running is None or self._running.done():
                try:
                    self._running = self._executor.submit(self._ask)
                except RuntimeError:  # shut down
                    return DatabaseState(False, "closed", time.monotonic())
            running = self._running
        try:
            state = running.result(timeout=self.timeout)
        except FutureTimeout:
            return DatabaseState(False, f"no answer within {self.timeout:g} s", time.monotonic())
        with self._lock:
            if self._last is None or state.at >= self._last.at:
                self._last = state
        return state

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _StateCollector:
    """The gauges read at scrape time."""

    def __init__(self, metrics: BotMetrics) -> None:
        self.m = metrics

    def describe(self) -> Iterable[GaugeMetricFamily]:  # names only: registering asks nothing of the app
        return [GaugeMetricFamily(n, d) for n, d, *_ in self.m._gauge_docs()]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self.m._collect_state()


class BotMetrics:
    """What one bot counts and reports, on its own registry."""

    def __init__(self, app: Any, store: Any = None, *, connected: Callable[[], bool] | None = None,
                 stale_after: float = 10.0, db_ttl: float = 5.0, db_timeout: float = 2.0) -> None:
        self.app = app
        self.store = store
        self.connected = connected or (lambda: True)
        self.stale_after = float(stale_after)
        self.stopping = False  # set when the bot starts to stop: /readyz says so (load balancers drain it)
        self._beat: float | None = None
        self._lanes: dict[str, Any] = {}
        self.database = DatabaseProbe(store, ttl=db_ttl, timeout=db_timeout) if store is not None else None
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        self.interactions = Counter(
            "precis_interactions", "Slash commands by command and outcome (answered, abstained, busy, cooldown, "
            "refused, failed)", ["command", "outcome"], registry=r)
        self.ack_seconds = Histogram(
            "precis_interaction_ack_seconds", "Seconds from receiving a command to its first response "
            "(the defer, or the answer itself)", ["command"], buckets=INTERACTION_BUCKETS, registry=r)
        self.answer_seconds = Histogram(
            "precis_interaction_answer_seconds", "Seconds from receiving a command to its answer (answered or "
            "abstained)", ["command"], buckets=INTERACTION_BUCKETS, registry=r)
        self.queue_wait = Histogram(
            "precis_queue_wait_seconds", "Seconds a member's job waited for a worker, by lane (cheap, model)",
            ["lane"], buckets=QUEUE_BUCKETS, registry=r)
        self.digests = Counter(
            "precis_digests", "Digest posts by result: posted, recovered (found already sent), skipped, failed",
            ["result"], registry=r)
        self.feed_polls = Counter(
            "precis_feed_polls", "Feed polls by result: ok, not_modified, error", ["result"], registry=r)
        for result in DIGEST_RESULTS:
            self.digests.labels(result)
        for result in POLL_RESULTS.values():
            self.feed_polls.labels(result)
        r.register(_StateCollector(self))

    # ------------------------------------------------------------ counting (any thread)
    def interaction(self, command: str, outcome: str, *, ack: float | None = None,
                    answer: float | None = None) -> None:
        self.interactions.labels(command, outcome).inc()
        if ack is not None:
            self.ack_seconds.labels(command).observe(max(0.0, ack))
        if answer is not None and outcome in ("answered", "abstained"):
            self.answer_seconds.labels(command).observe(max(0.0, answer))

    def watch_lane(self, lane: str, pool: Any) -> None:
        """Observe the queue wait of ``pool``'s jobs (a :class:`WorkerPool`'s ``on_wait``) as ``lane``."""
        hist = self.queue_wait.labels(lane)
        pool.on_wait = hist.observe
        self._lanes[lane] = pool

    def digest_tick(self, result: Any) -> None:
        """A :class:`~bot.engines.digest.TickResult`: its posts by result."""
        for name in DIGEST_RESULTS:
            n = len(getattr(result, name, ()) or ())
            if n:
                self.digests.labels(name).inc(n)

    def feed_polled(self, result: Any) -> None:
        """A :class:`~bot.sources.service.PollResult`."""
        self.feed_polls.labels(POLL_RESULTS.get(getattr(result, "status", ""), "error")).inc()

    # ------------------------------------------------------------ health
    def beat(self) -> None:
        """The event loop turned (called from the loop about every second)."""
        self._beat = time.monotonic()

    def health(self) -> tuple[bool, str]:
        if self._beat is None:
            return False, "not started: the event loop has not beaten yet"
        age = time.monotonic() - self._beat
        if age > self.stale_after:
            return False, f"unhealthy: the event loop has not turned for {age:.0f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        problems = []
        if self.stopping:
            problems.append("stopping")
        if not corpus_loaded(self.app):
            problems.append("corpus not loaded")
        try:
            connected = bool(self.connected())
        except Exception:  # noqa: BLE001
            connected = False
        if not connected:
            problems.append("discord not connected")
        if self.database is not None:
            db = self.database.check()
            if not db.ok:
                problems.append(f"database unreachable ({db.error})")
        if problems:
            return False, "not ready: " + "; ".join(problems)
        return True, "ready"

    # ------------------------------------------------------------ scrape-time gauges
    @staticmethod
    def _gauge_docs() -> list[tuple[str, str]]:
        return [
            ("precis_corpus_articles", "Articles in the corpus (the index answers from)"),
            ("precis_corpus_loaded", "1 once the corpus was loaded"),
            ("precis_model_up", "Summary model backend: 0 when it failed to load or its server's last call "
             "failed, else 1"),
            ("precis_model_loaded", "1 once the summary model is loaded (it loads on first use)"),
            ("precis_database_up", "1 when the database answered the last probe"),
            ("precis_discord_connected", "1 once connected to Discord (ready)"),
            ("precis_feeds", "Feeds by state: ok, failing, disabled, pending (not polled yet)"),
            ("precis_feed_last_success_age_seconds", "Seconds since the stalest enabled feed last polled "
             "successfully (since it was added, if never)"),
            ("precis_queue_jobs", "Jobs running or waiting, by lane"),
            ("precis_event_loop_heartbeat_age_seconds", "Seconds since the event loop last beat"),
        ]

    def _collect_state(self) -> list[GaugeMetricFamily]:
        docs = dict(self._gauge_docs())

        def gauge(name: str, value: float, labels: Mapping[str, str] | None = None) -> GaugeMetricFamily:
            if labels:
                g = GaugeMetricFamily(name, docs[name], labels=list(labels))
                g.add_metric(list(labels.values()), value)
                return g
            return GaugeMetricFamily(name, docs[name], value=value)

        out = []
        app = self.app
        try:
            out.append(gauge("precis_corpus_articles", len(app.snapshot.index.articles)))
        except Exception:  # noqa: BLE001 - a scrape never fails on one gauge
            pass
        out.append(gauge("precis_corpus_loaded", 1 if corpus_loaded(app) else 0))
        up, loaded = model_state(app)
        out.append(gauge("precis_model_up", up))
        out.append(gauge("precis_model_loaded", loaded))
        try:
            out.append(gauge("precis_discord_connected", 1 if self.connected() else 0))
        except Exception:  # noqa: BLE001
            out.append(gauge("precis_discord_connected", 0))
        if self.database is not None:
            db = self.database.check()
            out.append(gauge("precis_database_up", 1 if db.ok else 0))
            if db.ok:
                out.extend(feed_gauges(db.feeds, db.wall, docs))
        if self._lanes:
            q = GaugeMetricFamily("precis_queue_jobs", docs["precis_queue_jobs"], labels=["lane"])
            for lane, pool in self._lanes.items():
                q.add_metric([lane], getattr(pool, "pending", 0))
            out.append(q)
        if self._beat is not None:
            out.append(gauge("precis_event_loop_heartbeat_age_seconds", time.monotonic() - self._beat))
        return out

    def close(self) -> None:
        if self.database is not None:
            self.database.close()


def model_state(app: Any) -> tuple[int, int]:
    """(up, loaded) of the summary model, as /about tells it: a slot that failed to load is down; a
    loaded remote backend whose last call failed after its last success is down."""
    gen = getattr(app, "generator", None)
    if gen is None:
        return 0, 0
    if getattr(gen, "error", None):
        return 0, 0
    if not getattr(gen, "loaded", False):
        return 1, 0  # loads on first use: nothing says it is down
    model = gen.peek() if hasattr(gen, "peek") else None
    err_at, ok_at = getattr(model, "last_error_at", None), getattr(model, "last_ok", None)
    if isinstance(err_at, (int, float)) and err_at and (not ok_at or err_at >= ok_at):
        return 0, 1
    return 1, 1


def feed_gauges(feeds: list, now: float, docs: Mapping[str, str]) -> list[GaugeMetricFamily]:
    states = {"ok": 0, "failing": 0, "disabled": 0, "pending": 0}
    stalest: float | None = None
    for f in feeds:
        if f.disabled:
            states["disabled"] += 1
            continue
        states["failing" if f.failures else ("ok" if f.last_success else "pending")] += 1
        age = max(0.0, now - (f.last_success or f.added_at or now))
        stalest = age if stalest is None else max(stalest, age)
    g = GaugeMetricFamily("precis_feeds", docs["precis_feeds"], labels=["state"])
    for state, n in states.items():
        g.add_metric([state], n)
    out = [g]
    if stalest is not None:
        out.append(GaugeMetricFamily("precis_feed_last_success_age_seconds",
                                     docs["precis_feed_last_success_age_seconds"], value=stalest))
    return out


# ---------------------------------------------------------------- the HTTP server


def _handler(metrics: BotMetrics) -> type:
    class Handler(MetricsHandler):
        registry = metrics.registry

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = urlsplit(self.path).path.rstrip("/") or "/"
            if path == "/metrics":
                try:
                    return super().do_GET()
                except Exception:  # noqa: BLE001 - a collector failed: say so, keep serving
                    log.exception("metrics: scrape failed")
                    return self._text(500, "scrape failed; see the log")
            if path == "/healthz":
                ok, text = metrics.health()
            elif path == "/readyz":
                ok, text = metrics.readiness()
            elif path == "/":
                return self._text(200, "Precis: /metrics /healthz /readyz")
            else:
                return self._text(404, "not found: /metrics /healthz /readyz")
            self._text(200 if ok else 503, text)

        def _text(self, status: int, text: str) -> None:
            body = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler


class MetricsServer:
    """``/metrics``, ``/healthz``, ``/readyz`` on ``host:port`` (0: any free port), from a thread."""

    def __init__(self, metrics: BotMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = int(port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Bind (raises OSError when the port is taken) and serve in a daemon thread."""
        family = socket.getaddrinfo(self.host or None, self.port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("MetricsHTTPServer", (ThreadingHTTPServer,), {"address_family": family})  # IPv6 too
        server = server_class((self.host, self.port), _handler(self.metrics))
        server.daemon_threads = True
        self._server = server
        self.host, self.port = server.server_address[:2]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="precis-metrics-http", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
