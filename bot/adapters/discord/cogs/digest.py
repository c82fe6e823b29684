"""/digest now | subscribe | unsubscribe | status, and the scheduler loop that posts them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

import discord
from discord import app_commands
from discord.ext import commands, tasks

from ....render.discord import COLOR_DIGEST, render_digest
from ....store import Schedule, ScheduleError, StoreError
from ....store.schedule import resolve_zone, suggest_zones
from ..respond import NO_MENTIONS, UserFacingError, defer, message_kwargs

if TYPE_CHECKING:
    from ..client import PrecisBot

log = logging.getLogger("bot.adapters.discord")

TIMES = [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]


def _ts(t: float | None) -> str:
    return "never" if not t else f"<t:{int(t)}:f> (<t:{int(t)}:R>)"


class DigestCog(commands.Cog, name="Digest"):
    finish_tick_on_stop = True  # a clean stop lets the tick in progress finish its post (client.stop_gracefully)

    digest = app_commands.Group(
        name="digest",
        description="News digests posted to a channel on a schedule",
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),
    )

    def __init__(self, bot: PrecisBot, interval: float | None) -> None:
        self.bot = bot
        self.interval = interval
        if interval:
            self.ticker.change_interval(seconds=interval)

    async def cog_load(self) -> None:
        if self.interval:
            self.ticker.start()

    async def cog_unload(self) -> None:
        self.ticker.cancel()

    # ------------------------------------------------------------ scheduler
    @tasks.loop(seconds=30)
    async def ticker(self) -> None:
        try:
            await self.bot.digest_tick()
        except Exception:  # noqa: BLE001 - keep the loop alive; the tick logged the details
            log.exception("digest tick failed")

    @ticker.before_loop
    async def _before_ticker(self) -> None:
        await self.bot.wait_until_ready()

    # ------------------------------------------------------------ commands
    async def at_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        cur = current.strip()
        picks = [t for t in TIMES if t.startswith(cur)] if cur else TIMES[::4]
        try:
            exact = Schedule.daily(cur).hhmm if cur else None
        except ScheduleError:
            exact = None
        if exact and exact not in picks:
            picks.insert(0, exact)
        # The times are in the zone chosen in tz: (when one is), else UTC.
        typed_tz = str(getattr(interaction.namespace, "tz", None) or "").strip()
        try:
            zone = resolve_zone(typed_tz) if typed_tz else "UTC"
        except ScheduleError:
            zone = ""  # not a zone (yet): say nothing rather than something wrong
        return [app_commands.Choice(name=f"{t} {zone}".strip(), value=t) for t in picks[:25]]

    async def tz_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=z, value=z) for z in suggest_zones(current, 25)]

    @digest.command(name="now", description="Show now what this channel's next digest holds (or the newest articles)")
    @app_commands.describe(private="Only you see it")
    async def now(self, interaction: discord.Interaction, private: bool = True) -> None:
        sub = self.bot.store.subscription_for_channel(interaction.channel_id or 0)
        with self.bot.pool.reserve() as slot:
            await defer(interaction, private=private)
            digest = await slot.run(self.bot.digests.preview, sub, guild_id=interaction.guild_id)
        heading = "Next digest (preview)" if sub else "Newest articles"
        empty = "Nothing new since the last digest." if sub else "The corpus is empty."
        msg = render_digest(digest, heading=heading, empty_text=empty)
        await interaction.followup.send(ephemeral=private, wait=True, **message_kwargs(msg))
        interaction.extras["answered"] = True

    @digest.command(name="subscribe", description="Post a digest of new articles to a channel, daily at a time or every N minutes")
    @app_commands.describe(
        channel="The text channel to post in",
        at="Daily, at this time (HH:MM, in tz: or else UTC); the default is 08:00",
        tz="Time zone of the daily time, e.g. America/New_York (the default is UTC)",
        every="Or every this many minutes (5 to 10080) instead of daily",
        ping="A role each digest mentions (opt-in; without it a digest pings no one)",
    )
    @app_commands.autocomplete(at=at_autocomplete, tz=tz_autocomplete)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def subscribe(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        at: Optional[app_commands.Range[str, 4, 9]] = None,
        tz: Optional[app_commands.Range[str, 1, 64]] = None,
        every: Optional[app_commands.Range[int, 5, 10080]] = None,
        ping: Optional[discord.Role] = None,
    ) -> None:
        if at and every:
            raise UserFacingError("Give `at:` (a daily time) or `every:` (minutes), not both.")
        if tz and every:
            raise UserFacingError("`tz:` sets the time zone of a daily `at:` time; an `every:` interval is the same "
                                  "in every zone, so leave `tz:` out.")
        if ping is not None and (ping.is_default() or (interaction.guild_id and ping.guild.id != interaction.guild_id)):
            raise UserFacingError("Pick a role of this server to ping (not @everyone).")
        try:
            schedule = Schedule.every(every) if every else Schedule.daily(at or "08:00", tz)
        except ScheduleError as exc:
            raise UserFacingError(str(exc)) from None
        perms = channel.permissions_for(channel.guild.me) if channel.guild.me else None
        if perms is not None and not (perms.send_messages and perms.embed_links and perms.view_channel):
            raise UserFacingError(f"I can't post embeds in {channel.mention}: I need View Channel, Send Messages and Embed Links there.")
        await defer(interaction, private=False)
        await self.bot.pool.run_background(self.bot.digests.sync_articles)
        try:
            sub, created = await self.bot.pool.run_background(
                self.bot.store.subscribe, interaction.guild_id, channel.id, schedule, interaction.user.id,
                ping_role_id=ping.id if ping is not None else None,
            )
        except StoreError as exc:
            raise UserFacingError(str(exc)) from None
        verb = "will get" if created else "now gets"
        log.info("digest: %s subscribed channel %s (%s, ping role %s) in guild %s", interaction.user.id, channel.id,
                 schedule.to_text(), sub.ping_role_id, interaction.guild_id)
        description = f"{channel.mention} {verb} a digest of new articles {schedule.describe()}.\nNext: {_ts(sub.next_due)}"
        if ping is not None:
            description += f"\nEach digest pings {ping.mention}."
            if not ping.mentionable and not (perms is not None and perms.mention_everyone):
                description += (f"\nNote: {ping.mention} is not mentionable and I lack Mention @everyone in "
                                f"{channel.mention}, so Discord will not notify its members.")
        else:
            description += "\nDigests ping no one (add `ping:` to mention a role)."
        embed = discord.Embed(
            title="Digest subscribed" if created else "Digest schedule changed",
            description=description,
            color=COLOR_DIGEST,
        )
        await interaction.followup.send(embed=embed, allowed_mentions=NO_MENTIONS, wait=True)
        interaction.extras["answered"] = True

    @digest.command(name="unsubscribe", description="Stop posting digests to a channel")
    @app_commands.describe(channel="The channel to stop posting in")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def unsubscribe(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        await defer(interaction, private=False)
        removed = await self.bot.pool.run_background(self.bot.store.unsubscribe, interaction.guild_id, channel.id)
        if not removed:
            raise UserFacingError(f"{channel.mention} has no digest subscription.")
        log.info("digest: %s unsubscribed channel %s in guild %s", interaction.user.id, channel.id, interaction.guild_id)
        await interaction.followup.send(f"{channel.mention} will get no more digests.", allowed_mentions=NO_MENTIONS, wait=True)
        interaction.extras["answered"] = True

    @digest.command(name="status", description="This server's digest subscriptions and when each posts next")
    async def status(self, interaction: discord.Interaction) -> None:
        subs = self.bot.store.subscriptions(interaction.guild_id)
        embed = discord.Embed(title="Digest subscriptions", color=COLOR_DIGEST)
        if not subs:
            embed.description = "None yet. A server manager can add one with `/digest subscribe`."
        for sub in subs[:25]:
            last = self.bot.store.last_sent(sub.id)
            waiting = self.bot.store.count_after(sub.last_cursor, sub.guild_id)
            pending = self.bot.store.posts(sub.id, state="pending")
            lines = [
                f"Schedule: {sub.schedule.describe()}",
                f"Next: {_ts(sub.next_due)}",
                f"Last post: {_ts(last.sent_at) if last else 'none yet'}"
                + (f" ({len(last.article_ids)} article(s))" if last and last.kind == "digest" else ""),
                f"New articles waiting: {waiting}",
                f"Ping: <@&{sub.ping_role_id}>" if sub.ping_role_id else "Ping: no one",
            ]
            if pending:
                lines.append(f"Retrying a post (attempt {pending[0].attempts})" + (f": {pending[0].last_error[:100]}" if pending[0].last_error else ""))
            embed.add_field(name=f"#{self._channel_name(sub.channel_id)}", value="\n".join(lines)[:1024], inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    def _channel_name(self, channel_id: int) -> str:
        ch = self.bot.get_channel(channel_id)
        return getattr(ch, "name", None) or str(channel_id)

