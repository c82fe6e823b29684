"""Past one process, measured: 2 processes x 1 shard against 1 process x 2 shards, on one PostgreSQL,
through the fake Discord, under the same load.

    python benchmarks/shards.py [--n 120] [--subs 200] [--configs 2x1,1x2] [--digest-interval 5]
                                [--database-url URL] [--json FILE]

What runs: tests/fakes/discord_server.py's FakeDiscord in this process (127.0.0.1, nothing leaves the
machine) with two guilds, one per shard (guild ids chosen so (id >> 22) % 2 is 0 and 1), each with
``--subs / 2`` text channels; and the real PrecisBot in child processes (this script with --child),
each with SHARD_COUNT=2 and its SHARD_IDS, all on one PostgreSQL (``--database-url``, else
TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test; a fresh schema per configuration,
dropped after). The fake sends each gateway session only its shard's guilds and routes a guild's
interactions to the session holding its shard.

Load, the same for both configurations: ``--subs`` digest subscriptions (one per channel, half in
each guild) all made due at the same moment, and at that moment ``--n`` interactions (/ask and
extractive /summary, as benchmarks/load.py asks them, alternating between the two guilds) fired at
once. Measured: interactions acknowledged within Discord's 3 s, reply time p50/p95 (dispatch -> the
last followup accepted), digests posted (each channel must get exactly one: duplicates and missing
are counted) and the time from "due" to the last one recorded, and each process's RSS (VmRSS at the
end, VmHWM its peak). The machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

GUILDS = {0: 1000 << 22, 1: 1001 << 22}
CHANNEL_BASE = {0: 5000 << 22, 1: 6000 << 22}
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


# ------------------------------------------------------------------ child: one bot process
def child(argv: list[str]) -> int:
    import logging

    rest, gateway, data_dir, url, ids, interval = argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from bot.adapters.discord.client import PrecisBot
    from bot.app import Precis
    from bot.config import Settings
    from tests.fakes import discord_payloads as P
    from tests.fakes.discord_server import patch_discord_endpoints

    settings = Settings(_env_file=None, data_dir=Path(data_dir), database_url=url, shard_ids=ids, shard_count=2,
                        watch_corpus=False, discord_token=P.DEFAULT_TOKEN, cooldown_seconds=0)
    app = Precis(settings)
    app.load(progress=False)
    _ = app.answerer  # built before the burst, as benchmarks/load.py warms it
    bot = PrecisBot(app, digest_interval=float(interval), feed_interval=None, watch=False)

    async def on_ready() -> None:
        print(f"READY {os.getpid()}", flush=True)

    bot.add_listener(on_ready, "on_ready")
    with patch_discord_endpoints(rest, gateway):
        bot.run(P.DEFAULT_TOKEN, log_handler=None)
    return 0


def rss(pid: int) -> dict[str, float]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


# ------------------------------------------------------------------ one configuration
async def run_config(name: str, shard_sets: list[str], args, base_url: str) -> dict:
    import psycopg

    from bench_load import QUESTIONS, SUMMARY_OPTIONS
    from bot.store import Schedule, Store
    from tests.fakes import discord_payloads as P
    from tests.fakes.discord_server import FakeDiscord
    from tests.pg_fixtures import schema_url

    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(base_url, schema)
    per_guild = args.subs // 2
    guilds = []
    for shard in (0, 1):
        g = P.make_default_guild(guild_id=GUILDS[shard], channel_id=CHANNEL_BASE[shard])
        for i in range(1, per_guild):
            g["channels"].append(P.make_text_channel(CHANNEL_BASE[shard] + i, GUILDS[shard], f"news-{i}", position=i))
        guilds.append(g)
    store = Store(url)
    created = time.time()
    subs = []
    for shard in (0, 1):
        for i in range(per_guild):
            subs.append(store.subscribe(GUILDS[shard], CHANNEL_BASE[shard] + i, Schedule.every(60 * 24), None, created)[0])
    procs = []
    fake = FakeDiscord(guilds=guilds)
    await fake.start()
    tmp = tempfile.mkdtemp(prefix="precis-shards-")
    try:
        t = time.monotonic()
        for ids in shard_sets:
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child", fake.rest_base, fake.gateway_url, str(Path(tmp) / f"d{ids}"), url, ids,
                str(args.digest_interval), stdout=asyncio.subprocess.PIPE,
                stderr=open(Path(tmp) / f"bot{ids.replace(',', '_')}.log", "w")))
        for p in procs:
            line = await asyncio.wait_for(p.stdout.readline(), 300)
            assert line.startswith(b"READY"), line
        startup_s = time.monotonic() - t
        await fake.wait_until(lambda: fake.find_command("ask") and fake.find_command("summary"), 60, what="commands")
        await asyncio.sleep(2)
        rng = random.Random(7)
        payloads = []
        for i in range(args.n):
            shard = i % 2
            gid, cid = GUILDS[shard], CHANNEL_BASE[shard]
            if i % 2 == 0:
                cmd = fake.make_command("ask", {"question": rng.choice(QUESTIONS)}, guild_id=gid, channel_id=cid,
                                        user_id=P.DEFAULT_USER_ID + 1000 + i)
            else:
                cmd = fake.make_command("summary", dict(rng.choice(SUMMARY_OPTIONS)), guild_id=gid, channel_id=cid,
                                        user_id=P.DEFAULT_USER_ID + 1000 + i)
            payloads.append(cmd)
        due = time.time()
        for sub in subs:  # all due at the same moment
            store.set_next_due(sub.id, due)
        t0 = time.monotonic()
        recs = [await fake.dispatch_interaction(p) for p in payloads]
        deadline = t0 + args.timeout

        def sent_count() -> int:
            return sum(1 for s in subs if store.last_sent(s.id) is not None)

        answered = lambda r: bool(r.visible_messages())  # noqa: E731
        digests_done_at = None
        while time.monotonic() < deadline:
            if digests_done_at is None and sent_count() == len(subs):
                digests_done_at = time.time()
            if digests_done_at is not None and all(answered(r) or not r.acked for r in recs):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2 * args.digest_interval)  # would a duplicate come?
        hook = f"/webhooks/{fake.application_id}/"
        last_post: dict[str, float] = {}
        for r in fake.requests:
            if r.path.startswith(hook) and r.status == 200 and r.method in ("POST", "PATCH"):
                token = r.path[len(hook):].split("/", 1)[0]
                last_post[token] = max(last_post.get(token, 0.0), r.time)
        acks = [r.ack_latency for r in recs]
        done = []
        for r in recs:
            end = last_post.get(r.token)
            if r.callback_type == 4 and r.acked_at is not None:
                end = max(end or 0.0, r.acked_at)
            if end is not None and answered(r):
                done.append(end - r.dispatched_at)
        per_channel = {}
        for m in fake.messages.values():
            if m["embeds"] and (m["embeds"][-1].get("footer") or {}).get("text", "").startswith("Digest #"):
                per_channel[int(m["channel_id"])] = per_channel.get(int(m["channel_id"]), 0) + 1
        channels = [s.channel_id for s in subs]
        memory = {f"pid {p.pid} (shards {ids})": rss(p.pid) for p, ids in zip(procs, shard_sets)}
        return {
            "config": name,
            "processes": len(procs),
            "startup_s": round(startup_s, 1),
            "interactions": len(recs),
            "acked_within_3s": sum(1 for a in acks if a is not None and a <= 3.0),
            "answered": len(done),
            "reply_p50_s": pct(done, 0.5),
            "reply_p95_s": pct(done, 0.95),
            "digests_posted_once": sum(1 for c in channels if per_channel.get(c) == 1),
            "digest_duplicates": sum(max(0, per_channel.get(c, 0) - 1) for c in channels),
            "digests_missing": sum(1 for c in channels if per_channel.get(c, 0) == 0),
            "digests_all_recorded_s": None if digests_done_at is None else round(digests_done_at - due, 1),
            "rss_mib": memory,
        }
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
                try:
                    await asyncio.wait_for(p.wait(), 20)
                except asyncio.TimeoutError:
                    p.kill()
                    await p.wait()
        await fake.stop()
        store.close()
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=120, help="interactions fired at once (default 120)")
    ap.add_argument("--subs", type=int, default=200, help="digest subscriptions due at the same moment (default 200)")
    ap.add_argument("--configs", default="2x1,1x2", help="2x1: two processes, one shard each; 1x2: one process, both")
    ap.add_argument("--digest-interval", type=float, default=5.0, help="seconds between digest ticks (the bot's: 30)")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import importlib

    sys.modules.setdefault("bench_load", importlib.import_module("load"))
    shards = {"2x1": ["0", "1"], "1x2": ["0,1"]}
    results = []
    load_before = os.getloadavg()
    for name in args.configs.split(","):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(asyncio.run(run_config(name, shards[name], args, args.database_url)))
    from bot.store import redact_url

    print(f"PostgreSQL {redact_url(args.database_url)}; {args.n} interactions (/ask, /summary extractive) and "
          f"{args.subs} digests due at once; digest tick every {args.digest_interval:g} s; "
          f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    for r in results:
        print(f"\n{r['config']}: {r['processes']} process(es), ready in {r['startup_s']} s")
        print(f"  interactions: {r['acked_within_3s']}/{r['interactions']} acknowledged within 3 s, "
              f"{r['answered']} answered; reply p50 {r['reply_p50_s']:.2f} s, p95 {r['reply_p95_s']:.2f} s")
        print(f"  digests: {r['digests_posted_once']}/{args.subs} posted exactly once, {r['digest_duplicates']} duplicate(s),"
              f" {r['digests_missing']} missing; all recorded {r['digests_all_recorded_s']} s after they fell due")
        for who, m in r["rss_mib"].items():
            print(f"  RSS {who}: {m.get('VmRSS', 0):.0f} MiB now, peak {m.get('VmHWM', 0):.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
