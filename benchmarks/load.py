"""Load through the fake Discord: the real PrecisBot, on the sample corpus, answering
N interactions fired at once (a burst, or spread over a window).

    python benchmarks/load.py [--n 200] [--mix 40,20,40] [--workers 2] [--max-wait 30]
                              [--notice 5] [--queue-limit 500] [--cooldown SECONDS] [--users K] [--spread SECONDS]
                              [--model-cache DIR] [--data-dir DIR] [--heartbeat-ms 250]
                              [--no-warm] [--timeout 900] [--json FILE]

What runs: tests/fakes/discord_server.py's FakeDiscord (an aiohttp server on
127.0.0.1, random port; nothing leaves the machine) and the real
``bot.adapters.discord.client.PrecisBot`` logged in to it, in one process and
one event loop. The bot syncs its commands, then ``--n`` slash commands are
dispatched over the gateway: ``--mix`` is the share of extractive /summary,
abstractive /summary and /ask (default 40,20,40). Each comes from its own user
(``--users`` fewer users makes some of them repeat), and the per-user cooldown
is off unless ``--cooldown SECONDS`` keeps one (the bot's default is 5).
The bot admits a request while its expected wait in its lane (cheap or model)
is at most ``--max-wait`` seconds (QUEUE_MAX_WAIT_SECONDS), tells the member
"Queued: about N s" past ``--notice`` (QUEUE_NOTICE_SECONDS), and answers
"busy" only past the limit; ``--queue-limit`` is the ceiling on waiting jobs
per lane (QUEUE_LIMIT).

What is measured, per command and overall:

* acknowledgement: dispatch -> the accepted interaction callback (the fake
  refuses a callback later than Discord's 3 s deadline: "ack>3s" counts those
  refused or later than 3 s, "no ack" those never acknowledged);
* outcome: answered (the real reply, embeds), busy (the bot's "I'm busy"
  answer; "queued" counts those told "Queued: about N s" first, whatever came
  after), cooldown, error (any other short error), lost (no response at all);
* latency of the answered ones: dispatch -> the last followup accepted by the
  fake (the user sees the answer then), p50 / p95 / max;
* the gateway heartbeat during the run: discord.py's heartbeat thread hands
  each beat to the event loop, so a blocked loop shows as a late beat (the
  fake's "max gap" between beats, against the interval) and as a late ACK
  on the bot's side ("beat -> ack": from the moment the heartbeat thread
  asks for a beat to the moment the loop has handled Discord's ACK).

Models: the embedder is the bundled MiniLM; abstractive mode loads the bundled
SmolLM2 GGUF and keeps a de-quantised copy in ``--model-cache`` (default
``data/models`` under the repository, the same place ``make run`` uses with the
default DATA_DIR=data, git-ignored; the first run writes it, later runs load it
in a second or two). Everything else (SQLite store, embedding cache) goes to
``--data-dir`` (default: a fresh temporary folder, removed afterwards). By
default the summary model and the /ask engine are loaded before the burst
(``--no-warm``: the first abstractive request pays for loading it) and the
load time is printed.

The machine is shared with whatever else runs: the load average before and
after is printed next to the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "-v" not in sys.argv and "--verbose" not in sys.argv:
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF de-quantising progress bar

SAMPLE = ROOT / "bot" / "data" / "sample_corpus.txt"
ACK_DEADLINE_S = 3.0

KINDS = ("summary", "abstractive", "ask")
LABELS = {"summary": "/summary extractive", "abstractive": "/summary abstractive", "ask": "/ask"}

# What people would ask of the sample corpus (two articles: Kazakhs leaving Xinjiang, Japan's travel ban).
SUMMARY_OPTIONS = [
    {"article": "Kazakhs"},
    {"article": "Japan travel ban"},
    {"article": "Xinjiang", "length": 5},
    {"topic": "coronavirus travel ban"},
    {"topic": "internment camps Xinjiang", "length": 4},
    {"article": "Tokyo lockdown", "length": 2},
]
ABSTRACTIVE_OPTIONS = [
    {"article": "Kazakhs", "mode": "abstractive"},
    {"article": "Japan travel ban", "mode": "abstractive"},
    {"topic": "coronavirus travel ban", "mode": "abstractive"},
]
QUESTIONS = [
    "How many ethnic Kazakhs is China allowing to leave?",
    "Who confirmed that China agreed to let Kazakhs leave?",
    "Which countries will Japan ban travelers from?",
    "Could Tokyo go into lockdown?",
    "What are the internment camps in Xinjiang?",
    "How many people live in Kazakhstan?",
    "What did the Asahi newspaper report?",
    "Why has the detention of minorities been a touchy issue in Kazakhstan?",
    "Who is the prime minister of Japan?",
    "What did the Kazakh Foreign Ministry say?",
]


# ------------------------------------------------------------------ helpers


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def parse_mix(text: str, n: int) -> dict[str, int]:
    """'40,20,40' or 'summary=40,abstractive=20,ask=40' -> counts summing to n (largest remainder)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if all("=" in p for p in parts):
        weights = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
    elif len(parts) == len(KINDS):
        weights = dict(zip(KINDS, map(float, parts)))
    else:
        raise SystemExit(f"--mix: give {len(KINDS)} numbers (summary,abstractive,ask) or name=weight pairs")
    unknown = set(weights) - set(KINDS)
    if unknown or any(w < 0 for w in weights.values()) or not sum(weights.values()):
        raise SystemExit(f"--mix: names are {', '.join(KINDS)}; weights >= 0, not all 0")
    total = sum(weights.values())
    exact = {k: n * weights.get(k, 0.0) / total for k in KINDS}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(KINDS, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def fmt_s(v: float | None) -> str:
    return "-" if v is None else (f"{v * 1000:.0f}ms" if v < 1 else f"{v:.2f}s")


@dataclass
class Sent:
    kind: str
    user: int
    rec: object  # InteractionRecord
    outcome: str = "lost"
    ack: float | None = None
    done: float | None = None  # dispatch -> final message, seconds
    late_ack: bool = False
    queued: bool = False  # told "Queued: about N s" before the answer


@dataclass
class HeartbeatProbe:
    """Times each gateway heartbeat on the bot's side: requested by discord.py's
    heartbeat thread -> Discord's ACK handled on the event loop."""

    delays: list[float] = field(default_factory=list)
    active: bool = False

    def install(self) -> None:
        import discord.gateway as gw

        probe = self
        orig_payload, orig_ack = gw.KeepAliveHandler.get_payload, gw.KeepAliveHandler.ack

        def get_payload(handler):
            handler._bench_requested = time.perf_counter()
            return orig_payload(handler)

        def ack(handler):
            requested = getattr(handler, "_bench_requested", None)
            if requested is not None and probe.active:
                probe.delays.append(time.perf_counter() - requested)
            handler._bench_requested = None
            return orig_ack(handler)

        gw.KeepAliveHandler.get_payload = get_payload
        gw.KeepAliveHandler.ack = ack


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# ------------------------------------------------------------------ the run


def build_app(args, data_dir: Path):
    from bot.app import Precis
    from bot.config import Settings
    from tests.fakes import discord_payloads as P

    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        corpus_path=SAMPLE,
        discord_dev_guild_id=P.DEFAULT_GUILD_ID,
        watch_corpus=False,
        workers=args.workers,
        queue_limit=args.queue_limit,
        queue_max_wait_seconds=args.max_wait,
        queue_notice_seconds=args.notice,
        cooldown_seconds=args.cooldown,
    )

    def generator():
        from models.generator import Generator

        return Generator(settings.summary_model, cache_dir=args.model_cache, device=settings.model_device,
                         threads=settings.model_threads or None, allow_download=False)

    app = Precis(settings, generator_factory=generator)
    app.load(progress=False)
    return app


