"""Start-up when the database server is briefly unreachable: the bot starts anyway.

:func:`open_store` opens the SQLite file directly (as ever), and a PostgreSQL URL through
:class:`ReconnectingStore`: when the server does not answer, the bot still starts and answers
extractive queries (they need no database); every store call meanwhile raises
:class:`StoreUnavailable` (a :class:`StoreError`: commands that need the store tell the member to try
again shortly, digest and feed ticks skip a beat), and a background thread retries every
``retry_every`` seconds, saying so in the log, until the store opens.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .db import Store, StoreError, StoreUnavailable, is_postgres_url, redact_url

log = logging.getLogger(__name__)


class ReconnectingStore:
    """A :class:`Store` that may not be open yet; attribute access goes to the real one once it is."""

    def __init__(self, target: str, *, wait_seconds: float = 120.0, retry_every: float = 3.0,
                 on_open: Callable[[Store], None] | None = None, **store_kwargs: Any) -> None:
        self._target = target
        self._shard_args = None
        self._kwargs = store_kwargs
        self._store: Store | None = None
        self._error: str | None = None
        self._stop = threading.Event()
        self._on_open = on_open
        self._thread: threading.Thread | None = None
        self.retry_every = float(retry_every)
        self.wait_seconds = float(wait_seconds)
        self.started = time.monotonic()
        self.attempts = 0
        if not self._try_open():
            log.warning("database %s unreachable at start-up (%s): starting without it and retrying every %g s; "
                        "extractive answers work meanwhile, digests, feeds and /digest wait for it",
                        redact_url(target), self._error, self.retry_every)
            self._thread = threading.Thread(target=self._retry, name="precis-db-retry", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ state
    @property
    def ready(self) -> bool:
        return self._store is not None

    @property
    def is_postgres(self) -> bool:
        return True

    @property
    def engine_name(self) -> str:
        return "postgresql"

    def describe(self) -> str:
        if self._store is not None:
            return self._store.describe()
        return f"PostgreSQL {redact_url(self._target)} (unreachable: {self._error}; retrying)"

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._store is None and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.05)
        return self._store is not None

    def _try_open(self) -> bool:
        self.attempts += 1
        try:
            store = Store(self._target, **self._kwargs)
        except StoreUnavailable as exc:
            self._error = str(exc.__cause__.orig if getattr(exc.__cause__, "orig", None) else exc).strip().splitlines()[0][:200]
            return False
        if self.__dict__.get("_shard_args") is not None:
            store.set_shards(*self._shard_args)
        self._store = store
        if self._on_open is not None and self._thread is not None:  # opened late: run what start-up skipped
            try:
                self._on_open(store)
            except Exception:  # noqa: BLE001 - the store is open; what was waiting on it logs its own trouble
                log.exception("database %s: start-up work after connecting failed", redact_url(self._target))
        return True

    def _retry(self) -> None:
        warned_long = False
        while not self._stop.wait(self.retry_every):
            if self._try_open():
                log.warning("database %s reachable after %.0f s (%d attempts): digests, feeds and /digest work again",
                            redact_url(self._target), time.monotonic() - self.started, self.attempts)
                return
            waited = time.monotonic() - self.started
            if waited > self.wait_seconds and not warned_long:
                warned_long = True
                log.error("database %s still unreachable after %.0f s (%s); still retrying every %.0f s",
                          redact_url(self._target), waited, self._error, self.retry_every)
            else:
                log.info("database %s still unreachable (%s); retrying", redact_url(self._target), self._error)

    def set_shards(self, shard_ids, shard_count: int = 1) -> None:
        self._shard_args = (None if shard_ids is None else list(shard_ids), shard_count)
        if self._store is not None:
            self._store.set_shards(*self._shard_args)

    # ------------------------------------------------------------------ delegation
    def __getattr__(self, name: str) -> Any:
        store = self.__dict__.get("_store")
        if store is None:
            raise StoreUnavailable(f"The database is not reachable yet ({self.__dict__.get('_error')}); "
                                   "try again shortly.")
        return getattr(store, name)

    def close(self) -> None:
        self._stop.set()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> "ReconnectingStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(settings, **kwargs: Any) -> Store | ReconnectingStore:
    """The store ``settings`` name: DATABASE_URL's PostgreSQL (waiting for it in the background when it
    is unreachable), else the SQLite file in DATA_DIR."""
    target = settings.database
    if is_postgres_url(target):
        return ReconnectingStore(str(target), wait_seconds=settings.database_wait_seconds, **kwargs)
    kwargs.pop("on_open", None)
    return Store(target if isinstance(target, Path) else Path(target), **kwargs)
