"""Worker lanes that admit a request by its expected wait, not by a fixed count.

A :class:`WorkerPool` is one lane: ``workers`` threads run its jobs, off the
event loop. A caller reserves a slot first (synchronously, on the event loop),
naming the kind of job (``"ask"``, ``"summary"``, ``"abstractive"`` ...). The
lane estimates how long that job would wait before a worker takes it:

    wait = (sum of the expected cost of the jobs waiting
            + what is left of the expected cost of the jobs running) / workers

where the expected cost of a kind is an exponential moving average of the
measured durations of that kind of job in this lane (:class:`CostModel`,
starting from priors). The job is admitted while that wait is at most
``max_wait`` seconds, and refused with :class:`Busy` past it, so the bot can
say "busy" only when the member would really wait too long. ``queue_limit``
(optional) is a ceiling on the number of jobs waiting, a safety net against
estimates that are far off.

The bot runs two lanes, so cheap jobs (/ask, extractive summaries) are never
stuck behind abstractive ones: a cheap lane with ``WORKERS`` threads and a model
lane with one thread (generation runs under a lock, one at a time anyway).
Nothing here knows Discord; the clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")

DEFAULT_KIND = "other"
# Seconds per job before anything was measured (generous: an estimate too low admits too much).
DEFAULT_PRIORS: dict[str, float] = {
    "ask": 0.1,  # measured ~25 ms on a quiet 2-core box, a few times that under load
    "summary": 0.1,
    "articles": 0.1,
    "abstractive": 4.0,  # SmolLM2-135M, one thread: ~2 s measured; a new model may be slower
    "link": 5.0,  # a summary of a fetched page: mostly network time
    DEFAULT_KIND: 0.5,
}


class Busy(RuntimeError):
    """The expected wait is past the lane's limit (or its queue is at its ceiling)."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class CostModel:
    """Expected seconds per kind of job: an exponential moving average of measured durations.

    ``alpha`` is the weight of each new measurement; a kind never measured costs its
    prior (or the ``other`` prior). Only touched on the event loop thread."""

    def __init__(self, priors: Mapping[str, float] | None = None, *, alpha: float = 0.3) -> None:
        self.priors = dict(DEFAULT_PRIORS if priors is None else priors)
        self.alpha = float(alpha)
        self._ema: dict[str, float] = {}
        self.samples: dict[str, int] = {}

    def cost(self, kind: str) -> float:
        if kind in self._ema:
            return self._ema[kind]
        return self.priors.get(kind, self.priors.get(DEFAULT_KIND, DEFAULT_PRIORS[DEFAULT_KIND]))

    def observe(self, kind: str, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        prev = self._ema.get(kind)
        self._ema[kind] = seconds if prev is None else prev + self.alpha * (seconds - prev)
        self.samples[kind] = self.samples.get(kind, 0) + 1


class Slot:
    """One reserved place in a lane; release it by leaving the ``with`` block.

    ``wait`` is the expected wait (seconds before a worker takes it) when it was
    admitted; ``eta`` adds its own expected cost: when its answer should be ready."""

    def __init__(self, pool: WorkerPool, kind: str, wait: float, ahead: int) -> None:
        self._pool = pool
        self._held = True
        self.kind = kind
        self.wait = wait
        self.ahead = ahead  # jobs reserved before it and not finished
        self.eta = wait + pool.costs.cost(kind)
        self.started_at: float | None = None  # set by the worker thread when the job starts
        self.finished_at: float | None = None

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if not self._held:
            raise RuntimeError("slot already released")
        pool = self._pool
        clock = pool.clock

        def job() -> T:
            self.started_at = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.finished_at = clock()

        loop = asyncio.get_running_loop()
        submitted = clock()
        try:
            return await loop.run_in_executor(pool.executor, job)
        finally:
            if self.started_at is not None and pool.on_wait is not None:
                try:
                    pool.on_wait(max(0.0, self.started_at - submitted))  # the time it waited for a worker
                except Exception:  # noqa: BLE001 - metrics never fail a job
                    pass
            if self.started_at is not None and self.finished_at is not None:
                pool.costs.observe(self.kind, self.finished_at - self.started_at)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pool._release(self)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WorkerPool:
    """One lane: ``workers`` threads; admission by expected wait (``max_wait`` seconds)."""

    def __init__(self, workers: int, queue_limit: int | None = None, *, max_wait: float | None = 30.0,
                 costs: CostModel | None = None, clock: Callable[[], float] = time.monotonic,
                 name: str = "precis-worker") -> None:
        self.workers = max(1, int(workers))
        self.queue_limit = None if queue_limit is None or queue_limit <= 0 else int(queue_limit)
        self.max_wait = None if max_wait is None else max(0.0, float(max_wait))
        self.costs = costs if costs is not None else CostModel()
        self.clock = clock
        self.name = name
        self.on_wait: Callable[[float], None] | None = None  # told each job's wait for a worker (metrics)
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=name)
        self._slots: list[Slot] = []  # reserved, not released; only touched on the event loop thread

    # ------------------------------------------------------------ the estimate
    @property
    def pending(self) -> int:
        """Jobs reserved and not finished (running + waiting)."""
        return len(self._slots)

    @property
    def waiting(self) -> int:
        return sum(1 for s in self._slots if s.started_at is None)

    def backlog(self) -> float:
        """Expected seconds of work ahead of a new job, all workers together."""
        now = self.clock()
        total = 0.0
        for s in list(self._slots):
            cost = self.costs.cost(s.kind)
            if s.finished_at is not None:
                continue
            if s.started_at is None:
                total += cost
            else:
                total += max(0.0, cost - (now - s.started_at))
        return total

    def expected_wait(self, kind: str = DEFAULT_KIND) -> float:
        """Seconds a job of ``kind`` reserved now would wait before a worker takes it."""
        busy_workers = sum(1 for s in self._slots if s.finished_at is None)
        if busy_workers < self.workers:
            return 0.0  # a worker is free
        return self.backlog() / self.workers

    def admits(self, kind: str = DEFAULT_KIND) -> bool:
        try:
            self._check(kind)
        except Busy:
            return False
        return True

    @property
    def full(self) -> bool:
        """True when a job of the default kind would be refused now."""
        return not self.admits()

    def _check(self, kind: str) -> float:
        wait = self.expected_wait(kind)
        if self.queue_limit is not None and self.pending >= self.workers + self.queue_limit:
            raise Busy(f"{self.waiting} jobs waiting in {self.name} (ceiling {self.queue_limit})", wait)
        if self.max_wait is not None and wait > self.max_wait:
            raise Busy(f"expected wait {wait:.1f}s in {self.name} is past {self.max_wait:g}s "
                       f"({self.pending} jobs running or waiting)", wait)
        return wait

    # ------------------------------------------------------------ slots
    def reserve(self, kind: str = DEFAULT_KIND) -> Slot:
        """A slot, or :class:`Busy` when its expected wait is past the limit."""
        wait = self._check(kind)
        slot = Slot(self, kind, wait, ahead=self.pending)
        self._slots.append(slot)
        return slot

    def _release(self, slot: Slot) -> None:
        try:
            self._slots.remove(slot)
        except ValueError:
            pass

    async def run(self, fn: Callable[..., T], /, *args: Any, kind: str = DEFAULT_KIND, **kwargs: Any) -> T:
        with self.reserve(kind) as slot:
            return await slot.run(fn, *args, **kwargs)

    async def run_background(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Background work (corpus reload by the watcher): never refused, but shares the threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
