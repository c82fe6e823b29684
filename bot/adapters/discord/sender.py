"""The Discord half of a digest tick: post a digest to a channel, or find one already posted.

The tick (``DigestRunner.tick``) runs in a worker thread; this sender hands
each coroutine to the event loop and waits for it.

Finding an earlier attempt: every digest message carries ``Digest #<post id>``
in its footer and is sent with the post's nonce (discord.py sets
``enforce_nonce``, so Discord itself returns the first message instead of
creating a second one for a retry within a few minutes). After a crash, the
channel's messages since the post was claimed are searched for that footer
(or nonce) before anything is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Coroutine

import discord

from ...engines.digest import Digest, PermanentSendError
from ...render.discord import render_digest
from ...store import Post, Subscription
from .respond import message_kwargs, ping_role_kwargs

if TYPE_CHECKING:
    from .client import PrecisBot

log = logging.getLogger("bot.adapters.discord")

SEARCH_MARGIN_S = 300.0  # clock skew between us and Discord
SEARCH_LIMIT = 200


def digest_ref(post: Post) -> str:
    return f"Digest #{post.id}"


class DiscordDigestSender:
    def __init__(self, bot: PrecisBot, loop: asyncio.AbstractEventLoop, timeout: float = 120.0) -> None:
        self.bot = bot
        self.loop = loop
        self.timeout = timeout

    # called from the tick's worker thread
    def send(self, sub: Subscription, post: Post, digest: Digest) -> int:
        return self._call(self._send(sub, post, digest))

    def find(self, sub: Subscription, post: Post) -> int | None:
        return self._call(self._find(sub, post))

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(self.timeout)
        except TimeoutError:
            fut.cancel()
            raise

    # on the event loop
    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        ch = self.bot.get_channel(channel_id)
        if ch is None:
            try:
                ch = await self.bot.fetch_channel(channel_id)
            except (discord.NotFound, discord.Forbidden) as exc:
                raise PermanentSendError(f"channel {channel_id} is not reachable: {exc}") from exc
        if not isinstance(ch, discord.abc.Messageable):
            raise PermanentSendError(f"channel {channel_id} is not a text channel")
        return ch

    async def _send(self, sub: Subscription, post: Post, digest: Digest) -> int:
        ch = await self._channel(sub.channel_id)
        msg = render_digest(digest, ref=digest_ref(post))
        try:
            sent = await ch.send(nonce=post.nonce, **ping_role_kwargs(message_kwargs(msg), sub.ping_role_id))
        except (discord.Forbidden, discord.NotFound) as exc:
            raise PermanentSendError(f"cannot post in channel {sub.channel_id}: {exc}") from exc
        return sent.id

    async def _find(self, sub: Subscription, post: Post) -> int | None:
        ch = await self._channel(sub.channel_id)
        me = self.bot.user.id if self.bot.user else None
        since = datetime.fromtimestamp(post.created_at - SEARCH_MARGIN_S, tz=timezone.utc)
        ref = digest_ref(post)
        try:
            async for m in ch.history(limit=SEARCH_LIMIT, after=since, oldest_first=True):
                if me is not None and m.author.id != me:
                    continue
                if m.nonce is not None and str(m.nonce) == post.nonce:
                    return m.id
                for e in m.embeds:
                    text = (e.footer.text or "") if e.footer else ""
                    if text == ref or text.startswith(ref + " ·"):
                        return m.id
        except discord.Forbidden as exc:
            # Without Read Message History we rely on the nonce alone (Discord deduplicates for a few minutes).
            log.warning("digest: cannot read channel %s to check post %s (%s); resending with the same nonce",
                        sub.channel_id, post.id, exc)
        return None
