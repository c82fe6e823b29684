"""The Precis Discord client: built services come in through ``__init__``
(discord.py's advanced_startup example), cogs load and commands sync in
``setup_hook``, one error handler on the tree."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import discord
from discord import app_commands
from discord.ext import commands
from models.registry import ModelUnavailable

from ...app import LoadReport, Precis
from ...engines.digest import DigestRunner, TickResult
from ...handlers.core import Handlers
from ...handlers.reply import Reply
from ...metrics import BotMetrics, MetricsServer
from ...render.discord import RenderedReply, render_reply
from ...store import Store, StoreError, open_store
from ...store.listen import ArticleListener, conninfo_of
from .cooldown import Cooldowns
from .pool import Busy, WorkerPool
from .respond import (
    NO_MENTIONS,
    CooldownActive,
    UserFacingError,
    busy_text,
    defer,
    describe,
    message_kwargs,
    send_error,
    send_rendered,
    stamp,
    tell_queued,
    timings,
)
from .sender import DiscordDigestSender
from .views import SupportView

log = logging.getLogger("bot.adapters.discord")

DIGEST_INTERVAL_S = 30.0
FEED_TICK_S = 60.0  # how often due feeds are looked for (each feed has its own FEED_INTERVAL_MINUTES)
FETCHED_SYNC_S = 2.0  # PostgreSQL: how often other processes' new feed and link articles are looked for
HEARTBEAT_S = 1.0  # how often the event loop tells the metrics it turns (/healthz)
STOPPING_TEXT = "Precis is restarting right now: try again in a moment."
STOP_WATCHDOG_S = 5.0  # a process still alive this long after its grace period exits anyway


def shard_options(settings) -> dict[str, Any]:
    """discord.py's sharding options for SHARD_COUNT / SHARD_IDS: one shard id -> ``shard_id`` on a
    plain client; several (or all of SHARD_COUNT > 1) -> ``shard_ids`` on an auto-sharded one."""
    ids, count = settings.shards, settings.shard_count
    if count <= 1:
        return {}
    if ids is not None and len(ids) == 1:
        return {"shard_id": ids[0], "shard_count": count}
    return {"shard_ids": list(ids) if ids is not None else None, "shard_count": count}


def describe_shards(settings) -> str:
    ids, count = settings.shards, settings.shard_count
    if count <= 1:
        return "one (no sharding)"
    return f"{','.join(map(str, ids)) if ids is not None else 'all'} of {count}"


def outcome_of(error: BaseException) -> str:
    """The metrics' outcome of a command that ended in ``error``: busy, cooldown, refused (the member's
    request or permissions), failed (our side: a bug, the database, the model)."""
    if isinstance(error, Busy):
        return "busy"
    if isinstance(error, CooldownActive):
        return "cooldown"
    if isinstance(error, (UserFacingError, app_commands.CheckFailure, app_commands.TransformerError)):
        return "refused"
    return "failed"


def command_name(interaction: discord.Interaction) -> str:
    """The metrics' label of an interaction: the command's qualified name ("ask", "digest now")."""
    cmd = interaction.command
    return cmd.qualified_name if cmd is not None else "unknown"


def job_kind(fn: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    """The kind of job a command is, for its lane and its expected cost: abstractive (the model lane),
    ask, summary, link (a summary of a fetched page: network time), or the handler's name."""
    if kwargs.get("mode") == "abstractive":
        return "abstractive"
    name = getattr(fn, "__name__", "other")
    if name == "summary" and kwargs.get("url"):
        return "link"
    return name


def _exit_now(why: str) -> None:
    """Leave the process now, exit status 0 (the stop was asked for): the clean stop's last resort."""
    log.warning("exiting now: %s", why)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(0)


class PrecisTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        stamp(interaction, "received")  # the metrics' start for the time to acknowledge and to answer
        client = interaction.client
        if getattr(client, "stopping", False):  # a clean stop: nothing new is started
            await client.refuse_while_stopping(interaction)  # type: ignore[attr-defined]
            return False
        if hasattr(client, "track_interaction"):
            client.track_interaction()  # the stop waits for this interaction's answer
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await interaction.client.report_error(interaction, error)  # type: ignore[attr-defined]


