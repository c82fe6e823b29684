"""A bounded worker pool: model work runs here, off the event loop.

``workers`` threads run jobs; at most ``queue_limit`` more may wait. A caller
reserves a slot first (synchronously, on the event loop) and gets
:class:`Busy` at once when the pool is full, so the bot can answer "busy, try
again shortly" instead of piling requests up.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class Busy(RuntimeError):
    """Every worker is busy and the queue is full."""


class Slot:
    """One reserved place in the pool; release it by leaving the ``with`` block."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._held = True

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if not self._held:
            raise RuntimeError("slot already released")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool.executor, functools.partial(fn, *args, **kwargs))

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pool._pending -= 1

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WorkerPool:
    def __init__(self, workers: int, queue_limit: int) -> None:
        self.workers = max(1, int(workers))
        self.queue_limit = max(0, int(queue_limit))
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="precis-worker")
        self._pending = 0  # running + waiting; only touched on the event loop thread

    @property
    def capacity(self) -> int:
        return self.workers + self.queue_limit

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def full(self) -> bool:
        return self._pending >= self.capacity

    def reserve(self) -> Slot:
        """A slot, or :class:`Busy` when the pool and its queue are full."""
        if self.full:
            raise Busy(f"{self._pending} jobs running or waiting (limit {self.capacity})")
        self._pending += 1
        return Slot(self)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with self.reserve() as slot:
            return await slot.run(fn, *args, **kwargs)

    async def run_background(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Background work (corpus reload by the watcher): never refused, but shares the threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
