"""Helpers for tests that run real bot processes (tests/shard_bot.py, tests/stop_bot.py) against the
fake Discord: reading their stdout lines, and the digest messages they posted."""

from __future__ import annotations

import asyncio
import time

from tests.fakes.discord_server import FakeDiscord


async def read_line(proc, prefix: str, timeout: float) -> str:
    """The first stdout line of ``proc`` that starts with ``prefix`` (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if not raw:
            break
        line = raw.decode().strip()
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} from bot process {proc.pid}")


def digest_messages(fake: FakeDiscord, channel_id: int) -> list[dict]:
    """The digest posts in a channel (their embed's footer starts with "Digest #")."""
    return [m for m in fake.messages_in(channel_id)
            if m["embeds"] and (m["embeds"][-1].get("footer") or {}).get("text", "").startswith("Digest #")]
