"""Watch CORPUS_PATH and reload when corpus files change (no restart needed).

:func:`watch_corpus` waits for changes with ``watchfiles.awatch`` (debounced,
so a file being written in several steps triggers one reload) and calls
``reload`` — in the bot, ``Precis.load`` in the worker pool. Reloading only
ever adds articles: a deleted file keeps its articles, and a garbled one is
skipped with its reason logged, so nothing already loaded is lost. If the
watched path disappears, the watcher waits for it to come back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable

from .loader import SUFFIXES

log = logging.getLogger(__name__)

DEBOUNCE_MS = 1500
MISSING_POLL_S = 5.0


def _is_file_target(path: Path) -> bool:
    """CORPUS_PATH names one corpus file (it may not exist yet), not a folder."""
    return path.is_file() or (path.suffix.lower() in SUFFIXES and not path.is_dir())


def _relevant(path: Path) -> Callable[[Any, str], bool]:
    """A watchfiles filter: corpus files under ``path`` (or ``path`` itself when it is a file)."""
    single = path if _is_file_target(path) else None

    def accept(change: Any, name: str) -> bool:
        p = Path(name)
        if p.name.startswith("."):
            return False
        if single is not None:
            return p == single
        return p.suffix.lower() in SUFFIXES

    return accept


async def watch_corpus(
    path: Path | str,
    reload: Callable[[], Awaitable[Any]],
    *,
    stop_event: asyncio.Event | None = None,
    debounce_ms: int = DEBOUNCE_MS,
    force_polling: bool | None = None,
    poll_delay_ms: int = 300,
    ready: asyncio.Event | None = None,
) -> None:
    """Call ``reload()`` after each (debounced) batch of changes to corpus files under ``path``."""
    from watchfiles import Change, awatch

    path = Path(path).resolve()
    stop_event = stop_event or asyncio.Event()
    accept = _relevant(path)
    missing_logged = False
    lost = False  # the folder went away while watched: reload once it is back (files may have come meanwhile)

    async def do_reload() -> None:
        try:
            report = await reload()
        except Exception:  # noqa: BLE001 - a failed reload must not stop the watching
            log.exception("corpus watch: reload failed; the articles already loaded are kept")
            return
        for issue in getattr(report, "issues", []) or []:
            log.warning("corpus watch: skipped %s", issue)
        summary = getattr(report, "summary", None)
        log.info("corpus watch: %s", summary() if callable(summary) else report)

    while not stop_event.is_set():
        single = _is_file_target(path)
        target = path.parent if single else path
        if not target.exists():
            if not missing_logged:
                log.warning("corpus watch: %s does not exist; waiting for it", target)
                missing_logged = True
            try:
                await asyncio.wait_for(stop_event.wait(), MISSING_POLL_S)
            except asyncio.TimeoutError:
                pass
            continue
        missing_logged = False
        log.info("corpus watch: watching %s", path)
        try:
            inode = target.stat().st_ino
            watcher = awatch(
                target,
                watch_filter=accept,
                debounce=debounce_ms,
                stop_event=stop_event,
                force_polling=force_polling,
                poll_delay_ms=poll_delay_ms,
                recursive=not single,
                # wake up now and then even without changes, to notice the folder itself going away:
                # inotify stops reporting once the watched folder is removed or replaced
                rust_timeout=int(MISSING_POLL_S * 1000),
                yield_on_timeout=True,
            )
            if ready is not None:
                ready.set()
            if lost:
                lost = False
                log.info("corpus watch: %s is back; reloading", target)
                await do_reload()
            async for changes in watcher:
                files = sorted({name for _, name in changes})
                added = [n for c, n in changes if c != Change.deleted]
                deleted = [n for c, n in changes if c == Change.deleted]
                for name in deleted:
                    log.warning("corpus watch: %s was deleted; the articles already loaded from it are kept", name)
                try:
                    replaced = target.stat().st_ino != inode
                except FileNotFoundError:
                    replaced = True
                if replaced:
                    log.warning("corpus watch: %s was removed or replaced; the articles already loaded are kept, "
                                "watching it again once it is back", target)
                    lost = True
                    break
                if not added:
                    continue
                log.info("corpus watch: %d file(s) changed (%s); reloading", len(files), ", ".join(files[:5]))
                await do_reload()
        except FileNotFoundError:
            log.warning("corpus watch: %s disappeared; waiting for it to come back", target)
            lost = True
        except Exception:  # noqa: BLE001 - keep the bot up; retry after a pause
            log.exception("corpus watch: the watcher failed; restarting it")
        if not stop_event.is_set() and not lost:
            try:
                await asyncio.wait_for(stop_event.wait(), MISSING_POLL_S)
            except asyncio.TimeoutError:
                pass
    log.info("corpus watch: stopped")


class BackgroundWatch:
    """:func:`watch_corpus` in a thread of its own, with its own event loop, for front doors that
    have none (the console): ``reload`` (``Precis.load``) runs in a worker thread, so a prompt
    waiting for input never blocks it and a reload never blocks a command."""

    def __init__(self, path: Path | str, reload: Callable[[], Any], **kwargs: Any) -> None:
        self.path = Path(path)
        self._reload = reload
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="precis-corpus-watch", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = asyncio.Event()

            async def reload() -> Any:
                return await asyncio.to_thread(self._reload)

            async def mark_ready() -> None:
                await ready.wait()
                self._ready.set()

            marker = asyncio.create_task(mark_ready())
            try:
                await watch_corpus(self.path, reload, stop_event=self._stop, ready=ready, **self._kwargs)
            finally:
                marker.cancel()
                self._ready.set()

        asyncio.run(main())

    def start(self, wait: float = 5.0) -> BackgroundWatch:
        self._thread.start()
        self._ready.wait(wait)
        return self

    def stop(self, wait: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(wait)