class PrecisBot(commands.Bot):
    def __new__(cls, app: Precis, *args: Any, **kwargs: Any) -> "PrecisBot":
        # several shards in one process: discord.py's AutoShardedBot (one gateway connection per shard)
        if cls is PrecisBot and "shard_ids" in shard_options(app.settings):
            cls = ShardedPrecisBot
        return super().__new__(cls)

    def __init__(
        self,
        app: Precis,
        *,
        store: Store | None = None,
        pool: WorkerPool | None = None,
        digest_interval: float | None = DIGEST_INTERVAL_S,
        watch: bool | None = None,
        sources=None,
        feed_interval: float | None = FEED_TICK_S,
        handle_signals: bool = False,
    ) -> None:
        # Precis never joins voice: skip discord.py's "PyNaCl/davey is not installed" warnings.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True  # channels and permissions for /digest; no message content needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=NO_MENTIONS,
            tree_cls=PrecisTree,
            **shard_options(app.settings),
        )
        s = app.settings
        self.app = app
        self.settings = s
        self._own_store = store is None
        self.store = store if store is not None else open_store(s, on_open=self._store_opened)
        if s.shard_count > 1 and hasattr(self.store, "set_shards"):
            self.store.set_shards(s.shards if s.shards is not None else range(s.shard_count), s.shard_count)
        from ...sources.service import Sources

        self.sources = sources if sources is not None else Sources(s, self.store, app=app)
        self.fetched_interval = FETCHED_SYNC_S  # the fallback poll when LISTEN is not possible
        self._fetched_task: asyncio.Task[None] | None = None
        self._listener: ArticleListener | None = None
        log.info("database: %s; shards: %s", self.store.describe() if hasattr(self.store, "describe") else "?",
                 describe_shards(s))
        self.feed_interval = feed_interval
        self.handlers = Handlers(app, self.sources)
        # Two lanes, each admitting a request while its expected wait is at most QUEUE_MAX_WAIT_SECONDS:
        # the cheap lane (/ask, extractive summaries, /articles ...) with WORKERS threads, and the model
        # lane for abstractive requests with one thread: generation runs one at a time
        # (Precis.generate_lock), so abstractive requests never hold the workers cheap ones need.
        self.pool = pool if pool is not None else WorkerPool(
            s.workers, s.queue_limit, max_wait=s.queue_max_wait_seconds, name="precis-worker")
        self.gen_pool = WorkerPool(1, s.queue_limit, max_wait=s.queue_max_wait_seconds, name="precis-model")
        self.cooldowns = Cooldowns(s.cooldown_seconds)
        self.digests = DigestRunner(app, self.store)
        self.digest_interval = digest_interval
        self.watch = s.watch_corpus if watch is None else watch
        self._digest_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="precis-digest")
        self._views: weakref.WeakSet[discord.ui.View] = weakref.WeakSet()
        self._watch_stop: asyncio.Event | None = None
        self._watch_task: asyncio.Task[None] | None = None
        # Operations (issue 33): counters and scrape-time gauges on this bot's own registry; the HTTP
        # server (/metrics, /healthz, /readyz) only with METRICS_PORT, started in setup_hook.
        self._gateway_down = False  # between a dropped gateway connection and its resume (/readyz)
        self.metrics = BotMetrics(app, self.store,
                                  connected=lambda: self.is_ready() and not self.is_closed() and not self._gateway_down)
        self.metrics.watch_lane("cheap", self.pool)
        self.metrics.watch_lane("model", self.gen_pool)
        self.sources.on_poll = self.metrics.feed_polled
        self.metrics_server: MetricsServer | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        # The clean stop (SIGTERM / SIGINT with handle_signals; docs/operations.md "Stopping").
        self.handle_signals = handle_signals
        self.stopping = False
        self.stop_deadline: float | None = None  # time.monotonic() by which the stop gives up waiting
        self._stop_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()  # interactions being answered
        self._closed_once = False

    # ------------------------------------------------------------ start-up
    async def setup_hook(self) -> None:
        if self.handle_signals:
            self.install_signal_handlers()
        self.start_metrics()
        from .cogs.corpus import CorpusCog
        from .cogs.digest import DigestCog
        from .cogs.query import QueryCog

        await self.add_cog(QueryCog(self))
        await self.add_cog(DigestCog(self, self.digest_interval))
        await self.add_cog(CorpusCog(self))
        from .cogs.feeds import FeedCog

        await self.add_cog(FeedCog(self, self.feed_interval))
        try:
            await self.pool.run_background(self._store_ready_work)
        except StoreError as exc:  # the database is not reachable yet: done once it is (see _store_opened)
            log.warning("start-up store work postponed: %s", exc)
        if getattr(self.store, "is_postgres", False) and self.fetched_interval:
            url = conninfo_of(self.store)
            if url:  # LISTEN: other processes' articles join within a moment; polling while it cannot listen
                self._listener = ArticleListener(url, self._others_added, fallback_s=self.fetched_interval).start()
            else:
                self._fetched_task = asyncio.create_task(self._follow_fetched(), name="precis-fetched-sync")
        await self.sync_commands()
        if self.watch:
            from ...corpus.watch import watch_corpus

            self._watch_stop = asyncio.Event()
            self._watch_task = asyncio.create_task(
                watch_corpus(self.settings.corpus_path, self._reload_in_background, stop_event=self._watch_stop),
                name="precis-corpus-watch",
            )

    def start_metrics(self) -> None:
        """The event loop's heartbeat, and with METRICS_PORT the HTTP server (a port in use: logged, the bot
        runs on without it)."""
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="precis-heartbeat")
        port = self.settings.metrics_port
        if not port or self.metrics_server is not None:
            return
        try:
            self.metrics_server = MetricsServer(self.metrics, self.settings.metrics_host, port).start()
        except OSError as exc:
            log.error("metrics: cannot listen on %s:%s (%s); running without /metrics, /healthz and /readyz",
                      self.settings.metrics_host, port, exc)
            return
        log.info("metrics: %s/metrics, /healthz and /readyz", self.metrics_server.url)

    async def _heartbeat(self) -> None:
        while True:
            self.metrics.beat()
            await asyncio.sleep(HEARTBEAT_S)

    async def _stop_metrics(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        server, self.metrics_server = self.metrics_server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
        self.metrics.close()

    def _store_ready_work(self) -> None:
        """What start-up does with the store: the FEEDS setting's feeds, other processes' articles,
        the corpus's article order for digests."""
        self.sources.sync_global_feeds()
        self.sources.sync_fetched()
        self.digests.sync_articles()
        if getattr(self.app, "shared_index", None) is not None:  # INDEX_URL: older articles the index lacks
            threading.Thread(target=self._backfill, name="precis-index-backfill", daemon=True).start()

    def _backfill(self) -> None:
        try:
            self.sources.backfill_index()
        except Exception:  # noqa: BLE001 - the next start tries again
            log.exception("index: writing older articles to the index failed")

    def _store_opened(self, _store) -> None:
        """The database became reachable after start-up (from the retry thread)."""
        if getattr(self, "sources", None) is not None:
            self.sources.reload_shares()
            self._store_ready_work()

    def _others_added(self, shares: bool) -> None:
        """From the listener's thread: what other processes added (articles; guild shares when told)."""
        self.sources.sync_fetched(shares=shares)

    async def _follow_fetched(self) -> None:
        """PostgreSQL: other processes' new feed and link articles join this one's corpus within seconds."""
        while not self.is_closed():
            try:
                await self.pool.run_background(self.sources.sync_fetched)
            except StoreError as exc:
                log.debug("fetched articles: %s", exc)
            except Exception:  # noqa: BLE001 - keep following
                log.exception("fetched articles: sync failed")
            await asyncio.sleep(self.fetched_interval)

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """To DISCORD_DEV_GUILD_ID when set (instant); globally otherwise, and only when the commands changed."""
        gid = self.settings.discord_dev_guild_id
        if gid:
            guild = discord.Object(id=gid)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to the dev guild %s", len(synced), gid)
            return synced
        payload = {"application": self.application_id, "commands": [c.to_dict(self.tree) for c in self.tree.get_commands()]}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        stamp = self.settings.data_dir / "commands.global.sha256"
        try:
            if stamp.read_text().strip() == digest:
                log.info("global commands unchanged since the last sync; not syncing again")
                return []
        except OSError:
            pass
        synced = await self.tree.sync()
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(digest)
        except OSError as exc:
            log.warning("could not remember the command sync (%s)", exc)
        log.info("synced %d global commands (may take up to an hour to appear everywhere)", len(synced))
        return synced

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s); %d guild(s); shards %s", self.user, self.user.id if self.user else "?",
                 len(self.guilds), describe_shards(self.settings))

    async def on_disconnect(self) -> None:
        self._gateway_down = True  # /readyz: not ready until the connection is back

    async def on_resumed(self) -> None:
        self._gateway_down = False

    async def on_connect(self) -> None:
        self._gateway_down = False

    async def on_app_command_completion(self, interaction: discord.Interaction, command: Any) -> None:
        self.count_interaction(interaction, interaction.extras.get("outcome", "answered"))

    def count_interaction(self, interaction: discord.Interaction, outcome: str) -> None:
        """One slash or context-menu command, done: its outcome and timings to the metrics."""
        if interaction.type is not discord.InteractionType.application_command:
            return  # buttons and autocomplete are not counted
        ack, answer = timings(interaction)
        self.metrics.interaction(command_name(interaction), outcome, ack=ack, answer=answer)

    # ------------------------------------------------------------ shut-down
    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT start the clean stop; a second one stops at once."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError) as exc:  # Windows, or not the main thread
                log.warning("cannot handle %s here (%s): a stop signal ends the process without the clean stop",
                            sig.name, exc)

    def _on_signal(self, sig: signal.Signals) -> None:
        name = signal.Signals(sig).name
        if self._stop_task is not None:
            log.warning("%s again: stopping at once", name)
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            os._exit(128 + int(sig))
        self._stop_task = asyncio.get_running_loop().create_task(self.stop_gracefully(name), name="precis-stop")

    def track_interaction(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def refuse_while_stopping(self, interaction: discord.Interaction) -> None:
        """A command that arrives while the bot stops: told to try again (another process, or this one
        restarted, answers it); autocomplete gets nothing."""
        if interaction.type is not discord.InteractionType.application_command:
            return
        try:
            await interaction.response.send_message(STOPPING_TEXT, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.debug("could not tell %s that the bot is stopping: %s", describe(interaction), exc)
        log.info("stopping: told %s to try again", describe(interaction))
        self.count_interaction(interaction, "busy")

    async def stop_gracefully(self, reason: str = "stop") -> None:
        """The clean stop: take no new interactions (each is told to try again in a moment); give those in
        flight, the digest post in progress and nothing else STOP_GRACE_SECONDS to finish; hand back a feed
        poll at once and a digest post that outlasts the grace (their leases released, so another process
        takes them over now, not when the lease runs out); then close Discord, the workers, the models and
        the database. ``bot.run`` then returns and the process exits 0."""
        loop = asyncio.get_running_loop()
        grace = float(self.settings.stop_grace_seconds)
        self.stop_deadline = time.monotonic() + grace
        self.stopping = True
        self.metrics.stopping = True  # /readyz: not ready (stopping)
        self.digests.stopping.set()  # the tick in progress finishes its post and claims no other
        if self.handle_signals:  # a real process: gone soon after the grace whatever still runs in a thread
            watchdog = threading.Timer(grace + STOP_WATCHDOG_S, _exit_now, ("the stop outlasted its grace period",))
            watchdog.daemon = True
            watchdog.start()
        busy = [t for t in self._in_flight if not t.done()]
        log.info("%s: stopping; %d interaction(s) in flight; up to %.0f s to finish", reason, len(busy), grace)
        for cog in list(self.cogs.values()):
            ticker = getattr(cog, "ticker", None)
            if ticker is None:
                continue
            if getattr(cog, "finish_tick_on_stop", False):
                ticker.stop()  # digests: after the tick in progress
            else:
                ticker.cancel()  # feeds: a poll in flight is cut and its lease handed back (Sources.poll_due)
        if self._fetched_task is not None:
            self._fetched_task.cancel()
        try:
            # The digest executor has one thread: this no-op runs once the tick in progress is over.
            tick_done = asyncio.ensure_future(loop.run_in_executor(self._digest_executor, lambda: None))
            waiting: set[asyncio.Future[Any]] = {tick_done, *busy}
            done, waiting = await asyncio.wait(waiting, timeout=max(0.0, self.stop_deadline - time.monotonic()))
            if not tick_done.done():
                try:
                    await asyncio.to_thread(self.digests.hand_back, "the process stopped before the post finished")
                except Exception as exc:  # noqa: BLE001 - the database is away: its lease runs out instead
                    log.warning("stopping: could not hand back the digest post in progress: %s", exc)
            late = len(waiting - {tick_done})
            if late:
                log.warning("stopping: %d interaction(s) still running after %.0f s; stopping anyway", late, grace)
            else:
                log.info("stopping: nothing left in flight")
        finally:
            try:
                await asyncio.to_thread(self.app.close_models)
            except Exception:  # noqa: BLE001 - closing anyway
                log.exception("stopping: closing the models failed")
            await self.close()

    async def close(self) -> None:
        if self._closed_once:  # discord.py's run() closes again on its way out
            return await super().close()
        self._closed_once = True
        await self._stop_metrics()
        if self._watch_stop is not None:
            self._watch_stop.set()
        if self._fetched_task is not None:
            self._fetched_task.cancel()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
        if self._watch_task is not None:
            try:
                await asyncio.wait_for(self._watch_task, 5)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing anyway
                self._watch_task.cancel()
        for cog in self.cogs.values():
            ticker = getattr(cog, "ticker", None)
            if ticker is not None:
                ticker.cancel()
        for view in list(self._views):
            view.stop()
        if self.stopping:  # stop_gracefully waited for the tick already (or handed its post back)
            self._digest_executor.shutdown(wait=False, cancel_futures=True)
        else:  # a tick in progress finishes its post (the loop keeps running while we wait for it)
            await asyncio.to_thread(self._digest_executor.shutdown, wait=True, cancel_futures=True)
        await super().close()
        self.pool.shutdown()
        self.gen_pool.shutdown()
        if self._own_store:
            self.store.close()

    def track_view(self, view: discord.ui.View) -> None:
        self._views.add(view)

    # ------------------------------------------------------------ commands
    async def run_model_command(self, interaction: discord.Interaction, private: bool,
                                fn: Callable[..., Reply], *args: Any, **kwargs: Any) -> None:
        """Admission by expected wait and the cooldown, acknowledge at once, tell the member when the
        wait will be noticeable, model work in its lane, then the reply."""
        kind = job_kind(fn, kwargs)
        pool = self.gen_pool if kind == "abstractive" else self.pool
        with pool.reserve(kind) as slot:  # Busy past QUEUE_MAX_WAIT_SECONDS: nothing reserved, no cooldown spent
            retry = self.cooldowns.hit(interaction.user.id)
            if retry:
                raise CooldownActive(retry)
            await defer(interaction, private=private)
            t = time.perf_counter()
            job = asyncio.ensure_future(slot.run(fn, *args, **kwargs))  # in line now; the note must not delay it
            if slot.wait > self.settings.queue_notice_seconds:
                try:
                    await tell_queued(interaction, slot.eta, slot.ahead)
                except BaseException:
                    job.cancel()
                    raise
            reply = await job
        if not reply.ok:
            raise UserFacingError(reply.text)
        if reply.abstained:
            interaction.extras["outcome"] = "abstained"
        log.debug("%s answered in %.2fs (expected wait %.1fs)", describe(interaction), time.perf_counter() - t, slot.wait)
        await self.send_rendered(interaction, render_reply(reply), private=private)

    async def send_rendered(self, interaction: discord.Interaction, rendered: RenderedReply, *, private: bool,
                            view: discord.ui.View | None = None) -> None:
        if view is None and rendered.has_more_support:
            view = SupportView(self, rendered.support_pages, rendered.support_total)
        await send_rendered(interaction, rendered, private=private, view=view)

    async def respond_now(self, interaction: discord.Interaction, rendered: RenderedReply, *, private: bool) -> None:
        """For cheap commands (no model): answer in the initial response."""
        await interaction.response.send_message(ephemeral=private, **message_kwargs(rendered.messages[0]))
        stamp(interaction, "acked")
        stamp(interaction, "answered")

    # ------------------------------------------------------------ errors
    async def report_error(self, interaction: discord.Interaction, error: BaseException) -> None:
        """Every error: a short ephemeral message for the user, a log line with context."""
        original = error
        if isinstance(error, (app_commands.CommandInvokeError, app_commands.TransformerError)) and error.__cause__:
            original = error.__cause__
        if isinstance(error, app_commands.CommandInvokeError):
            original = error.original
        ctx = describe(interaction)
        if isinstance(original, UserFacingError):
            text = str(original)
            log.info("refused %s: %s", ctx, text)
        elif isinstance(original, Busy):
            text = busy_text(original.wait)
            log.warning("busy, refused %s (%s)", ctx, original)
        elif isinstance(original, StoreError):
            text = str(original)[:300]
            log.warning("store refused %s: %s", ctx, original)
        elif isinstance(original, CooldownActive):
            text = f"Slow down: you can use this again in {original.retry_after:.0f}s."
            log.info("cooldown, refused %s (%.1fs left)", ctx, original.retry_after)
        elif isinstance(original, app_commands.MissingPermissions):
            text = "You need the Manage Server permission for that."
            log.info("missing permissions %s for %s", original.missing_permissions, ctx)
        elif isinstance(original, app_commands.BotMissingPermissions):
            text = f"I'm missing permissions here: {', '.join(original.missing_permissions)}."
            log.warning("bot missing permissions %s for %s", original.missing_permissions, ctx)
        elif isinstance(original, app_commands.NoPrivateMessage):
            text = "That only works in a server."
            log.info("DM refused %s", ctx)
        elif isinstance(original, app_commands.CheckFailure):
            text = "You can't use that here."
            log.info("check failed %s: %s", ctx, original)
        elif isinstance(original, app_commands.TransformerError):
            text = f"I couldn't use the value {original.value!r}."
            log.info("bad option %s: %s", ctx, original)
        else:
            name = original.__class__.__name__
            if isinstance(original, ModelUnavailable):
                text = f"That needs a model that is not available here: {original}"[:300]
                log.warning("model unavailable for %s: %s", ctx, original)
            else:
                text = "Something went wrong on my side; it has been logged."
                log.error("command failed: %s: %s: %s", ctx, name, original, exc_info=original)
        await send_error(interaction, text)
        self.count_interaction(interaction, outcome_of(original))

    # ------------------------------------------------------------ corpus and digests
    def reload_corpus(self) -> LoadReport:
        """Runs in a worker thread: reload CORPUS_PATH, then give new articles their digest order."""
        report = self.app.load(progress=False)
        self.digests.sync_articles()
        return report

    async def _reload_in_background(self) -> LoadReport:
        return await self.pool.run_background(self.reload_corpus)

    async def digest_tick(self, now: float | None = None) -> TickResult:
        """One scheduler tick: due digests composed and posted from a worker thread, exactly once."""
        loop = asyncio.get_running_loop()
        sender = DiscordDigestSender(self, loop)
        result = await loop.run_in_executor(self._digest_executor, self.digests.tick, now, sender)
        self.metrics.digest_tick(result)
        return result

    async def feed_tick(self) -> None:
        """Poll the feeds that are due (each failure is recorded on its feed and logged), then retire
        what retention says is too old (cheap when nothing is)."""
        try:
            await self.sources.poll_due()
        except StoreError as exc:  # the database is away: the feeds wait for it (readiness says so)
            log.warning("feeds: not polled this tick: %s", exc)
        await self.pool.run_background(lambda: self.app.retire(batched=True))


class ShardedPrecisBot(PrecisBot, commands.AutoShardedBot):
    """PrecisBot serving several shards in one process (SHARD_IDS with more than one id)."""
