"""Feeds at scale (issue 31, item 6, the feed half): one fetch per distinct URL per interval, measured.

    python benchmarks/feed_scale.py [--servers 1000] [--subs 3000] [--urls 300] [--hosts 20]
                                    [--intervals 4] [--speed 20] [--processes 2] [--no-app]
                                    [--follow-links] [--seed 31] [--database-url URL] [--json OUT]

What runs:

* **The feed farm** (this process, aiohttp on 127.0.0.1, one port): ``--urls`` RSS feeds on ``--hosts``
  host names ``h00.farm.test`` ... The bot's fetcher is given a resolver that sends ``*.farm.test`` to
  127.0.0.1 (as tests/test_sources.py does; ``FETCH_ALLOW_PRIVATE`` on), so each host is a distinct
  *name*: the fetcher's per-host gate (``HostGate``) and the schedule's per-host leasing
  (``store.url_host``) key on the host name without the port, so 20 ports of 127.0.0.1 would be one host
  to them. URLs are spread over the hosts by a Zipf law (the first host carries over a hundred feeds).
  Each feed publishes one new item per interval (at a random phase), serves its latest 5, and answers a
  conditional GET with 304 while its ETag is unchanged. Every request is logged (host, path, status,
  which process, arrival and end time).
* **Subscriptions**: ``--subs`` over ``--servers`` guild ids; every URL followed at least once, the
  rest drawn by a Zipf law over the URLs (seeded): the top URL is followed by hundreds of servers. About
  a third of the subscriptions have filters (include, exclude, or both; words and phrases from the items'
  topics, with near misses such as "rates" for "rate" in the items).
* **Bot processes**: ``--processes`` child processes (this script with --child), each a real
  :class:`~bot.sources.service.Sources` on its own :class:`~bot.store.Store`, all on one PostgreSQL
  (``--database-url``, else TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test; a fresh
  schema per run, dropped after). Each child runs the bot's feed tick (``poll_due(now)``, every 60 s
  of simulated time, both processes on the same minute: the worst case for two processes sharing
  hosts). The app is a stub (a dict corpus and the real guild scopes, no index, no model), so the
  store's side of ingestion (articles registered for digests, kept in ``fetched_articles`` with
  NOTIFY, guild shares) runs as in the bot and the embedding does not; ``--no-app`` passes app=None.
* **Time** runs ``--speed`` times faster than real (simulated seconds = real seconds x speed, the same
  in every process and the farm): the host pause (1 s) and the tick's budget (``POLL_BUDGET_S``, 45 s)
  are divided by the speed, so the per-host lease count (budget / pause) is the bot's; the feed interval
  (``FEED_INTERVAL_MINUTES``, 15) is simulated. HTTP, database and CPU time are *not* sped up: at
  speed 20, 10 ms of work counts as 200 ms of simulated time (pessimistic).

Reported: requests per URL per interval (fixed windows and the smallest gap between two requests of a
URL, against the ±10 % jitter's floor of 0.9 interval), requests made before a URL was due, the most
overdue poll (request time minus its URL's due time) and the URLs still waiting at the end, URLs never
polled, per-host request spacing (per process and across processes, against the pause), the items each
subscription got against the items its filter passes (filters computed again here, independently:
word tokens, not the bot's regular expressions), wall time per tick, and the CPU the figures come from.
The acceptance line (issue 31): every distinct URL at most once per interval, no feed more than one
interval overdue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TICK_S = 60.0  # the bot's feed tick (bot/adapters/discord/client.py FEED_TICK_S)
HOST_PAUSE_S = 1.0  # the fetcher's default pause between two requests to one host
KEEP_ITEMS = 5  # items each feed serves
SIM0 = 1_770_000_000.0  # simulated time at the start

PLACES = ["Lisbon", "Osaka", "Nairobi", "Quito", "Tallinn", "Perth", "Accra", "Bergen", "Leeds", "Porto"]
# topic -> (the phrase used in items, a near miss a whole-word filter must not take for it)
TOPICS = {
    "bridge": ("bridge", "bridges"),
    "election": ("election", "elections"),
    "heat wave": ("heat wave", "heat waves"),
    "rate": ("rate", "rates"),
    "football": ("football", "footballers"),
    "vaccine": ("vaccine", "vaccines"),
    "flood": ("flood", "floodlights"),
    "rail strike": ("rail strike", "rail strikes"),
    "budget": ("budget", "budgets"),
    "harbour": ("harbour", "harbours"),
}
TOPIC_NAMES = list(TOPICS)


# ------------------------------------------------------------------ the simulated world (seeded)
def zipf_pick(rng: random.Random, n: int, s: float) -> int:
    weights = [1.0 / (r + 1) ** s for r in range(n)]
    return rng.choices(range(n), weights=weights)[0]


def build_world(args) -> dict:
    rng = random.Random(args.seed)
    # URLs over hosts: each host one URL, the rest by a Zipf law (s=1.5: the first host carries ~130)
    host_of = list(range(args.hosts)) + [zipf_pick(rng, args.hosts, 1.5) for _ in range(args.urls - args.hosts)]
    rng.shuffle(host_of)
    urls = [(f"h{h:02d}.farm.test", f"/feeds/{i}.xml") for i, h in enumerate(host_of)]
    phase = [rng.uniform(0, args.interval_min * 60) for _ in urls]
    # subscriptions: every URL followed once, the rest by a Zipf law over URLs (s=1), no server twice on one URL
    guilds = [(1000 + g) << 22 for g in range(args.servers)]
    subs: set[tuple[int, int]] = set()
    order = list(range(args.urls))
    for u in order:
        subs.add((rng.choice(guilds), u))
    weights = [1.0 / (r + 1) for r in range(args.urls)]
    while len(subs) < args.subs:
        u = rng.choices(order, weights=weights)[0]
        subs.add((rng.choice(guilds), u))
    sub_list = []
    for g, u in sorted(subs):
        roll = rng.random()
        inc, exc = (), ()
        if roll < 0.15:
            inc = tuple(rng.sample(TOPIC_NAMES, rng.choice([1, 2])))
        elif roll < 0.25:
            exc = (rng.choice(TOPIC_NAMES),)
        elif roll < 0.33:
            inc = (rng.choice(TOPIC_NAMES),)
            exc = (rng.choice([t for t in TOPIC_NAMES if t not in inc]),)
        sub_list.append({"guild": g, "url": u, "include": list(inc), "exclude": list(exc)})
    return {"urls": urls, "phase": phase, "subs": sub_list}


def item(seed: int, u: int, k: int) -> dict:
    """Feed ``u``'s item ``k``: two topics in its text, sometimes a third topic's near miss only."""
    r = random.Random(f"{seed}:{u}:{k}")
    place = r.choice(PLACES)
    a, b = r.sample(TOPIC_NAMES, 2)
    text = (f"Officials in {place} spoke about the {TOPICS[a][0]} on Monday. "
            f"They said the {TOPICS[b][0]} would be discussed again next week. ")
    if r.random() < 0.4:
        c = r.choice([t for t in TOPIC_NAMES if t not in (a, b)])
        text += f"Residents also asked about the {TOPICS[c][1]}, which were not on the agenda."
    else:
        text += "Residents came to listen and several of them asked questions."
    title = f"{place}: {TOPICS[a][0]} news, feed {u} item {k}"
    return {"title": title, "guid": f"farm-{u}-{k}", "link": None, "description": text}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def independent_pass(inc: list[str], exc: list[str], title: str, text: str) -> bool:
    """The filter rule computed again, on word tokens: a term matches when its words appear in a row."""
    toks = words(title) + ["\n"] + words(text)  # title and text are separate texts: no phrase across them

    def has(term: str) -> bool:
        t = words(term)
        return any(toks[i:i + len(t)] == t for i in range(len(toks) - len(t) + 1))

    return (not inc or any(has(t) for t in inc)) and not any(has(t) for t in exc)


# ------------------------------------------------------------------ child: one bot process
class StubCorpus:
    def __init__(self) -> None:
        self.by_id: dict = {}

    def get(self, article_id):
        return self.by_id.get(article_id)

    def same_as(self, article):
        return self.by_id.get(article.id)


class StubApp:
    """What Sources asks of the app, without an index or a model: a dict corpus and the real scopes."""

    def __init__(self) -> None:
        from bot.corpus.scope import Scopes

        self.corpus = StubCorpus()
        self.scopes = Scopes()

    def add_articles(self, articles, on_added=None):
        added = [a for a in articles if a.id not in self.corpus.by_id]
        for a in added:
            self.corpus.by_id[a.id] = a
        if added and on_added is not None:
            on_added(added)
        return added


def child(cfg: dict) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    import sqlalchemy as sa

    from bot.config import Settings
    from bot.sources.fetch import FetchConfig, Fetcher
    from bot.sources.service import POLL_BUDGET_S, Sources
    from bot.store import Store
    from bot.store import db as store_db

    speed = cfg["speed"]
    settings = Settings(_env_file=None, data_dir=Path(cfg["data_dir"]), database_url=cfg["url"],
                        feed_interval_minutes=cfg["interval_min"], fetch_allow_private=True, watch_corpus=False)
    store = Store(cfg["url"])

    async def resolver(host: str, port: int) -> list[str]:
        if host.endswith(".farm.test"):
            return ["127.0.0.1"]
        raise OSError(f"{host}: not a farm host")

    pause = HOST_PAUSE_S / speed
    fetcher = Fetcher(FetchConfig(allow_private=True, host_pause=pause, timeout=20.0,
                                  user_agent=f"Precis-bench (process {cfg['index']})"))
    fetcher.resolver = resolver
    state = {"real0": None}

    def sim_clock() -> float:
        return SIM0 + (time.time() - state["real0"]) * speed

    app = None if cfg["no_app"] else StubApp()
    sources = Sources(settings, store, app=app, fetcher=fetcher, follow_links=cfg["follow_links"], clock=sim_clock)
    handed_back: list[int] = []
    orig_hand_back = sources.hand_back

    def counting_hand_back(urls):
        handed_back.append(len(urls))
        return orig_hand_back(urls)

    sources.hand_back = counting_hand_back
    store_calls: dict[str, list] = defaultdict(lambda: [0, 0.0])  # store method -> [calls, seconds]

    def timed(name, fn):
        def wrapper(*a, **kw):
            t = time.monotonic()
            try:
                return fn(*a, **kw)
            finally:
                c = store_calls[name]
                c[0] += 1
                c[1] += time.monotonic() - t
        return wrapper

    for name in ("lease_feeds", "release_url", "url_polled", "url_failed", "seen_items", "mark_seen",
                 "share_article", "register_articles", "add_fetched", "feed_cache"):
        setattr(store, name, timed(name, getattr(store, name)))
    u = store_db.S.feed_urls
    print("READY", flush=True)
    state["real0"] = float(sys.stdin.readline())
    budget = POLL_BUDGET_S / speed
    ticks, delivered, polls = [], defaultdict(list), []
    cpu0 = time.process_time()

    async def run() -> None:
        for k in range(cfg["ticks"]):
            target = SIM0 + k * TICK_S
            wait = (target - sim_clock()) / speed
            if wait > 0:
                await asyncio.sleep(wait)
            now = sim_clock()
            due_before = {r["url"]: r["next_poll"] for r in store._read(sa.select(u.c.url, u.c.next_poll))}
            n_back = len(handed_back)
            t0 = time.monotonic()
            c0 = time.process_time()
            results = await sources.poll_due(now, budget_s=budget)
            wall = time.monotonic() - t0
            urls = {}
            for r in results:
                urls.setdefault(r.url, r.status)
                if r.status == "ok":
                    delivered[r.feed_id].extend(n.title for n in r.new)
            for url, status in urls.items():
                polls.append({"url": url, "due": due_before.get(url), "status": status, "tick": k})
            ticks.append({"tick": k, "late_s": now - target, "wall_s": wall, "cpu_s": time.process_time() - c0,
                          "urls": len(urls), "copies": len(results),
                          "handed_back": sum(handed_back[n_back:])})

    asyncio.run(run())
    import resource

    out = {"index": cfg["index"], "pid": os.getpid(), "ticks": ticks, "polls": polls,
           "delivered": {str(k): v for k, v in delivered.items()}, "cpu_s": time.process_time() - cpu0,
           "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "store_calls": {k: [v[0], round(v[1], 2)] for k, v in store_calls.items()}}
    Path(cfg["out"]).write_text(json.dumps(out))
    store.close()
    return 0


# ------------------------------------------------------------------ the feed farm
class Farm:
    def __init__(self, world: dict, args) -> None:
        self.world = world
        self.args = args
        self.interval = args.interval_min * 60.0
        self.by_key = {(host, path): i for i, (host, path) in enumerate(world["urls"])}
        self.real0: float | None = None
        self.log: list[dict] = []
        self.served: dict[int, set[int]] = defaultdict(set)  # url -> item numbers sent in a 200
        self.port = 0
        self._runner = None

    def sim(self, t_real: float) -> float:
        return SIM0 + (t_real - self.real0) * self.args.speed

    def latest(self, u: int, now: float) -> int:
        return int((now - SIM0 - self.world["phase"][u]) // self.interval)

    async def handle(self, request):
        from aiohttp import web

        t = time.time()
        host = request.headers.get("Host", "").split(":")[0].lower()
        ua = request.headers.get("User-Agent", "")
        proc = int(m.group(1)) if (m := re.search(r"process (\d+)", ua)) else -1
        rec = {"t": t, "host": host, "path": request.path, "proc": proc, "status": 404}
        self.log.append(rec)
        if request.path.startswith("/pages/"):  # an item's page (--follow-links)
            u, k = (int(x) for x in request.path[len("/pages/"):].split(".")[0].split("-"))
            it = item(self.args.seed, u, k)
            body = (f"<html><head><title>{it['title']}</title></head><body><article><h1>{it['title']}</h1>"
                    f"<p>{it['description']}</p></article></body></html>")
            rec["status"] = 200
            rec["end"] = time.time()
            return web.Response(text=body, content_type="text/html")
        u = self.by_key.get((host, request.path))
        if u is None or self.real0 is None:
            rec["end"] = time.time()
            return web.Response(status=404, text="not found")
        rec["url"] = u
        latest = self.latest(u, self.sim(t))
        tag = f'"{u}.{latest}"'
        if request.headers.get("If-None-Match") == tag:
            rec["status"] = 304
            rec["end"] = time.time()
            return web.Response(status=304, headers={"ETag": tag})
        ks = list(range(latest - KEEP_ITEMS + 1, latest + 1))[::-1]
        self.served[u].update(ks)
        parts = []
        for k in ks:
            it = item(self.args.seed, u, k)
            link = f"<link>http://{request.host}/pages/{u}-{k}.html</link>" if self.args.follow_links else ""
            parts.append(f"<item><title>{it['title']}</title>{link}<guid isPermaLink=\"false\">{it['guid']}</guid>"
                         f"<description>{it['description']}</description></item>")
        body = (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Farm feed {u}</title>'
                f"<link>http://{host}/</link><description>news</description>{''.join(parts)}</channel></rss>")
        rec["status"] = 200
        rec["end"] = time.time()
        return web.Response(body=body.encode(), headers={"ETag": tag, "Content-Type": "application/rss+xml"})

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# ------------------------------------------------------------------ the run
def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


async def run(args) -> dict:
    import psycopg

    from bot.store import Store
    from bot.store.db import redact_url

    world = build_world(args)
    interval = args.interval_min * 60.0
    n_ticks = int(args.intervals * interval / TICK_S)
    schema = f"bench_feeds_{secrets.token_hex(4)}"
    base = args.database_url
    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    from urllib.parse import quote

    url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    farm = Farm(world, args)
    procs = []
    tmp = Path(tempfile.mkdtemp(prefix="precis-feed-scale-"))
    try:
        await farm.start()
        store = Store(url)
        t = time.monotonic()
        feed_ids = []
        for s in world["subs"]:
            host, path = world["urls"][s["url"]]
            f, _ = store.add_feed(s["guild"], f"http://{host}:{farm.port}{path}", 1, SIM0 - 1,
                                  include=s["include"], exclude=s["exclude"])
            feed_ids.append(f.id)
        setup_s = time.monotonic() - t
        print(f"{len(world['subs'])} subscriptions stored in {setup_s:.1f} s; starting {args.processes} processes",
              file=sys.stderr, flush=True)
        for i in range(args.processes):
            cfg = {"index": i, "url": url, "speed": args.speed, "interval_min": args.interval_min, "ticks": n_ticks,
                   "data_dir": str(tmp / f"d{i}"), "out": str(tmp / f"out{i}.json"), "no_app": args.no_app,
                   "follow_links": args.follow_links}
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child", json.dumps(cfg), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=open(tmp / f"child{i}.log", "w")))
        for p in procs:
            line = await asyncio.wait_for(p.stdout.readline(), 120)
            assert line.startswith(b"READY"), line
        real0 = time.time() + 0.5
        farm.real0 = real0
        for p in procs:
            p.stdin.write(f"{real0!r}\n".encode())
            await p.stdin.drain()
        print(f"running {n_ticks} ticks ({args.intervals} intervals of {args.interval_min} min) at {args.speed}x: "
              f"about {n_ticks * TICK_S / args.speed:.0f} s", file=sys.stderr, flush=True)
        t_run = time.monotonic()
        for p in procs:
            rc = await p.wait()
            if rc != 0:
                raise RuntimeError(f"child exited {rc}; see {tmp}/child*.log:\n"
                                   + "\n".join((tmp / f"child{i}.log").read_text()[-2000:] for i in range(len(procs))))
        run_s = time.monotonic() - t_run
        outs = [json.loads((tmp / f"out{i}.json").read_text()) for i in range(len(procs))]
        end_sim = farm.sim(time.time())
        final = {f.url: f for f in store.feeds()}
        store.close()
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await farm.stop()
        with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return analyse(args, world, farm, outs, final, feed_ids, n_ticks, run_s, end_sim, redact_url(base), setup_s)


def analyse(args, world, farm, outs, final, feed_ids, n_ticks, run_s, end_sim, db, setup_s) -> dict:
    interval = args.interval_min * 60.0
    speed = args.speed
    n_urls = len(world["urls"])
    feeds = [r for r in farm.log if "url" in r]
    pages = [r for r in farm.log if r["path"].startswith("/pages/")]
    by_url: dict[int, list[float]] = defaultdict(list)
    for r in feeds:
        by_url[r["url"]].append(farm.sim(r["t"]))
    # requests per URL per interval: fixed windows from the start, and the smallest gap between two requests
    windows = []
    for u in range(n_urls):
        c = Counter(int((t - SIM0) // interval) for t in by_url.get(u, []))
        windows += [c.get(w, 0) for w in range(int(args.intervals))]
    gaps = [b - a for ts in by_url.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]
    # overdue: each poll's request time against its URL's due time (read by the polling process before its tick)
    url_index = {f"http://{h}:{farm.port}{p}": i for i, (h, p) in enumerate(world["urls"])}
    req_times: dict[int, list[float]] = {u: sorted(ts) for u, ts in by_url.items()}
    overdue, early = [], 0
    worst_in: dict[int, float] = {}  # interval -> the most overdue poll requested in it
    polls_per_proc = Counter()
    for o in outs:
        for p in o["polls"]:
            polls_per_proc[o["index"]] += 1
            u = url_index[p["url"]]
            due = p["due"]
            tick_t = SIM0 + p["tick"] * TICK_S
            # this poll's request: the first request of the URL at or after its tick began
            t_req = next((t for t in req_times.get(u, []) if t >= tick_t - 1e-6), None)
            if t_req is None or due is None:
                continue
            overdue.append((t_req - due, u))
            w = min(int(args.intervals) - 1, int((t_req - SIM0) // interval))
            worst_in[w] = max(worst_in.get(w, 0.0), t_req - due)
            if t_req < due - 1e-6:
                early += 1
    waiting = [(end_sim - f.next_poll, url_index[url]) for url, f in final.items()
               if f.next_poll is not None and f.next_poll < end_sim]
    never = [u for u in range(n_urls) if u not in by_url]
    errors = {url_index[url]: f.last_error for url, f in final.items() if f.failures}
    # per-host spacing: arrivals on one host, per process and across processes (real seconds)
    by_host: dict[str, list[dict]] = defaultdict(list)
    for r in farm.log:
        by_host[r["host"]].append(r)
    pause_real = HOST_PAUSE_S / speed
    same_proc_gaps, any_gaps, overlaps, under_pause = [], [], 0, 0
    for host, rs in by_host.items():
        rs.sort(key=lambda r: r["t"])
        last_end: dict[int, float] = {}
        for a, b in zip(rs, rs[1:]):
            any_gaps.append(b["t"] - a["t"])
            if b["t"] - a.get("end", a["t"]) < pause_real:
                under_pause += 1
        for r in rs:
            if r["proc"] in last_end:
                same_proc_gaps.append(r["t"] - last_end[r["proc"]])
            last_end[r["proc"]] = r.get("end", r["t"])
        ends = []  # requests in flight at once on one host (any process)
        for r in rs:
            ends = [e for e in ends if e > r["t"]]
            if ends:
                overlaps += 1
            ends.append(r.get("end", r["t"]))
    # filters: what each subscription got against what its filter passes, of the items its URL served
    got_by_feed = defaultdict(list)
    for o in outs:
        for fid, titles in o["delivered"].items():
            got_by_feed[int(fid)].extend(titles)
    pairs_expected = pairs_got = missing = extra = dup = subs_exact = 0
    filtered_subs = 0
    for s, fid in zip(world["subs"], feed_ids):
        u = s["url"]
        want = set()
        for k in farm.served.get(u, ()):
            it = item(args.seed, u, k)
            if independent_pass(s["include"], s["exclude"], it["title"], it["description"]):
                want.add(it["title"])
        got_list = got_by_feed.get(fid, [])
        got = set(got_list)
        dup += len(got_list) - len(got)
        pairs_expected += len(want)
        pairs_got += len(got & want)
        missing += len(want - got)
        extra += len(got - want)
        subs_exact += got == want
        filtered_subs += bool(s["include"] or s["exclude"])
    followers = Counter(s["url"] for s in world["subs"])
    hosts_urls = Counter(h for h, _ in world["urls"])
    ticks = [t for o in outs for t in o["ticks"]]
    walls = [t["wall_s"] for t in ticks]
    busiest = max(ticks, key=lambda t: t["wall_s"])
    max_over = max(overdue, default=(0.0, None))
    max_wait = max(waiting, default=(0.0, None))
    res = {
        "setup": {"servers": args.servers, "subscriptions": len(world["subs"]), "urls": n_urls,
                  "hosts": args.hosts, "top_url_followers": followers.most_common(1)[0][1],
                  "urls_followed_by_100_plus": sum(1 for c in followers.values() if c >= 100),
                  "subscriptions_with_filters": filtered_subs, "host_urls_max": hosts_urls.most_common(1)[0][1],
                  "host_urls_min": min(hosts_urls.values()), "processes": args.processes,
                  "app": "none" if args.no_app else "stub (dict corpus + scopes; store side of ingestion, no index)",
                  "follow_links": args.follow_links, "interval_s": interval, "intervals": args.intervals,
                  "ticks_per_process": n_ticks, "speed": speed, "host_pause_s": HOST_PAUSE_S,
                  "host_pause_real_s": pause_real, "budget_s": 45.0, "budget_real_s": 45.0 / speed,
                  "database": db, "subscriptions_stored_s": round(setup_s, 1), "run_wall_s": round(run_s, 1),
                  "seed": args.seed},
        "requests": {"feed_requests": len(feeds), "page_requests": len(pages),
                     "status": dict(Counter(str(r["status"]) for r in feeds)),
                     "per_url_per_interval_max": max(windows, default=0),
                     "per_url_per_interval_mean": round(sum(windows) / max(1, len(windows)), 3),
                     "url_windows_with_2_plus": sum(1 for w in windows if w >= 2),
                     "url_windows": len(windows),
                     "min_gap_between_requests_of_a_url_s": round(min(gaps), 1) if gaps else None,
                     "min_gap_over_interval": round(min(gaps) / interval, 3) if gaps else None,
                     "requests_before_due": early,
                     "polls_per_process": {str(k): v for k, v in sorted(polls_per_proc.items())}},
        "schedule": {"most_overdue_s": round(max_over[0], 1), "most_overdue_url": max_over[1],
                     "most_overdue_over_interval": round(max_over[0] / interval, 3),
                     "overdue_p50_s": round(pct([o for o, _ in overdue], 0.5) or 0, 1),
                     "overdue_p95_s": round(pct([o for o, _ in overdue], 0.95) or 0, 1),
                     "polls_measured": len(overdue),
                     "most_overdue_by_interval_s": [round(worst_in.get(w, 0.0), 1) for w in range(int(args.intervals))],
                     "most_overdue_host": world["urls"][max_over[1]][0] if max_over[1] is not None else None,
                     "most_overdue_host_urls": hosts_urls[world["urls"][max_over[1]][0]] if max_over[1] is not None
                     else None,
                     "waiting_at_end_max_s": round(max_wait[0], 1), "waiting_at_end_urls": len(waiting),
                     "never_polled": len(never), "urls_with_failures": len(errors),
                     "errors": dict(list(errors.items())[:5])},
        "hosts": {"min_gap_same_process_real_s": round(min(same_proc_gaps), 4) if same_proc_gaps else None,
                  "min_gap_same_process_at_1x_s": round(min(same_proc_gaps) * speed, 2) if same_proc_gaps else None,
                  "min_gap_any_process_real_s": round(min(any_gaps), 4) if any_gaps else None,
                  "gaps_under_pause_any_process": under_pause, "gaps": len(any_gaps),
                  "requests_overlapping_another_on_its_host": overlaps},
        "filters": {"pairs_expected": pairs_expected, "pairs_delivered": pairs_got, "missing": missing,
                    "extra": extra, "duplicates": dup, "subscriptions_exact": subs_exact,
                    "subscriptions": len(world["subs"])},
        "ticks": {"wall_p50_s": round(pct(walls, 0.5), 3), "wall_p95_s": round(pct(walls, 0.95), 3),
                  "wall_max_s": round(max(walls), 3), "wall_max_at_1x_s": round(max(walls) * speed, 1),
                  "busiest": busiest, "late_start_max_s": round(max(t["late_s"] for t in ticks), 1),
                  "handed_back_total": sum(t["handed_back"] for t in ticks),
                  "ticks_over_budget": sum(1 for t in ticks if t["wall_s"] > 45.0 / speed)},
        "cpu": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                "path": "no model: fetch (httpx) + feedparser + filters + store (SQLAlchemy/psycopg) only",
                "cpu_s_per_process": {str(o["index"]): round(o["cpu_s"], 1) for o in outs},
                "maxrss_mib_per_process": {str(o["index"]): round(o["maxrss_mib"]) for o in outs},
                "load_average": os.getloadavg()[0],
                "store_calls": {k: [sum(o["store_calls"].get(k, [0, 0])[0] for o in outs),
                                    round(sum(o["store_calls"].get(k, [0, 0])[1] for o in outs), 1)]
                                for k in sorted({k for o in outs for k in o["store_calls"]})}},
    }
    res["acceptance"] = {
        "at_most_once_per_interval": (res["requests"]["min_gap_over_interval"] or 1) >= 0.9 - 1e-9 and early == 0,
        "no_feed_more_than_one_interval_overdue": max(max_over[0], max_wait[0]) <= interval and not never,
    }
    return res


def report(r: dict) -> None:
    s, q, sc, h, f, t, c = (r[k] for k in ("setup", "requests", "schedule", "hosts", "filters", "ticks", "cpu"))
    print(f"{s['servers']} servers, {s['subscriptions']} subscriptions ({s['subscriptions_with_filters']} with filters) "
          f"over {s['urls']} URLs on {s['hosts']} hosts (most followed URL: {s['top_url_followers']} servers; "
          f"{s['urls_followed_by_100_plus']} URLs followed by 100+; busiest host {s['host_urls_max']} URLs, "
          f"quietest {s['host_urls_min']})")
    print(f"{s['processes']} processes on {s['database']}, app: {s['app']}; follow links: {s['follow_links']}")
    print(f"{s['intervals']} intervals of {s['interval_s'] / 60:g} min = {s['ticks_per_process']} ticks per process, "
          f"simulated at {s['speed']}x (host pause {s['host_pause_s']:g} s -> {s['host_pause_real_s']:g} s real, "
          f"tick budget {s['budget_s']:g} s -> {s['budget_real_s']:g} s real); ran {s['run_wall_s']} s")
    print(f"\nrequests: {q['feed_requests']} feed ({q['status']}), {q['page_requests']} page; "
          f"polls per process {q['polls_per_process']}")
    print(f"  per URL per interval: max {q['per_url_per_interval_max']}, mean {q['per_url_per_interval_mean']} "
          f"({q['url_windows_with_2_plus']} of {q['url_windows']} URL-intervals had 2, fixed windows from the start)")
    print(f"  smallest gap between two requests of one URL: {q['min_gap_between_requests_of_a_url_s']} s = "
          f"{q['min_gap_over_interval']} interval (jitter floor 0.9); requests before the URL was due: "
          f"{q['requests_before_due']}")
    print(f"schedule: most overdue poll {sc['most_overdue_s']} s past due (URL {sc['most_overdue_url']}) = "
          f"{sc['most_overdue_over_interval']} interval; p50 {sc['overdue_p50_s']} s, p95 {sc['overdue_p95_s']} s "
          f"over {sc['polls_measured']} polls")
    print(f"  most overdue poll in each interval: {sc['most_overdue_by_interval_s']} s; the worst was on "
          f"{sc['most_overdue_host']} ({sc['most_overdue_host_urls']} URLs)")
    print(f"  at the end: {sc['waiting_at_end_urls']} URLs due and waiting (longest {sc['waiting_at_end_max_s']} s); "
          f"never polled: {sc['never_polled']}; URLs with failures: {sc['urls_with_failures']}")
    print(f"hosts: smallest gap on one host from one process {h['min_gap_same_process_real_s']} s real "
          f"(= {h['min_gap_same_process_at_1x_s']} s at 1x; pause {s['host_pause_s']:g} s); across processes "
          f"{h['min_gap_any_process_real_s']} s real; {h['gaps_under_pause_any_process']} of {h['gaps']} gaps under "
          f"the pause, {h['requests_overlapping_another_on_its_host']} requests began while another was in flight "
          f"on their host")
    print(f"filters: {f['pairs_delivered']}/{f['pairs_expected']} (subscription, item) pairs delivered that the "
          f"filter passes; {f['missing']} missing, {f['extra']} extra, {f['duplicates']} duplicates; "
          f"{f['subscriptions_exact']}/{f['subscriptions']} subscriptions exact")
    print(f"ticks: wall p50 {t['wall_p50_s']} s, p95 {t['wall_p95_s']} s, max {t['wall_max_s']} s real "
          f"(= {t['wall_max_at_1x_s']} s at 1x; busiest: tick {t['busiest']['tick']}, {t['busiest']['urls']} URLs, "
          f"{t['busiest']['copies']} copies); {t['ticks_over_budget']} ticks over the budget; "
          f"{t['handed_back_total']} URL leases handed back to the next tick; latest tick start "
          f"{t['late_start_max_s']} s simulated")
    print(f"CPU: {c['cpu']}, {c['cores']} cores, Python {c['python']}; {c['path']}; CPU s per process "
          f"{c['cpu_s_per_process']}; max RSS MiB {c['maxrss_mib_per_process']}; load average {c['load_average']:.2f}")
    calls = ", ".join(f"{k} {n} ({sec:g} s)"
                      for k, (n, sec) in sorted(c["store_calls"].items(), key=lambda kv: -kv[1][1]))
    print(f"store calls, both processes (calls, seconds): {calls}")
    a = r["acceptance"]
    print(f"\nacceptance: every URL at most once per interval: {'yes' if a['at_most_once_per_interval'] else 'NO'}; "
          f"no feed more than one interval overdue: {'yes' if a['no_feed_more_than_one_interval_overdue'] else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child(json.loads(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--subs", type=int, default=3000)
    ap.add_argument("--urls", type=int, default=300)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--intervals", type=float, default=4)
    ap.add_argument("--interval-min", type=int, default=15, help="FEED_INTERVAL_MINUTES (default 15)")
    ap.add_argument("--speed", type=float, default=20.0, help="simulated seconds per real second (default 20)")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--no-app", action="store_true", help="app=None (no ingestion at all) instead of the stub app")
    ap.add_argument("--follow-links", action="store_true", help="items link to pages, fetched and extracted")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    res = asyncio.run(run(args))
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
