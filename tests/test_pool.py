"""Admission by expected wait (bot/adapters/discord/pool.py): a fake clock, fake costs, no Discord."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.adapters.discord.pool import Busy, CostModel, WorkerPool


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


def lanes(clock, max_wait=30.0):
    costs = CostModel({"ask": 0.1, "summary": 0.1, "abstractive": 4.0, "other": 0.5})
    cheap = WorkerPool(2, None, max_wait=max_wait, costs=costs, clock=clock, name="test-cheap")
    model = WorkerPool(1, None, max_wait=max_wait, costs=CostModel(costs.priors), clock=clock, name="test-model")
    return cheap, model


def test_wait_is_queued_work_times_cost_over_workers(clock):
    cheap, _ = lanes(clock)
    try:
        assert cheap.expected_wait("ask") == 0.0  # both workers free
        a, b = cheap.reserve("ask"), cheap.reserve("summary")
        assert a.wait == b.wait == 0.0
        c = cheap.reserve("ask")  # both workers taken: waits for 0.2 s of work on 2 workers
        assert c.wait == pytest.approx(0.1) and c.eta == pytest.approx(0.2) and c.ahead == 2
        for _ in range(10):
            cheap.reserve("summary")
        assert cheap.expected_wait("ask") == pytest.approx((3 * 0.1 + 10 * 0.1) / 2)
        # running jobs count only what is left of their cost
        a.started_at = b.started_at = clock.t
        clock.t += 0.05
        assert cheap.expected_wait("ask") == pytest.approx((2 * 0.05 + 11 * 0.1) / 2)
        a.release()
        assert cheap.pending == 12
    finally:
        cheap.shutdown()


def test_cheap_jobs_are_admitted_while_the_model_lane_is_full(clock):
    cheap, model = lanes(clock)
    try:
        held = []
        with pytest.raises(Busy) as err:
            for _ in range(100):
                held.append(model.reserve("abstractive"))
        # 4 s each on one worker, 30 s limit: the 1st runs, 7 more wait (the last 28 s), the 9th would wait 32 s
        assert len(held) == 8 and held[-1].wait == pytest.approx(28.0)
        assert err.value.wait == pytest.approx(32.0) and not model.admits("abstractive")
        # 200 cheap requests (far more than the old fixed limit of 2 + 8) all fit in the cheap lane
        cheap_slots = [cheap.reserve("ask" if i % 2 else "summary") for i in range(200)]
        assert max(s.wait for s in cheap_slots) <= 10.0
    finally:
        cheap.shutdown()
        model.shutdown()


def test_refused_past_the_limit_and_admitted_again_as_work_finishes(clock):
    cheap, _ = lanes(clock, max_wait=1.0)
    try:
        slots = [cheap.reserve("other") for _ in range(5)]  # the 5th waits (4 * 0.5) / 2 = 1.0 s: admitted
        assert [s.wait for s in slots] == pytest.approx([0.0, 0.0, 0.5, 0.75, 1.0])
        with pytest.raises(Busy) as err:
            cheap.reserve("other")  # would wait 1.25 s
        assert err.value.wait == pytest.approx(1.25) and "1.2" in str(err.value)
        assert not cheap.admits("ask")  # cheap kinds too: the queue ahead is the same
        slots[0].release()
        slots[1].release()
        assert cheap.admits("other")  # wait now (3 * 0.5) / 2 = 0.75 s
    finally:
        cheap.shutdown()


def test_the_ceiling_still_refuses_whatever_the_estimate(clock):
    lane = WorkerPool(1, 1, max_wait=None, costs=CostModel({"other": 0.0}), clock=clock)
    try:
        lane.reserve()
        lane.reserve()
        assert lane.full
        with pytest.raises(Busy):
            lane.reserve()
    finally:
        lane.shutdown()


def test_cost_model_follows_measured_durations():
    costs = CostModel({"ask": 0.1, "other": 0.5}, alpha=0.5)
    assert costs.cost("ask") == 0.1 and costs.cost("unknown") == 0.5
    costs.observe("ask", 1.0)
    assert costs.cost("ask") == pytest.approx(1.0)  # the first measurement replaces the prior
    costs.observe("ask", 0.0)
    assert costs.cost("ask") == pytest.approx(0.5)
    for _ in range(20):
        costs.observe("ask", 2.0)
    assert costs.cost("ask") == pytest.approx(2.0, abs=1e-4)
    assert costs.samples["ask"] == 22 and costs.cost("other") == 0.5


async def test_running_a_job_measures_its_cost_and_the_estimate_follows(clock):
    lane = WorkerPool(1, None, max_wait=10.0, costs=CostModel({"other": 0.1}), clock=clock)
    try:
        def slow_job():  # "takes" 4 s on the fake clock
            clock.t += 4.0
            return threading.current_thread().name

        name = await lane.run(slow_job, kind="summary")
        assert name.startswith("precis-worker") and lane.pending == 0
        assert lane.costs.cost("summary") == pytest.approx(4.0)
        # one running + waiting summaries: 4 s each now, so the third one in line is past 10 s
        first = lane.reserve("summary")
        second = lane.reserve("summary")
        assert second.wait == pytest.approx(4.0)
        lane.reserve("summary")
        with pytest.raises(Busy):
            lane.reserve("summary")
        assert lane.admits("ask") is False and lane.expected_wait("ask") == pytest.approx(12.0)
        first.release()
        second.release()
    finally:
        lane.shutdown()


async def test_slots_run_in_order_and_nothing_is_lost(clock):
    lane = WorkerPool(2, None, max_wait=30.0, clock=clock)
    try:
        results = await asyncio.gather(*(lane.run(lambda i=i: i * i, kind="ask") for i in range(50)))
        assert results == [i * i for i in range(50)] and lane.pending == 0
    finally:
        lane.shutdown()
