"""Sending replies and errors: embeds from the renderer's dicts, no mentions, ephemeral errors."""

from __future__ import annotations

import logging
import time
from typing import Any

import discord
from discord import app_commands

from ...render.discord import DiscordMessage, RenderedReply

log = logging.getLogger("bot.adapters.discord")

NO_MENTIONS = discord.AllowedMentions.none()
BUSY_TEXT = "I'm busy right now: try again shortly."
QUEUED_PREFIX = "Queued:"


def about(seconds: float) -> str:
    """'about 12 s', 'about 3 min': a wait as a member reads it (never 'about 0 s')."""
    seconds = max(1.0, float(seconds))
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


def busy_text(wait: float | None = None) -> str:
    """The refusal past QUEUE_MAX_WAIT_SECONDS, with the wait it would have been when known."""
    if wait is None:
        return BUSY_TEXT
    return f"I'm busy right now (the wait would be {about(wait)}): try again shortly."


def queued_text(eta: float, ahead: int) -> str:
    others = f" behind {ahead} other request{'s' if ahead != 1 else ''}" if ahead else ""
    return f"{QUEUED_PREFIX} {about(eta)}{others}. The answer will appear here."


class UserFacingError(app_commands.AppCommandError):
    """A problem the user can fix; its text is shown to them as is (ephemeral)."""


class CooldownActive(app_commands.CheckFailure):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"cooldown: {retry_after:.1f}s left")
        self.retry_after = retry_after


def embeds_of(msg: DiscordMessage) -> list[discord.Embed]:
    return [discord.Embed.from_dict(e) for e in msg.embeds]


def message_kwargs(msg: DiscordMessage) -> dict[str, Any]:
    kw: dict[str, Any] = {"embeds": embeds_of(msg), "allowed_mentions": NO_MENTIONS}
    if msg.content:
        kw["content"] = msg.content
    return kw


def ping_role_kwargs(kw: dict[str, Any], role_id: int | None) -> dict[str, Any]:
    """A message's kwargs that mention one role (an opt-in digest ping) and nothing else: the
    mention opens the content and ``allowed_mentions`` names exactly that role (no users, no @everyone,
    no other role, whatever the article text holds). ``role_id`` None: unchanged (no mentions)."""
    if not role_id:
        return kw
    out = dict(kw)
    content = f"<@&{int(role_id)}>"
    if kw.get("content"):
        content += " " + kw["content"]
    out["content"] = content[:2000]
    out["allowed_mentions"] = discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(int(role_id))],
                                                      replied_user=False)
    return out


def stamp(interaction: discord.Interaction, what: str) -> None:
    """Remember when an interaction was first ``received``, ``acked`` or ``answered`` (``time.monotonic()``,
    in ``interaction.extras``), for the metrics (see :func:`timings`)."""
    interaction.extras.setdefault(f"{what}_at", time.monotonic())


def timings(interaction: discord.Interaction) -> tuple[float | None, float | None]:
    """(seconds to acknowledge, seconds to answer) since the interaction was received; None: not known
    (or not done). A response sent without :func:`stamp` counts as sent now."""
    extras = interaction.extras
    received = extras.get("received_at")
    if received is None:
        return None, None
    now = time.monotonic()
    acked = extras.get("acked_at")
    if acked is None and interaction.response.is_done():
        acked = now
    answered = extras.get("answered_at", now)
    return (None if acked is None else acked - received), answered - received


async def defer(interaction: discord.Interaction, *, private: bool) -> None:
    """Acknowledge at once ("thinking..."); remember whether the placeholder is public."""
    await interaction.response.defer(thinking=True, ephemeral=private)
    stamp(interaction, "acked")
    interaction.extras["public_defer"] = not private


async def tell_queued(interaction: discord.Interaction, eta: float, ahead: int) -> None:
    """After the defer: turn the "thinking..." placeholder into "Queued: about N s" (best effort);
    the answer then replaces this note (see :func:`send_rendered`)."""
    try:
        await interaction.edit_original_response(content=queued_text(eta, ahead), allowed_mentions=NO_MENTIONS)
        interaction.extras["queued_note"] = True
    except discord.HTTPException as exc:
        log.warning("could not tell the user about the queue (%s)", exc)


async def send_rendered(interaction: discord.Interaction, rendered: RenderedReply, *, private: bool,
                        view: discord.ui.View | None = None) -> list[discord.WebhookMessage]:
    """Follow a deferred interaction up with the rendered messages; ``view`` goes on the last one."""
    sent = []
    last = len(rendered.messages) - 1
    for i, msg in enumerate(rendered.messages):
        kw = message_kwargs(msg)
        if i == last and view is not None:
            kw["view"] = view
        if i == 0 and interaction.extras.pop("queued_note", False):
            # The placeholder says "Queued: ..." (it is no longer "thinking", so a followup would be a new
            # message): the first message of the answer replaces the note instead.
            kw.setdefault("content", None)
            sent.append(await interaction.edit_original_response(**kw))
            continue
        sent.append(await interaction.followup.send(ephemeral=private, wait=True, **kw))
    interaction.extras["answered"] = True
    stamp(interaction, "answered")
    return sent


async def send_error(interaction: discord.Interaction, text: str) -> None:
    """A short ephemeral message, whatever state the interaction is in."""
    text = text[:1900]
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            stamp(interaction, "acked")
            return
        if interaction.extras.get("public_defer") and not interaction.extras.get("answered"):
            # The public "thinking..." placeholder would turn into a public error: remove it first.
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                pass
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as exc:
        log.warning("could not tell the user about an error (%s): %s", exc, text)


def describe(interaction: discord.Interaction) -> str:
    """Context for a log line: what was run, by whom, where (never a token)."""
    cmd = interaction.command.qualified_name if interaction.command else (interaction.data or {}).get("custom_id", "?")
    opts = {}
    try:
        opts = {k: (v if not isinstance(v, str) else v[:80]) for k, v in vars(interaction.namespace).items()}
    except Exception:  # noqa: BLE001 - best effort
        pass
    return (f"/{cmd} user={interaction.user.id if interaction.user else '?'} guild={interaction.guild_id} "
            f"channel={interaction.channel_id} interaction={interaction.id} options={opts}")
