"""/feed add | edit | remove | list, the "Summarise link" message command, and the loop that polls feeds.

The logic lives in ``bot/sources/`` and ``bot/handlers/core.py``; this file holds commands only.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Optional

import discord
from discord import app_commands
from discord.ext import commands, tasks

from ....render.discord import render_reply
from ....sources.filters import MAX_FILTER_CHARS
from ..respond import UserFacingError, defer

if TYPE_CHECKING:
    from ..client import PrecisBot

log = logging.getLogger("bot.adapters.discord")

MAX_URL = 500
_LINK = re.compile(r"https?://[^\s<>\"'`|]+", re.IGNORECASE)


def first_link(message: discord.Message) -> str | None:
    """The first http(s) link in a message: its text, then its embeds."""
    m = _LINK.search(message.content or "")
    if m:
        return m.group(0).rstrip(".,;:!?)]}*_~")
    for e in message.embeds:
        if e.url:
            return e.url
    return None


class FeedCog(commands.Cog, name="Feeds"):
    feed = app_commands.Group(
        name="feed",
        description="RSS/Atom feeds whose new articles join this server's articles and digests",
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),
    )

    def __init__(self, bot: PrecisBot, interval: float | None) -> None:
        self.bot = bot
        self.interval = interval
        if interval:
            self.ticker.change_interval(seconds=interval)
        self.summarise_menu = app_commands.ContextMenu(
            name="Summarise link", callback=self.summarise_link,
            allowed_contexts=app_commands.AppCommandContext(guild=True),
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.summarise_menu)
        if self.interval:
            self.ticker.start()

    async def cog_unload(self) -> None:
        self.ticker.cancel()
        self.bot.tree.remove_command(self.summarise_menu.name, type=self.summarise_menu.type)

    # ------------------------------------------------------------ polling
    @tasks.loop(seconds=60)
    async def ticker(self) -> None:
        try:
            await self.bot.feed_tick()
        except Exception:  # noqa: BLE001 - keep the loop alive; each feed's failure is logged by the poller
            log.exception("feed tick failed")

    @ticker.before_loop
    async def _before_ticker(self) -> None:
        await self.bot.wait_until_ready()

    # ------------------------------------------------------------ commands
    async def feed_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=name[:100], value=value)
                for name, value in self.bot.handlers.feed_choices(interaction.guild_id, current)]

    async def _run(self, interaction: discord.Interaction, fn, *args, private: bool = True, **kwargs) -> None:
        with self.bot.pool.reserve() as slot:
            await defer(interaction, private=private)
            reply = await slot.run(fn, *args, **kwargs)
        if not reply.ok:
            raise UserFacingError(reply.text)
        await self.bot.send_rendered(interaction, render_reply(reply), private=private)

    @feed.command(name="add", description="Follow an RSS or Atom feed: its new articles join this server's articles")
    @app_commands.describe(
        url="The feed's link (RSS or Atom)",
        include="Keep only items with one of these words or phrases (comma-separated)",
        exclude="Drop items with any of these words or phrases (comma-separated)",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def add(
        self,
        interaction: discord.Interaction,
        url: app_commands.Range[str, 1, MAX_URL],
        include: Optional[app_commands.Range[str, 1, MAX_FILTER_CHARS]] = None,
        exclude: Optional[app_commands.Range[str, 1, MAX_FILTER_CHARS]] = None,
    ) -> None:
        log.info("feed add by %s in guild %s: %s", interaction.user.id, interaction.guild_id, url[:200])
        await self._run(interaction, self.bot.handlers.feed_add, url, interaction.guild_id, interaction.user.id,
                        include=include, exclude=exclude, private=False)

    @feed.command(name="edit", description="Change a feed's filters (words or phrases its items must have or not have)")
    @app_commands.describe(
        feed="The feed (pick one as you type)",
        include="Keep only items with one of these (comma-separated); - clears it",
        exclude="Drop items with any of these (comma-separated); - clears it",
    )
    @app_commands.autocomplete(feed=feed_autocomplete)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def edit(
        self,
        interaction: discord.Interaction,
        feed: app_commands.Range[str, 1, MAX_URL],
        include: Optional[app_commands.Range[str, 1, MAX_FILTER_CHARS]] = None,
        exclude: Optional[app_commands.Range[str, 1, MAX_FILTER_CHARS]] = None,
    ) -> None:
        log.info("feed edit by %s in guild %s: %s", interaction.user.id, interaction.guild_id, feed[:200])
        await self._run(interaction, self.bot.handlers.feed_edit, feed, interaction.guild_id,
                        include=include, exclude=exclude, private=False)

    @feed.command(name="remove", description="Stop following one of this server's feeds")
    @app_commands.describe(feed="The feed (pick one as you type)")
    @app_commands.autocomplete(feed=feed_autocomplete)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def remove(self, interaction: discord.Interaction, feed: app_commands.Range[str, 1, MAX_URL]) -> None:
        log.info("feed remove by %s in guild %s: %s", interaction.user.id, interaction.guild_id, feed[:200])
        await self._run(interaction, self.bot.handlers.feed_remove, feed, interaction.guild_id, private=False)

    @feed.command(name="list", description="This server's feeds: status, last success, last error, items")
    async def list(self, interaction: discord.Interaction) -> None:
        reply = self.bot.handlers.feed_list(interaction.guild_id)
        await self.bot.respond_now(interaction, render_reply(reply), private=True)

    async def summarise_link(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Message command: summarise the first link in a message (and add the page to this server's articles)."""
        link = first_link(message)
        if not link:
            raise UserFacingError("That message has no link to summarise.")
        await self.bot.run_model_command(interaction, False, self.bot.handlers.summary, url=link,
                                         guild_id=interaction.guild_id)
