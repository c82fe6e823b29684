"""One Precis bot process for tests/test_shards_discord.py: the real PrecisBot serving some shards,
pointed at a FakeDiscord running in the test process, with its store on PostgreSQL.

    python tests/shard_bot.py REST_BASE GATEWAY_URL DATA_DIR DATABASE_URL SHARD_IDS SHARD_COUNT [hang]

``hang``: after its first digest message is created, print ``SENT <post id>`` and hang in the digest
thread before recording it (the test SIGKILLs the process there).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.discord.client import PrecisBot  # noqa: E402
from bot.adapters.discord.sender import DiscordDigestSender  # noqa: E402
from bot.app import Precis  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.store import Store  # noqa: E402
from tests.fakes import discord_payloads as P  # noqa: E402
from tests.fakes.discord_server import patch_discord_endpoints  # noqa: E402

LEASE = 3.0


def main() -> int:
    rest, gateway, data_dir, url, ids, count = sys.argv[1:7]
    hang = len(sys.argv) > 7 and sys.argv[7] == "hang"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    settings = Settings(_env_file=None, data_dir=Path(data_dir), database_url=url, shard_ids=ids, shard_count=int(count),
                        watch_corpus=False, discord_token=P.DEFAULT_TOKEN, cooldown_seconds=0)
    app = Precis(settings)
    app.load(progress=False)
    if hang:
        original = DiscordDigestSender.send

        def send_then_hang(self, sub, post, digest):
            message_id = original(self, sub, post, digest)
            print(f"SENT {post.id} {message_id}", flush=True)
            time.sleep(3600)  # SIGKILLed here: the message is out, the store does not know
            return message_id

        DiscordDigestSender.send = send_then_hang
    store = Store(url, lease_seconds=LEASE)
    bot = PrecisBot(app, store=store, digest_interval=0.5, feed_interval=None, watch=False)

    async def on_ready() -> None:
        print(f"READY {sorted(g.id for g in bot.guilds)}", flush=True)

    bot.add_listener(on_ready, "on_ready")
    with patch_discord_endpoints(rest, gateway):
        bot.run(P.DEFAULT_TOKEN, log_handler=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
