"""Two real bot processes, one shard each, against the fake Discord and one PostgreSQL: each
shard's guild gets its digest exactly once, and when shard 0's process is SIGKILLed after posting
but before recording, shard 1's process finds that message (no duplicate) and records it (no gap).

The processes are tests/shard_bot.py (PrecisBot with SHARD_IDS=0 or 1 of SHARD_COUNT=2); the fake
gives each gateway session only its shard's guilds, as Discord does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from bot.store import Schedule, Store, shard_of
from tests.bot_process import digest_messages as _digests
from tests.bot_process import read_line as _line
from tests.fakes import discord_payloads as P
from tests.fakes.discord_server import FakeDiscord
from tests.pg_fixtures import pg_url  # noqa: F401 - fixture

BOT = Path(__file__).resolve().parent / "shard_bot.py"
GUILDS = {0: 1000 << 22, 1: 1001 << 22}  # shard -> guild
CHANNELS = {0: 5000 << 22, 1: 5001 << 22}


async def test_two_shard_processes_post_each_guilds_digest_once_and_recover_a_killed_one(pg_url, tmp_path):  # noqa: F811
    assert {s: shard_of(g, 2) for s, g in GUILDS.items()} == {0: 0, 1: 1}
    guilds = [P.make_default_guild(guild_id=GUILDS[s], channel_id=CHANNELS[s]) for s in (0, 1)]
    store = Store(pg_url)
    now = time.time()
    subs = {s: store.subscribe(GUILDS[s], CHANNELS[s], Schedule.every(60), None, now - 60)[0] for s in (0, 1)}
    fake = FakeDiscord(guilds=guilds)
    await fake.start()
    procs = []
    try:
        def launch(shard: int, *extra: str):
            return asyncio.create_subprocess_exec(
                sys.executable, str(BOT), fake.rest_base, fake.gateway_url, str(tmp_path / f"data{shard}"), pg_url,
                str(shard), "2", *extra, stdout=asyncio.subprocess.PIPE, stderr=open(tmp_path / f"bot{shard}.log", "w"))

        victim = await launch(0, "hang")
        procs.append(victim)
        survivor = await launch(1)
        procs.append(survivor)
        ready0 = await _line(victim, "READY", 120)
        assert str(GUILDS[0]) in ready0 and str(GUILDS[1]) not in ready0  # shard 0's guild only
        ready1 = await _line(survivor, "READY", 120)
        assert str(GUILDS[1]) in ready1 and str(GUILDS[0]) not in ready1
        for sub in subs.values():
            store.set_next_due(sub.id, time.time())  # both due now; their digests cover the sample corpus
        sent = int((await _line(victim, "SENT", 60)).split()[1])
        os.kill(victim.pid, signal.SIGKILL)
        await victim.wait()
        assert store.post(sent).state == "pending"  # posted, not recorded: the process died in between
        assert len(_digests(fake, CHANNELS[0])) == 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(store.posts(s.id, "sent") for s in subs.values()):
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # time for a duplicate to show, if there were one
        for shard, sub in subs.items():
            [post] = store.posts(sub.id)
            msgs = _digests(fake, CHANNELS[shard])
            assert len(msgs) == 1, (shard, len(msgs))  # exactly once
            assert post.state == "sent" and post.message_id == int(msgs[0]["id"])
            assert msgs[0]["embeds"][-1]["footer"]["text"].startswith(f"Digest #{post.id}")
            assert store.subscription(sub.id).last_cursor == post.to_cursor > 0  # no gap: cursor moved to it
        assert store.post(sent).attempts == 2  # recovered by the survivor, found (not sent again)
        log = (tmp_path / "bot1.log").read_text()
        assert "already posted as message" in log
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await fake.stop()
        store.close()