def plan(args) -> list[tuple[str, dict, int]]:
    from tests.fakes import discord_payloads as P

    counts = parse_mix(args.mix, args.n)
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng = random.Random(args.seed)
    rng.shuffle(kinds)
    users = max(1, min(args.users or args.n, args.n))
    out = []
    for i, kind in enumerate(kinds):
        if kind == "summary":
            name, opts = "summary", dict(rng.choice(SUMMARY_OPTIONS))
        elif kind == "abstractive":
            name, opts = "summary", dict(rng.choice(ABSTRACTIVE_OPTIONS))
        else:
            name, opts = "ask", {"question": rng.choice(QUESTIONS)}
        out.append((kind, {"name": name, "options": opts}, P.DEFAULT_USER_ID + 1000 + i % users))
    return out


BUSY_PREFIX = "I'm busy"
QUEUED_PREFIX = "Queued:"


def responded(rec) -> bool:
    """A response other than the "Queued: about N s" note (that one is followed by the answer)."""
    msgs = rec.visible_messages()
    return bool(msgs) and not (msgs[-1].get("content") or "").startswith(QUEUED_PREFIX)


def classify(sent: Sent, busy_text: str) -> str:
    msgs = sent.rec.visible_messages()
    if not msgs:
        return "lost"
    msg = msgs[-1]
    content = msg.get("content") or ""
    if content.startswith(QUEUED_PREFIX):
        return "lost"  # told it was queued, never answered
    if msg.get("embeds") and not content.startswith(("Slow down", BUSY_PREFIX)):
        return "answered"
    if content == busy_text or content.startswith(BUSY_PREFIX):
        return "busy"
    if content.startswith("Slow down"):
        return "cooldown"
    return "error"


