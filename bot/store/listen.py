"""PostgreSQL LISTEN for what other processes add: new feed and link articles and guild shares.

Every process that writes them sends ``NOTIFY precis_articles`` in the same transaction
(:meth:`Store.add_fetched`, :meth:`Store.share_article`). :class:`ArticleListener` keeps one connection
listening on that channel in a daemon thread and calls ``on_change`` when a notification arrives, so
another process's article joins this one's corpus within a fraction of a second. ``on_change`` also runs
once after every (re)connection (to catch up on what came while not listening) and every
``SAFETY_SYNC_S`` seconds. When the connection is lost, polling every ``fallback_s`` takes over until
the listener is connected again (it retries every ``RECONNECT_S``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

CHANNEL = "precis_articles"
SAFETY_SYNC_S = 30.0  # a listening process still looks this often (a notification is never lost to it, but cheap)
# libpq's TCP keepalive settings for the listening connection (seconds; tcp_user_timeout in ms)
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
             "tcp_user_timeout": 30_000}
RECONNECT_S = 10.0  # while the listening connection is down: try again this often, polling meanwhile


def conninfo_of(store) -> str | None:
    """The libpq URL of a PostgreSQL store (a :class:`Store`, or a ReconnectingStore not open yet)."""
    url = getattr(store, "_target", None) or getattr(store, "url", None)
    if not url:
        return None
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", str(url))


class ArticleListener:
    """Call ``on_change(shares)`` when another process adds articles or shares (LISTEN; ``shares``: a
    share was among them), or every ``fallback_s`` while it cannot listen. ``conninfo``: a libpq connection string or ``postgresql://`` URL."""

    def __init__(self, conninfo: str, on_change: Callable[[bool], object], *, fallback_s: float = 2.0,
                 safety_s: float = SAFETY_SYNC_S, reconnect_s: float = RECONNECT_S) -> None:
        self.conninfo = conninfo
        self.on_change = on_change
        self.fallback_s = fallback_s
        self.safety_s = safety_s
        self.reconnect_s = reconnect_s
        self.listening = False  # True while a LISTEN connection is open
        self.notified = 0  # notifications received (tests, metrics)
        self.pings = 0  # safety-sync pings of the listening connection
        self._stop = threading.Event()
        self._conn = None
        self._thread: threading.Thread | None = None

    def start(self) -> ArticleListener:
        self._thread = threading.Thread(target=self._run, name="precis-listen", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.cancel()  # wake a blocking wait
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _changed(self, shares: bool = False) -> None:
        from .db import StoreError

        try:
            self.on_change(shares)
        except StoreError as exc:  # the database is away: the next change or poll tries again
            log.debug("listen: catching up failed: %s", exc)
        except Exception:  # noqa: BLE001 - keep listening; the next change or sync tries again
            log.exception("listen: catching up on other processes' articles failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - the connection was lost or never made
                if self._stop.is_set():
                    break
                log.warning("listen: not listening for other processes' articles (%s: %s); polling every %.0f s",
                            type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "", self.fallback_s)
            finally:
                self.listening = False
                self._conn = None
            self._poll_until(time.monotonic() + self.reconnect_s)

    def _listen(self) -> None:
        import psycopg

        # TCP keepalives and a ping at each safety sync: a connection that died silently (a NAT or firewall
        # dropping an idle flow) is found within about a minute, not when the operating system gives up
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5, **KEEPALIVE) as conn:
            self._conn = conn
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            log.info("listen: following other processes' articles by LISTEN %s", CHANNEL)
            self._changed()  # what came while this process was not listening
            last = time.monotonic()
            while not self._stop.is_set():
                payloads = [n.payload for n in conn.notifies(timeout=min(1.0, self.safety_s), stop_after=1)]
                if payloads:  # and whatever else is queued already
                    payloads += [n.payload for n in conn.notifies(timeout=0.05)]
                    self.notified += len(payloads)
                if payloads or time.monotonic() - last >= self.safety_s:
                    if not payloads:
                        conn.execute("SELECT 1")  # raises on a dead connection: reconnect, polling meanwhile
                        self.pings += 1
                    self._changed(shares="share" in payloads)
                    last = time.monotonic()

    def _poll_until(self, until: float) -> None:
        """The fallback: poll every ``fallback_s`` until ``until`` (then the listener reconnects)."""
        while not self._stop.is_set() and time.monotonic() < until:
            if self._stop.wait(self.fallback_s):
                break
            self._changed()
