"""``run_discord(app)``: start the bot with DISCORD_TOKEN until it is stopped."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import aiohttp
import discord

from ...app import Precis

log = logging.getLogger("bot.adapters.discord")


class RedactSecret(logging.Filter):
    """Belt and braces: a log record that somehow holds the token gets it replaced."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            try:
                msg = record.getMessage()
            except Exception:  # noqa: BLE001 - leave odd records alone
                return True
            if self.secret in msg:
                record.msg = msg.replace(self.secret, "[DISCORD_TOKEN]")
                record.args = ()
        return True


def install_redaction(secret: str) -> RedactSecret:
    f = RedactSecret(secret)
    for handler in logging.getLogger().handlers:
        handler.addFilter(f)
    return f


def remove_redaction(f: RedactSecret) -> None:
    for handler in logging.getLogger().handlers:
        handler.removeFilter(f)


def run_discord(app: Precis, bot=None) -> int:
    """Run the bot until it is stopped: 0 after a clean stop (SIGTERM, SIGINT: the bot's own stop
    sequence), 1 when Discord cannot be reached or refuses the token, 2 without a token. ``bot``: a
    :class:`PrecisBot` built by the caller (tests); by default one with the settings' intervals."""
    from .client import PrecisBot

    settings = app.settings
    if settings.discord_token is None:
        print("No DISCORD_TOKEN set (environment or .env).")
        return 2
    token = settings.discord_token.get_secret_value().strip()
    redaction = install_redaction(token)
    if bot is None:
        bot = PrecisBot(app, handle_signals=True)
    where = f"dev guild {settings.discord_dev_guild_id}" if settings.discord_dev_guild_id else "all guilds (global sync)"
    log.info("starting the Discord bot: commands for %s, data in %s", where, settings.data_dir)
    try:
        bot.run(token, log_handler=None)  # logging is set up once, in bot.__main__
    except discord.LoginFailure:
        log.error("Discord refused the token in DISCORD_TOKEN (login failed): check it in .env or the environment")
        return 1
    except discord.PrivilegedIntentsRequired as exc:
        log.error("Discord refused the requested intents: %s", exc)
        return 1
    except discord.HTTPException as exc:
        log.error("Discord error while starting: %s %s", exc.status, exc.text)
        return 1
    except (aiohttp.ClientError, OSError) as exc:
        log.error("cannot reach Discord: %s: %s", exc.__class__.__name__, exc)
        return 1
    finally:
        remove_redaction(redaction)
    if bot.stopping:
        log.info("stopped")
        _exit_if_work_lingers(bot.stop_deadline)
    return 0


def _exit_if_work_lingers(deadline: float | None) -> None:
    """After the clean stop, work still running in a worker thread (a generation past the grace period)
    would hold the interpreter's exit until it ends: wait for it until the deadline, then exit 0 now."""
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    for t in others:
        t.join(max(0.0, (deadline or 0.0) - time.monotonic()))
    left = [t.name for t in others if t.is_alive()]
    if left:
        log.warning("exiting with work still running past the grace period: %s", ", ".join(left[:5]))
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