def was_queued(fake, rec) -> bool:
    hook = f"/webhooks/{fake.application_id}/{rec.token}/messages/@original"
    return any(r.method == "PATCH" and r.path == hook and QUEUED_PREFIX in str((r.json or {}).get("content"))
               for r in fake.requests)


async def run(args) -> dict:
    from bot.adapters.discord.client import PrecisBot
    from bot.adapters.discord.respond import BUSY_TEXT
    from tests.fakes.discord_server import FakeDiscord, running_client

    load_before = os.getloadavg()
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    probe = HeartbeatProbe()
    probe.install()

    with tempfile.TemporaryDirectory(prefix="precis-load-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        t = time.perf_counter()
        app = await asyncio.to_thread(build_app, args, data_dir)
        startup_s = time.perf_counter() - t
        warm = {}
        if args.warm:
            t = time.perf_counter()
            try:
                gen = await asyncio.to_thread(app.generator.get)
                warm["summary_model"] = f"loaded in {time.perf_counter() - t:.1f}s (from {getattr(gen, 'loaded_from', '?')})"
            except Exception as exc:  # noqa: BLE001 - report it; abstractive requests will get the error reply
                warm["summary_model"] = f"UNAVAILABLE: {exc}"
            t = time.perf_counter()
            await asyncio.to_thread(lambda: app.answerer)
            warm["answerer"] = f"built in {time.perf_counter() - t:.1f}s"

        work = plan(args)
        sent: list[Sent] = []
        async with FakeDiscord(heartbeat_interval_ms=args.heartbeat_ms) as fake:
            async with running_client(fake, lambda: PrecisBot(app, digest_interval=None, watch=False),
                                      ready_timeout=60, fail_on_error_logs=False) as bot:
                await fake.wait_until(lambda: fake.find_command("summary"), 30, what="the commands to sync")
                await fake.wait_until(lambda: len(fake.heartbeats) >= 2, 10, what="two heartbeats")
                payloads = [(kind, fake.make_command(p["name"], p["options"], user_id=user), user)
                            for kind, p, user in work]
                hb_start = len(fake.heartbeats)
                probe.active = True
                t0 = time.monotonic()
                for i, (kind, payload, user) in enumerate(payloads):
                    if args.spread:
                        delay = t0 + i * args.spread / len(payloads) - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    sent.append(Sent(kind, user, await fake.dispatch_interaction(payload)))
                dispatch_s = time.monotonic() - t0

                def finished() -> bool:
                    now = time.monotonic()
                    for s in sent:
                        r = s.rec
                        if responded(r):
                            continue
                        if not r.acked and now - r.dispatched_at > ACK_DEADLINE_S + 1:
                            continue  # never acknowledged in time: it cannot be answered any more
                        return False
                    return True

                last_report = time.monotonic()
                deadline = t0 + args.timeout
                while not finished() and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    if time.monotonic() - last_report > 15:
                        last_report = time.monotonic()
                        left = sum(1 for s in sent if not responded(s.rec))
                        print(f"  ... {time.monotonic() - t0:.0f}s: {len(sent) - left}/{len(sent)} have a response",
                              file=sys.stderr, flush=True)
                wall_s = time.monotonic() - t0
                probe.active = False
                beats = fake.heartbeats[hb_start:]
                pending_after = bot.pool.pending + bot.gen_pool.pending

            # when each interaction's last message was accepted
            hook = f"/webhooks/{fake.application_id}/"
            last_post: dict[str, float] = {}
            queued = {s.rec.token for s in sent if was_queued(fake, s.rec)}
            for r in fake.requests:
                if r.path.startswith(hook) and r.status == 200 and (
                        r.method == "POST" or (r.method == "PATCH" and QUEUED_PREFIX not in str((r.json or {}).get("content")))):
                    token = r.path[len(hook):].split("/", 1)[0]
                    last_post[token] = max(last_post.get(token, 0.0), r.time)

        for s in sent:
            r = s.rec
            s.outcome = classify(s, BUSY_TEXT)
            s.queued = r.token in queued
            s.ack = r.ack_latency
            s.late_ack = bool(r.late_callbacks) or (s.ack is not None and s.ack > ACK_DEADLINE_S)
            end = last_post.get(r.token)
            if r.callback_type == 4 and r.acked_at is not None:
                end = max(end or 0.0, r.acked_at)
            s.done = None if end is None or s.outcome == "lost" else end - r.dispatched_at

    gaps = [b.since_previous for b in beats if b.since_previous is not None]
    return {
        "sent": sent,
        "startup_s": startup_s,
        "warm": warm,
        "dispatch_s": dispatch_s,
        "wall_s": wall_s,
        "pending_after": pending_after,
        "heartbeats": {
            "interval_s": args.heartbeat_ms / 1000,
            "count": len(beats),
            "max_gap_s": max(gaps) if gaps else None,
            "p95_gap_s": pct(gaps, 0.95),
            "bot_ack_p50_s": pct(probe.delays, 0.5),
            "bot_ack_max_s": max(probe.delays) if probe.delays else None,
            "bot_acks": len(probe.delays),
        },
        "errors_logged": [f"{r.name}: {r.getMessage()}"[:200] for r in errors.records],
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


# ------------------------------------------------------------------ report


def rows_of(sent: list[Sent]) -> list[dict]:
    rows = []
    for label, group in [(LABELS[k], [s for s in sent if s.kind == k]) for k in KINDS] + [("all", sent)]:
        if not group:
            continue
        acks = [s.ack for s in group if s.ack is not None]
        answered = [s.done for s in group if s.outcome == "answered" and s.done is not None]
        rows.append({
            "command": label,
            "sent": len(group),
            **{o: sum(1 for s in group if s.outcome == o) for o in ("answered", "busy", "cooldown", "error", "lost")},
            "queued": sum(1 for s in group if s.queued),
            "ack_late": sum(1 for s in group if s.late_ack),
            "ack_missing": sum(1 for s in group if s.ack is None),
            "ack_p50": pct(acks, 0.5), "ack_p95": pct(acks, 0.95), "ack_max": max(acks) if acks else None,
            "answer_p50": pct(answered, 0.5), "answer_p95": pct(answered, 0.95),
            "answer_max": max(answered) if answered else None,
        })
    return rows


def report(args, res: dict) -> dict:
    sent = res["sent"]
    counts = parse_mix(args.mix, args.n)
    rows = rows_of(sent)
    la, lb = res["load_after"], res["load_before"]
    print()
    print(f"Precis load test: {len(sent)} interactions ({', '.join(f'{counts[k]} {LABELS[k]}' for k in KINDS)}), "
          + (f"spread over {args.spread:g}s" if args.spread else f"in a burst (dispatched in {res['dispatch_s']:.2f}s)"))
    print(f"bot: workers {args.workers} (+1 model lane), max wait {args.max_wait:g}s, notice past {args.notice:g}s, "
          f"queue ceiling {args.queue_limit}, "
          f"cooldown {'off' if not args.cooldown else f'{args.cooldown:g}s'}, {len(set(s.user for s in sent))} distinct users")
    print(f"machine: {os.cpu_count()} CPUs; load average {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f} before, "
          f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f} after")
    print(f"start-up: corpus + index {res['startup_s']:.1f}s"
          + "".join(f"; {k.replace('_', ' ')} {v}" for k, v in res["warm"].items()))
    print()
    head = ["command", "sent", "answered", "queued", "busy", "cooldown", "error", "lost", "ack>3s", "no ack",
            "ack p50", "ack p95", "ack max", "answer p50", "answer p95", "answer max"]
    table = [[r["command"], r["sent"], r["answered"], r["queued"], r["busy"], r["cooldown"], r["error"], r["lost"], r["ack_late"],
              r["ack_missing"], fmt_s(r["ack_p50"]), fmt_s(r["ack_p95"]), fmt_s(r["ack_max"]),
              fmt_s(r["answer_p50"]), fmt_s(r["answer_p95"]), fmt_s(r["answer_max"])] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    print(line(head))
    print(line(["-" * w for w in widths]))
    for i, row in enumerate(table):
        if i == len(table) - 1:
            print(line(["-" * w for w in widths]))
        print(line(row))
    print()
    hb = res["heartbeats"]
    print(f"gateway heartbeat (interval {hb['interval_s'] * 1000:.0f}ms): {hb['count']} beats during the run; "
          f"gap between beats p95 {fmt_s(hb['p95_gap_s'])}, max {fmt_s(hb['max_gap_s'])}; "
          f"beat -> ack on the bot p50 {fmt_s(hb['bot_ack_p50_s'])}, max {fmt_s(hb['bot_ack_max_s'])}")
    busy = [s.done for s in sent if s.outcome in ("busy", "cooldown") and s.done is not None]
    print(f"busy/cooldown answers: p50 {fmt_s(pct(busy, 0.5))}, max {fmt_s(max(busy) if busy else None)} after dispatch; "
          f"all responses in {res['wall_s']:.1f}s; worker slots still held after: {res['pending_after']}")
    late = sum(r["ack_late"] + r["ack_missing"] for r in rows[-1:])
    lost = rows[-1]["lost"] if rows else 0
    print(f"verdict: {'OK' if not late and not lost else 'PROBLEM'} — {late} acknowledgement(s) late or missing, "
          f"{lost} interaction(s) with no response, {len(res['errors_logged'])} ERROR log record(s)")
    for e in res["errors_logged"][:10]:
        print(f"  ERROR {e}")
    return {"rows": rows, **{k: v for k, v in res.items() if k != "sent"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="interactions to fire (default 200)")
    ap.add_argument("--mix", default="40,20,40", help="extractive summary, abstractive summary, ask shares (default 40,20,40)")
    ap.add_argument("--workers", type=int, default=2, help="worker threads (WORKERS; default 2)")
    ap.add_argument("--max-wait", type=float, default=30.0,
                    help="admit while the expected wait is at most this (QUEUE_MAX_WAIT_SECONDS; default 30)")
    ap.add_argument("--notice", type=float, default=5.0,
                    help="tell the member 'Queued: about N s' past this wait (QUEUE_NOTICE_SECONDS; default 5)")
    ap.add_argument("--queue-limit", type=int, default=500,
                    help="ceiling on jobs waiting per lane (QUEUE_LIMIT; default 500, 0: none)")
    ap.add_argument("--cooldown", type=float, default=0.0, help="per-user cooldown in seconds (default 0: off)")
    ap.add_argument("--users", type=int, default=0, help="distinct users (default: one per interaction)")
    ap.add_argument("--spread", type=float, default=0.0, help="dispatch over this many seconds (default 0: a burst)")
    ap.add_argument("--model-cache", type=Path, default=ROOT / "data" / "models",
                    help="where the de-quantised SmolLM2 is kept (default: data/models under the repository)")
    ap.add_argument("--data-dir", type=Path, default=None, help="DATA_DIR for the store and embedding cache (default: temp)")
    ap.add_argument("--heartbeat-ms", type=int, default=250, help="gateway heartbeat interval of the fake (default 250)")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="do not load the summary model before the burst")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up waiting for responses after this (default 900 s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("-v", "--verbose", action="store_true", help="the bot's INFO log on stderr")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be at least 1")

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if not args.verbose:  # one "busy, refused" warning per refused interaction: counted in the table instead
        logging.getLogger("bot.adapters.discord").setLevel(logging.ERROR)
        for noisy in ("discord", "bm25s", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass

    res = asyncio.run(run(args))
    out = report(args, res)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
