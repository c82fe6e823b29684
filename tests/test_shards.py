"""Shards across processes: each process serves its shards' guilds, and every scheduled digest is
posted exactly once — with two real processes on one PostgreSQL, one of them SIGKILLed mid-post.

The processes are tests/digest_worker.py: the bot's own DigestRunner tick (claim -> find/send ->
record), composing stubbed; the "channel" is a file every message is appended to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.store import Schedule, Store, shard_of
from tests.pg_fixtures import pg_url  # noqa: F401 - fixture

WORKER = Path(__file__).resolve().parent / "digest_worker.py"
T0 = 1_740_812_400.0


def guild(n: int) -> int:
    return (1000 + n) << 22  # shard (1000 + n) % count


def test_shard_of_follows_discords_rule():
    assert shard_of(81384788765712384, 1) == 0
    assert [shard_of(guild(n), 2) for n in range(4)] == [0, 1, 0, 1]
    assert shard_of(guild(3), 4) == 3


def test_due_lists_this_processes_shards_and_other_shards_orphans(pg_url):  # noqa: F811
    store = Store(pg_url, lease_seconds=60)
    store.register_articles([("old", "Old")], T0)
    subs = [store.subscribe(guild(n), 100 + n, Schedule.every(5), None, T0)[0] for n in range(4)]
    store.register_articles([("n1", "N1")], T0 + 1)
    store.set_shards([0], 2)
    now = T0 + 300
    assert [s.id for s in store.due(now)] == [subs[0].id, subs[2].id]  # shard 0's guilds only
    other = Store(pg_url, lease_seconds=60)
    other.set_shards([1], 2)
    post = other.claim(subs[1].id, now, "shard-1")  # shard 1's process claims, then dies
    assert post is not None
    assert subs[1].id not in [s.id for s in store.due(now + 30)]  # its lease still runs
    assert subs[1].id in [s.id for s in store.due(now + 61)]  # lease ran out: an orphan, any shard's to recover
    assert subs[3].id in [s.id for s in store.due(now + 61)]  # overdue past a lease: no one serves shard 1
    again = store.claim(subs[1].id, now + 61, "shard-0")
    assert again.id == post.id and again.nonce == post.nonce and again.recovering
    store.set_shards(None)
    assert len(store.due(now)) == 4
    store.close()
    other.close()


def _start(url: str, shards: str, count: int, channel: Path, seconds: float, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), url, shards, str(count), str(channel), str(seconds), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_line(proc: subprocess.Popen, prefix: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no {prefix!r} from the worker; stderr: {proc.stderr.read()[-2000:]}")


def _setup(url: str, n_guilds: int) -> tuple[Store, list]:
    store = Store(url)
    now = time.time()
    store.register_articles([("old", "Old")], now - 100)
    subs = [store.subscribe(guild(n), 500 + n, Schedule.every(60), None, now - 100)[0] for n in range(n_guilds)]
    store.register_articles([(f"new{i}", f"New {i}") for i in range(3)], now - 50)
    for sub in subs:
        store.set_next_due(sub.id, now - 1)
    return store, subs


def _check_exactly_once(store: Store, subs: list, channel: Path) -> list[dict]:
    messages = [json.loads(line) for line in channel.read_text().splitlines()]
    assert sorted(m["channel"] for m in messages) == sorted(s.channel_id for s in subs), messages  # one each
    top = store.max_cursor()
    for sub in subs:
        posts = store.posts(sub.id)
        assert [p.state for p in posts] == ["sent"], posts  # recorded once, nothing pending
        assert posts[0].article_ids == ("new0", "new1", "new2")  # no gap: every new article, once
        assert store.subscription(sub.id).last_cursor == top
        [msg] = [m for m in messages if m["channel"] == sub.channel_id]
        assert msg["nonce"] == posts[0].nonce
    return messages


def test_two_processes_serving_all_shards_post_each_digest_once(pg_url, tmp_path):  # noqa: F811
    """Both processes tick the same subscriptions at once: claims race, each digest goes out once."""
    store, subs = _setup(pg_url, 6)
    channel = tmp_path / "channel.jsonl"
    procs = [_start(pg_url, "0,1", 2, channel, 6) for _ in range(2)]
    outs = [p.communicate(timeout=90)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    messages = _check_exactly_once(store, subs, channel)
    assert len({m["pid"] for m in messages}) >= 1
    store.close()


def test_a_process_killed_mid_digest_is_recovered_by_the_other_without_duplicate_or_gap(pg_url, tmp_path):  # noqa: F811
    """Shard 0's process posts its first digest and is SIGKILLed before recording it; shard 1's
    process posts its own guilds' digests, finds the killed one's message (recorded, not resent) and
    takes over shard 0's digest that was never claimed."""
    store, subs = _setup(pg_url, 4)  # guilds 0, 2 on shard 0; 1, 3 on shard 1
    channel = tmp_path / "channel.jsonl"
    victim = _start(pg_url, "0", 2, channel, 120, "hang")
    _wait_line(victim, "READY")
    sent = int(_wait_line(victim, "SENT").split()[1])
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    assert store.post(sent).state == "pending"  # posted, never recorded
    survivor = _start(pg_url, "1", 2, channel, 8)
    out, err = survivor.communicate(timeout=90)
    assert survivor.returncode == 0, err[-2000:]
    messages = _check_exactly_once(store, subs, channel)
    assert "recovered=1" in out, out  # the killed process's message was found, not sent again
    assert [m["pid"] for m in messages].count(victim.pid) == 1
    assert store.post(sent).state == "sent" and store.post(sent).attempts == 2
    store.close()
