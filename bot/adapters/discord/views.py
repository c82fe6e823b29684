"""Buttons: show all supporting sentences / page through them, and page /articles."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from ...render.discord import DiscordMessage, render_reply
from .pool import Busy
from .respond import busy_text, describe, message_kwargs, send_error

if TYPE_CHECKING:
    from .client import PrecisBot

log = logging.getLogger("bot.adapters.discord")

VIEW_TIMEOUT = 15 * 60


class _BaseView(discord.ui.View):
    def __init__(self, bot: PrecisBot, timeout: float | None = VIEW_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        bot.track_view(self)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await self.bot.report_error(interaction, error)


class PagerView(_BaseView):
    """Previous / next through pages that are already rendered (no model work)."""

    def __init__(self, bot: PrecisBot, pages: list[DiscordMessage], index: int = 0) -> None:
        super().__init__(bot)
        self.pages = pages
        self.index = index
        self._sync()

    def _sync(self) -> None:
        self.prev_page.disabled = self.index <= 0
        self.next_page.disabled = self.index >= len(self.pages) - 1
        self.position.label = f"{self.index + 1} / {len(self.pages)}"

    async def _show(self, interaction: discord.Interaction, delta: int) -> None:
        self.index = max(0, min(len(self.pages) - 1, self.index + delta))
        self._sync()
        kw = message_kwargs(self.pages[self.index])
        kw.pop("allowed_mentions")
        await interaction.response.edit_message(view=self, allowed_mentions=discord.AllowedMentions.none(), **kw)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def prev_page(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, -1)

    @discord.ui.button(label="1 / 1", style=discord.ButtonStyle.secondary, disabled=True)
    async def position(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, +1)


class SupportView(_BaseView):
    """Under a summary or answer: one button that shows every supporting sentence (privately, paged)."""

    def __init__(self, bot: PrecisBot, pages: list[DiscordMessage], total: int) -> None:
        super().__init__(bot)
        self.pages = pages
        self.show_all.label = f"Show all {total} supporting sentences"

    @discord.ui.button(label="Show all supporting sentences", style=discord.ButtonStyle.primary)
    async def show_all(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        kw = message_kwargs(self.pages[0])
        if len(self.pages) > 1:
            kw["view"] = PagerView(self.bot, self.pages)
        await interaction.response.send_message(ephemeral=True, **kw)


class ArticlesView(_BaseView):
    """Previous / next page of /articles (re-runs the listing in the worker pool)."""

    def __init__(self, bot: PrecisBot, query: str | None, page: int, pages: int, per_page: int,
                 guild_id: int | None = None) -> None:
        super().__init__(bot)
        self.guild_id = guild_id  # the listing is this guild's articles
        self.query = query
        self.page = page
        self.pages = pages
        self.per_page = per_page
        self._sync()

    def _sync(self) -> None:
        self.prev_page.disabled = self.page <= 1
        self.next_page.disabled = self.page >= self.pages

    async def _go(self, interaction: discord.Interaction, delta: int) -> None:
        try:
            slot = self.bot.pool.reserve("articles")
        except Busy as exc:
            await send_error(interaction, busy_text(exc.wait))
            return
        with slot:
            await interaction.response.defer()  # acknowledge the click at once; the list may need the model
            reply = await slot.run(self.bot.handlers.articles, self.query, self.page + delta, self.per_page, self.guild_id)
        if not reply.ok:
            log.info("articles page failed: %s (%s)", reply.text, describe(interaction))
            await interaction.followup.send(reply.text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
            return
        self.page = int(reply.meta.get("page", self.page))
        self.pages = int(reply.meta.get("pages", self.pages))
        self._sync()
        kw = message_kwargs(render_reply(reply).messages[0])
        await interaction.edit_original_response(view=self, **kw)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def prev_page(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._go(interaction, -1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._go(interaction, +1)
