"""One Precis bot process for tests/test_stop.py: the real PrecisBot with its SIGTERM/SIGINT handling,
pointed at a FakeDiscord running in the test process, its store on PostgreSQL.

    python tests/stop_bot.py REST_BASE GATEWAY_URL DATA_DIR DATABASE_URL MODE [ARG]

MODE:
  summary URL   the summary model is the OpenAI-compatible server at URL (the test's slow fake)
  digest        digests tick every 0.5 s; each digest send prints ``SENDING <post id>`` and takes 3 s
  digest-stuck  as digest, but the send waits 60 s before it sends (longer than any grace period)
  feed URL      FEEDS=URL (a local feed), polled every tick (0.5 s)
  plain         nothing more

Prints ``READY`` once connected. Settings: STOP_GRACE_SECONDS from the environment (the test sets it).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.discord.client import PrecisBot  # noqa: E402
from bot.adapters.discord.runner import run_discord  # noqa: E402
from bot.adapters.discord.sender import DiscordDigestSender  # noqa: E402
from bot.app import Precis  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.store import Store  # noqa: E402
from tests.fakes import discord_payloads as P  # noqa: E402
from tests.fakes.discord_server import patch_discord_endpoints  # noqa: E402


def main() -> int:
    rest, gateway, data_dir, url, mode = sys.argv[1:6]
    arg = sys.argv[6] if len(sys.argv) > 6 else ""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    extra: dict = {}
    if mode == "summary":
        extra = {"summary_model": arg, "summary_backend": "openai", "summary_retries": 0}
    elif mode == "feed":
        # the test's feed hangs on the first poll: longer than the test takes, so that only the stop ends it
        extra = {"feeds": arg, "fetch_allow_private": True, "fetch_contact": f"pid {os.getpid()}",
                 "fetch_timeout_seconds": 300}
    settings = Settings(_env_file=None, data_dir=Path(data_dir), database_url=url, watch_corpus=False,
                        discord_token=P.DEFAULT_TOKEN, cooldown_seconds=0, ask_phrase="rules",
                        stop_grace_seconds=float(os.environ.get("STOP_GRACE_SECONDS", "20")), **extra)
    app = Precis(settings)
    app.load(progress=False)
    if mode in ("digest", "digest-stuck"):
        original = DiscordDigestSender.send
        pause = 60 if mode == "digest-stuck" else 3

        def slow_send(self, sub, post, digest):
            print(f"SENDING {post.id}", flush=True)
            time.sleep(pause)  # the test sends SIGTERM now
            return original(self, sub, post, digest)

        DiscordDigestSender.send = slow_send
    store = Store(url)
    bot = PrecisBot(app, store=store, digest_interval=0.5 if mode.startswith("digest") else None,
                    feed_interval=0.5 if mode == "feed" else None, watch=False, handle_signals=True)

    async def on_ready() -> None:
        print("READY", flush=True)

    bot.add_listener(on_ready, "on_ready")
    try:
        with patch_discord_endpoints(rest, gateway):
            code = run_discord(app, bot=bot)  # the bot's own entry point: the stop, then its exit code
    finally:
        store.close()
    print(f"STOPPED {code}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
