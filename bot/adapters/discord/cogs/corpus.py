"""/corpus reload (Manage Server)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from ....render.discord import COLOR_INFO, truncate
from ..respond import NO_MENTIONS, defer

if TYPE_CHECKING:
    from ..client import PrecisBot

log = logging.getLogger("bot.adapters.discord")


class CorpusCog(commands.Cog, name="Corpus"):
    corpus = app_commands.Group(
        name="corpus",
        description="Manage the article corpus",
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: PrecisBot) -> None:
        self.bot = bot

    @corpus.command(name="reload", description="Load new articles from CORPUS_PATH now (no restart needed)")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reload(self, interaction: discord.Interaction) -> None:
        with self.bot.pool.reserve() as slot:
            await defer(interaction, private=True)
            report = await slot.run(self.bot.reload_corpus)
        lines = [report.summary()]
        for issue in report.issues[:5]:
            lines.append(f"• skipped {issue}")
        if len(report.issues) > 5:
            lines.append(f"…and {len(report.issues) - 5} more (see the log)")
        embed = discord.Embed(title="Corpus reloaded", description=truncate("\n".join(lines), 4000), color=COLOR_INFO)
        log.info("corpus reload by %s in guild %s: %s", interaction.user.id, interaction.guild_id, report.summary())
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS, wait=True)
        interaction.extras["answered"] = True
