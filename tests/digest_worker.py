"""A digest process for tests/test_shards.py: the real :class:`DigestRunner` tick loop (claim ->
find/send -> record) against a shared store, serving some Discord shards.

The Discord channel is a file: ``send`` appends one JSON line (channel, post, nonce, this process)
and returns its line number as the message id; ``find`` looks for the post's nonce there, as the
real sender searches a channel for the post's footer. Composing a digest is stubbed (no model): what
is under test is who posts what, and how often.

    python tests/digest_worker.py URL SHARD_IDS SHARD_COUNT CHANNEL_FILE SECONDS [hang]

``hang``: after the first message is written, print ``SENT <post id>`` and hang before recording it
(the test SIGKILLs the process there: posted, not recorded).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.engines.digest import DigestRunner  # noqa: E402
from bot.store import Store  # noqa: E402

LEASE = 2.0


class Digest:
    empty = False

    def __init__(self, post) -> None:
        self.post = post

    def shown(self) -> list[dict]:
        return [{"articles": list(self.post.article_ids), "sentences": []}]


class Runner(DigestRunner):
    def compose(self, post, guild_id=None):
        return Digest(post)


class FileChannel:
    def __init__(self, path: Path, hang: bool) -> None:
        self.path = path
        self.hang = hang

    def _lines(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def find(self, sub, post) -> int | None:
        for i, m in enumerate(self._lines(), 1):
            if m["nonce"] == post.nonce and m["channel"] == sub.channel_id:
                return i
        return None

    def send(self, sub, post, digest) -> int:
        with self.path.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(json.dumps({"channel": sub.channel_id, "post": post.id, "nonce": post.nonce,
                                "articles": list(post.article_ids), "pid": os.getpid()}) + "\n")
            f.flush()
            os.fsync(f.fileno())
            fcntl.flock(f, fcntl.LOCK_UN)
        n = len(self._lines())
        if self.hang:
            print(f"SENT {post.id}", flush=True)
            time.sleep(3600)  # killed here: the message is out, the store does not know
        return n


def main() -> int:
    url, ids, count, channel, seconds = sys.argv[1:6]
    hang = len(sys.argv) > 6 and sys.argv[6] == "hang"
    store = Store(url, lease_seconds=LEASE)
    store.set_shards([int(i) for i in ids.split(",")], int(count))
    app = SimpleNamespace(settings=SimpleNamespace(digest_empty_note=False), _lock=threading.Lock(),
                          corpus=SimpleNamespace(articles=[]))
    runner = Runner(app, store, owner=f"worker-{ids}-{os.getpid()}")
    sender = FileChannel(Path(channel), hang)
    print("READY", flush=True)
    end = time.time() + float(seconds)
    posted = recovered = 0
    while time.time() < end:
        result = runner.tick(None, sender)
        posted += len(result.posted)
        recovered += len(result.recovered)
        time.sleep(0.1)
    print(f"DONE posted={posted} recovered={recovered}", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
