"""An offline fake Discord for running the *real* discord.py 2.7 client in tests.

An aiohttp server on 127.0.0.1 (random port) speaks enough of Discord for a
``discord.Client`` to log in, become ready, sync app commands and answer
interactions:

* REST under ``/api/v10`` (see ``FakeDiscord._ROUTES``); unknown routes answer
  404 and are recorded in ``fake.unknown_requests`` (``async with FakeDiscord()``
  fails on exit if there are any);
* a gateway websocket at ``/``: HELLO (op 10), IDENTIFY (op 2) -> READY +
  GUILD_CREATE, HEARTBEAT (op 1) -> HEARTBEAT_ACK (op 11, timings recorded),
  RESUME (op 6) -> replay + RESUMED, REQUEST_GUILD_MEMBERS (op 8) ->
  GUILD_MEMBERS_CHUNK, and INTERACTION_CREATE dispatch driven by the test.

It records every request and enforces the rules that bite in production: the
3-second acknowledge deadline (late callback -> 404 code 10062), double
acknowledgement (400 code 40060), Discord's message/embed/command limits (400
code 50035 / 50006), and injectable rate limits (429 with ``Via``,
``Retry-After`` and ``X-RateLimit-*`` headers) and 5xx answers.

Pointing discord.py at it means overriding ``discord.http.Route.BASE`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``, which are process-global:
only one ``FakeDiscord`` may be installed at a time.

Typical use (see tests/test_fake_discord.py)::

    async with FakeDiscord() as fake:
        async with running_client(fake, MyClient) as client:
            await client.tree.sync(guild=discord.Object(fake.guild_id))
            rec = await fake.send_command("echo", {"text": "hi"})
            await fake.wait_for_ack(rec)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fnmatch
import inspect
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Pattern, Sequence, TypeVar, Union

import yarl
from aiohttp import WSMsgType, web

from . import discord_payloads as P
from .discord_validation import autocomplete_errors, command_list_errors, message_errors, modal_errors

__all__ = [
    "ClientCrashed",
    "FakeDiscord",
    "HeartbeatRecord",
    "InteractionRecord",
    "RecordedRequest",
    "WaitTimeout",
    "patch_discord_endpoints",
    "running_client",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
PathPattern = Union[str, Pattern[str]]

ACK_DEADLINE_S = 3.0
NONCE_WINDOW_S = 300.0  # Discord deduplicates enforce_nonce sends "in the past few minutes"
INTERACTION_TOKEN_TTL_S = 15 * 60
JSON_CT = "application/json"  # exactly this: with "; charset=..." discord.py returns a str


class ClientCrashed(AssertionError):
    """The discord.py client task (``start``/``connect``) died; the cause is chained."""


class WaitTimeout(AssertionError, TimeoutError):
    """A ``FakeDiscord.wait_*`` helper ran out of time (message has a diagnostic)."""


# ------------------------------------------------------------------ records


@dataclass
class RecordedRequest:
    """One REST request the client made (``path`` is relative to ``/api/v10``)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    time: float  # time.monotonic()
    route: str | None = None  # route name, e.g. "interaction_callback"; None if unknown
    status: int | None = None
    response: Any = None
    files: list[dict[str, Any]] = field(default_factory=list)
    injected: str | None = None  # "rate_limit" / "error" when answered by an injection

    def __repr__(self) -> str:
        return f"<{self.method} {self.path} -> {self.status}{' (' + self.injected + ')' if self.injected else ''}>"


@dataclass
class InteractionRecord:
    """What happened to one dispatched interaction."""

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    dispatched_at: float  # time.monotonic() when INTERACTION_CREATE was written to the socket
    deliveries: int = 1
    acked_at: float | None = None
    callback_type: int | None = None
    callback_data: dict[str, Any] | None = None
    callback_attempts: list[RecordedRequest] = field(default_factory=list)
    late_callbacks: list[float] = field(default_factory=list)  # seconds after dispatch, refused with 10062
    original: dict[str, Any] | None = None  # the @original message (shared with fake.messages)
    followups: list[dict[str, Any]] = field(default_factory=list)  # message objects returned for followups
    deleted_original: bool = False
    _deferred_followup_done: bool = False

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the accepted callback (None if never acknowledged)."""
        return None if self.acked_at is None else self.acked_at - self.dispatched_at

    @property
    def name(self) -> str | None:
        """Command name (types 2/4) or custom_id (types 3/5)."""
        data = self.payload.get("data") or {}
        return data.get("name") or data.get("custom_id")

    @property
    def deferred(self) -> bool:
        return self.callback_type in (5, 6)

    def visible_messages(self) -> list[dict[str, Any]]:
        """The original (when it is no longer 'thinking') and the followups, deduplicated."""
        out: list[dict[str, Any]] = []
        if self.original is not None and not self.deleted_original and not (self.original["flags"] & P.MESSAGE_FLAG_LOADING):
            out.append(self.original)
        for msg in self.followups:
            if not msg.get("_deleted") and all(m["id"] != msg["id"] for m in out):
                out.append(msg)
        return out


@dataclass
class HeartbeatRecord:
    received_at: float  # time.monotonic()
    seq: int | None
    acked_at: float | None = None
    since_previous: float | None = None  # gap since the previous heartbeat on the same connection


@dataclass
class _Injection:
    kind: str  # "rate_limit" | "error"
    method: str | None
    pattern: PathPattern
    remaining: int
    status: int
    body: Any
    headers: dict[str, str]

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return _path_matches(self.pattern, path)


def _path_matches(pattern: PathPattern, path: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.search(path) is not None
    return fnmatch.fnmatchcase(path, pattern)


class _GatewaySession:
    def __init__(self, ws: web.WebSocketResponse, query: Mapping[str, str]) -> None:
        self.ws = ws
        self.query = dict(query)
        self.session_id = secrets.token_hex(16)
        self.seq = 0
        self.identified = False
        self.resumed = False
        self.identify: dict[str, Any] | None = None
        self.sent: list[tuple[int, str]] = []  # (seq, frame) of dispatches, for RESUME replay
        self.lock = asyncio.Lock()
        self.last_heartbeat: float | None = None

    @property
    def open(self) -> bool:
        return not self.ws.closed


# ------------------------------------------------------------------ patching

_installed: "FakeDiscord | None" = None


@contextlib.contextmanager
def patch_discord_endpoints(rest_base: str, gateway_url: str):
    """Point discord.py (REST, webhooks, interaction callbacks, gateway) at another
    server; restores the originals on exit. Process-global: not re-entrant."""
    import discord.gateway
    import discord.http

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = rest_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": JSON_CT}
    if headers:
        hdrs.update(headers)
    return web.Response(status=status, body=json.dumps(body).encode(), headers=hdrs)


def _error(status: int, code: int, message: str, errors: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = dict(errors)
    return status, body


_MENTION_USER = re.compile(r"<@!?(\d+)>")
_MENTION_ROLE = re.compile(r"<@&(\d+)>")


# ------------------------------------------------------------------ the fake


class FakeDiscord:
    """The fake Discord server. Use as ``async with FakeDiscord() as fake:``
    (starts, installs the endpoint overrides, and on exit restores them, stops,
    and fails if an unknown route was hit), or call ``start()``/``stop()`` and
    ``install()``/``uninstall()`` yourself."""

    def __init__(
        self,
        *,
        token: str = P.DEFAULT_TOKEN,
        application_id: int = P.DEFAULT_APPLICATION_ID,
        bot_user_id: int = P.DEFAULT_BOT_USER_ID,
        bot_name: str = P.DEFAULT_BOT_NAME,
        guilds: Sequence[Mapping[str, Any]] | None = None,
        ack_deadline: float = ACK_DEADLINE_S,
        interaction_token_ttl: float = INTERACTION_TOKEN_TTL_S,
        heartbeat_interval_ms: int = 41250,
        validate: bool = True,
        fail_on_unknown_routes: bool = True,
    ) -> None:
        self.token = token
        self.application_id = application_id
        self.bot_user = P.make_bot_user(bot_user_id, bot_name)
        self.application = P.make_application(application_id, name=bot_name, bot=self.bot_user)
        self.guilds: dict[int, dict[str, Any]] = {}
        for g in guilds if guilds is not None else [P.make_default_guild(bot_user_id=bot_user_id, bot_name=bot_name)]:
            self.guilds[int(g["id"])] = copy.deepcopy(dict(g))
        self.ack_deadline = ack_deadline
        self.interaction_token_ttl = interaction_token_ttl
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.validate = validate
        self.fail_on_unknown_routes = fail_on_unknown_routes

        self.requests: list[RecordedRequest] = []
        self.unknown_requests: list[RecordedRequest] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self.messages: dict[int, dict[str, Any]] = {}  # every message the bot created, by id
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.heartbeats: list[HeartbeatRecord] = []
        self.gateway_received: list[dict[str, Any]] = []  # every frame the client sent (parsed)
        self.gateway_sessions: list[_GatewaySession] = []
        self.presence_updates: list[dict[str, Any]] = []

        self._injections: list[_Injection] = []
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self._changed: asyncio.Event | None = None
        self._watched: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._patch: contextlib.AbstractContextManager[None] | None = None
        self._ws_handlers: set[asyncio.Task[Any]] = set()

    # ---------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def guild_id(self) -> int:
        """The first guild's id."""
        return next(iter(self.guilds))

    @property
    def channel_id(self) -> int:
        """The first text channel of the first guild."""
        return int(self._first_guild()["channels"][0]["id"])

    @property
    def user_id(self) -> int:
        """The first non-bot, non-owner member of the first guild (the default invoker)."""
        g = self._first_guild()
        for m in g["members"]:
            uid = int(m["user"]["id"])
            if not m["user"].get("bot") and uid != int(g["owner_id"]):
                return uid
        return P.DEFAULT_USER_ID

    def _first_guild(self) -> dict[str, Any]:
        return self.guilds[self.guild_id]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway_handler)
        app.router.add_route("*", "/api/v{version:\\d+}/{tail:.*}", self._rest_handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._changed = asyncio.Event()

    async def stop(self) -> None:
        for sess in self.gateway_sessions:
            if sess.open:
                with contextlib.suppress(Exception):
                    await sess.ws.close(code=1001, message=b"fake discord stopping")
        if self._ws_handlers:
            await asyncio.wait(self._ws_handlers, timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def install(self) -> None:
        global _installed
        if _installed is not None:
            raise RuntimeError("another FakeDiscord is installed: the discord.py endpoint overrides are process-global")
        self._patch = patch_discord_endpoints(self.rest_base, self.gateway_url)
        self._patch.__enter__()
        _installed = self

    def uninstall(self) -> None:
        global _installed
        if self._patch is not None:
            self._patch.__exit__(None, None, None)
            self._patch = None
        if _installed is self:
            _installed = None

    async def __aenter__(self) -> "FakeDiscord":
        await self.start()
        try:
            self.install()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.uninstall()
        await self.stop()
        if exc_type is None and self.fail_on_unknown_routes:
            self.assert_no_unknown_routes()

    def assert_no_unknown_routes(self) -> None:
        if self.unknown_requests:
            lines = "\n".join(f"  {r.method} {r.path}?{r.query} json={r.json!r}"[:300] for r in self.unknown_requests)
            raise AssertionError(f"the client hit {len(self.unknown_requests)} route(s) the fake Discord does not implement:\n{lines}")

    # ---------------------------------------------------------- waiting

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def watch_task(self, task: asyncio.Task[Any]) -> None:
        """Make every ``wait_*`` re-raise this task's error (as ClientCrashed) if it dies."""
        self._watched.append(task)
        task.add_done_callback(lambda _t: self._notify())

    def unwatch_task(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._watched.remove(task)

    def check_client_alive(self) -> None:
        for task in self._watched:
            if task.done():
                if task.cancelled():
                    raise ClientCrashed(f"client task {task.get_name()} was cancelled")
                exc = task.exception()
                if exc is not None:
                    raise ClientCrashed(f"client task {task.get_name()} died: {exc!r}") from exc
                raise ClientCrashed(f"client task {task.get_name()} ended while the test was still waiting")

    async def wait_until(self, condition: Callable[[], T], timeout: float = 5.0, *, what: str | None = None) -> T:
        """Wait until ``condition()`` is truthy (re-checked on every request,
        gateway frame and client-task exit); returns its value."""
        assert self._changed is not None, "FakeDiscord not started"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.check_client_alive()
            result = condition()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(
                    f"timed out after {timeout}s waiting for {what or getattr(condition, '__name__', condition)}; "
                    f"last requests: {self.requests[-8:]!r}"
                )
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_for(self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0) -> RecordedRequest:
        """The first recorded request (past or future) for which ``predicate`` is true."""

        def find() -> RecordedRequest | None:
            for r in self.requests:
                if r.status is not None and predicate(r):
                    return r
            return None

        return await self.wait_until(find, timeout, what=f"a request matching {predicate!r}")

    def requests_to(self, pattern: PathPattern, method: str | None = None, *, route: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path (relative to /api/v10, no query) matches
        a glob (``"/webhooks/*"``; ``*`` also matches ``/``) or a compiled regex."""
        return [
            r for r in self.requests
            if _path_matches(pattern, r.path)
            and (method is None or r.method == method.upper())
            and (route is None or r.route == route)
        ]

    async def wait_for_ack(self, interaction: "InteractionRecord | int", timeout: float | None = None) -> InteractionRecord:
        """Wait for the interaction's accepted callback (default timeout: the ack deadline + 0.5 s)."""
        rec = self._interaction(interaction)
        return await self.wait_until(lambda: rec if rec.acked else None,
                                     self.ack_deadline + 0.5 if timeout is None else timeout,
                                     what=f"acknowledgement of interaction {rec.name!r} ({rec.id})")

    async def wait_for_response(self, interaction: "InteractionRecord | int", count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until the interaction has ``count`` visible messages (a non-loading
        original and/or followups); returns them."""
        rec = self._interaction(interaction)

        def check() -> list[dict[str, Any]] | None:
            msgs = rec.visible_messages()
            return msgs if len(msgs) >= count else None

        return await self.wait_until(check, timeout, what=f"{count} response message(s) to {rec.name!r} ({rec.id})")

    def _interaction(self, interaction: "InteractionRecord | int") -> InteractionRecord:
        if isinstance(interaction, InteractionRecord):
            return interaction
        return self.interactions[int(interaction)]

    # ---------------------------------------------------------- injections

    def inject_rate_limit(
        self,
        pattern: PathPattern,
        *,
        method: str | None = None,
        count: int = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
        scope: str | None = None,
        bucket: str = "fakebucket0000",
    ) -> None:
        """Answer the next ``count`` requests matching (method, path pattern) with
        a proper 429: JSON ``{message, retry_after, global}`` and ``Via``,
        ``Retry-After``, ``X-RateLimit-*`` headers (discord.py sleeps retry_after and retries)."""
        reset_at = time.time() + retry_after
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{reset_at:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": scope or ("global" if is_global else "user"),
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global, "code": 0}
        self._injections.append(_Injection("rate_limit", method, pattern, count, 429, body, headers))

    def inject_error(
        self,
        pattern: PathPattern,
        *,
        method: str | None = None,
        status: int = 500,
        count: int = 1,
        body: Any = None,
        code: int = 0,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (e.g. 500/502/503).
        discord.py retries 500/502/504/524 (REST) and any 5xx (webhooks) after 1 s, 3 s, ..."""
        if body is None:
            body = {"message": f"{status}: Internal Server Error" if status >= 500 else f"{status}: Error", "code": code}
        self._injections.append(_Injection("error", method, pattern, count, status, body, {}))

    def clear_injections(self) -> None:
        self._injections.clear()

    # ---------------------------------------------------------- gateway

    @property
    def gateway(self) -> _GatewaySession:
        """The most recent identified (or resumed), still open gateway session."""
        for sess in reversed(self.gateway_sessions):
            if sess.open and sess.identified:
                return sess
        raise RuntimeError("no open, identified gateway connection (is the client running and ready?)")

    def _session_for(self, guild_id: Any) -> _GatewaySession:
        """The open session whose shard holds ``guild_id`` (as Discord routes a guild's events), else the
        most recent one (an unsharded client)."""
        if guild_id:
            for sess in reversed(self.gateway_sessions):
                shard = (sess.identify or {}).get("shard")
                if sess.open and sess.identified and shard and \
                        (int(guild_id) >> 22) % max(1, int(shard[1])) == int(shard[0]):
                    return sess
        return self.gateway

    async def _send(self, sess: _GatewaySession, frame: Mapping[str, Any]) -> None:
        text = json.dumps(frame)
        async with sess.lock:
            await sess.ws.send_str(text)

    async def dispatch_event(self, event: str, data: Mapping[str, Any], *, session: _GatewaySession | None = None) -> int:
        """Send a DISPATCH (op 0) frame; returns its sequence number."""
        sess = session or self.gateway
        async with sess.lock:
            sess.seq += 1
            seq = sess.seq
            text = json.dumps({"op": 0, "t": event, "s": seq, "d": data})
            sess.sent.append((seq, text))
            await sess.ws.send_str(text)
        return seq

    async def close_gateway(self, code: int = 4000) -> None:
        """Close the client's gateway connection (4000: resumable; the client reconnects and RESUMEs)."""
        await self.gateway.ws.close(code=code)

    async def _gateway_handler(self, request: web.Request) -> web.WebSocketResponse:
        task = asyncio.current_task()
        if task is not None:
            self._ws_handlers.add(task)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sess = _GatewaySession(ws, request.query)
        self.gateway_sessions.append(sess)
        try:
            await self._send(sess, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gateway"]}, "s": None, "t": None})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._gateway_frame(sess, json.loads(msg.data))
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._notify()
            if task is not None:
                self._ws_handlers.discard(task)
        return ws

    async def _gateway_frame(self, sess: _GatewaySession, frame: dict[str, Any]) -> None:
        self.gateway_received.append(frame)
        op, d = frame.get("op"), frame.get("d")
        try:
            if op == 1:  # HEARTBEAT
                now = time.monotonic()
                hb = HeartbeatRecord(now, d, since_previous=None if sess.last_heartbeat is None else now - sess.last_heartbeat)
                sess.last_heartbeat = now
                self.heartbeats.append(hb)
                await self._send(sess, {"op": 11, "d": None, "s": None, "t": None})
                hb.acked_at = time.monotonic()
            elif op == 2:  # IDENTIFY
                await self._identify(sess, d or {})
            elif op == 6:  # RESUME
                await self._resume(sess, d or {})
            elif op == 8:  # REQUEST_GUILD_MEMBERS
                await self._members_chunk(sess, d or {})
            elif op == 3:  # PRESENCE_UPDATE
                self.presence_updates.append(d)
            elif op == 4:  # VOICE_STATE_UPDATE: ignored
                pass
            else:
                _log.warning("fake discord: unknown gateway op %r", op)
        finally:
            self._notify()

    async def _identify(self, sess: _GatewaySession, d: Mapping[str, Any]) -> None:
        if d.get("token") != self.token and d.get("token") != f"Bot {self.token}":
            await sess.ws.close(code=4004, message=b"Authentication failed.")
            return
        sess.identify = dict(d)
        sess.identified = True
        intents = int(d.get("intents") or 0)
        shard = d.get("shard")  # [shard id, shard count]: this session gets that shard's guilds only, as on Discord

        def on_shard(gid: int) -> bool:
            return not shard or (int(gid) >> 22) % max(1, int(shard[1])) == int(shard[0])

        ready = {
            "v": 10,
            "user": self.bot_user,
            "user_settings": {},
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self.guilds if on_shard(gid)],
            "presences": [],
            "private_channels": [],
            "relationships": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east"],
            "session_id": sess.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "auth": {},
            "application": {"id": str(self.application_id), "flags": self.application["flags"]},
            "_trace": ["fake-gateway"],
        }
        if "shard" in d:
            ready["shard"] = d["shard"]
        await self.dispatch_event("READY", ready, session=sess)
        if intents & 1:  # GUILDS intent
            for gid, guild in self.guilds.items():
                if on_shard(gid):
                    await self.dispatch_event("GUILD_CREATE", guild, session=sess)

    async def _resume(self, sess: _GatewaySession, d: Mapping[str, Any]) -> None:
        old = next((s for s in self.gateway_sessions if s.session_id == d.get("session_id")), None)
        if old is None or d.get("token") != self.token:
            await self._send(sess, {"op": 9, "d": False, "s": None, "t": None})
            return
        sess.session_id, sess.seq, sess.identify = old.session_id, old.seq, old.identify
        sess.sent = old.sent
        sess.identified = sess.resumed = True
        last = int(d.get("seq") or 0)
        for seq, text in list(old.sent):
            if seq > last:
                async with sess.lock:
                    await sess.ws.send_str(text)
        await self.dispatch_event("RESUMED", {"_trace": ["fake-gateway"]}, session=sess)

    async def _members_chunk(self, sess: _GatewaySession, d: Mapping[str, Any]) -> None:
        gid = int(d.get("guild_id"))
        guild = self.guilds.get(gid)
        members = list(guild["members"]) if guild else []
        user_ids = d.get("user_ids")
        if user_ids:
            wanted = {str(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m["user"]["id"] in wanted]
        query = d.get("query")
        if query:
            members = [m for m in members if m["user"]["username"].startswith(query)]
        limit = d.get("limit") or 0
        if limit:
            members = members[:limit]
        chunk = {"guild_id": str(gid), "members": members, "chunk_index": 0, "chunk_count": 1, "not_found": []}
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        if d.get("presences"):
            chunk["presences"] = []
        await self.dispatch_event("GUILD_MEMBERS_CHUNK", chunk, session=sess)

    # ---------------------------------------------------------- interactions

    async def dispatch_interaction(self, payload: Mapping[str, Any]) -> InteractionRecord:
        """Send INTERACTION_CREATE; returns the record the fake keeps for it.
        Dispatching the same id again models a duplicate delivery (the record,
        its deadline and its acknowledged state are kept)."""
        payload = copy.deepcopy(dict(payload))
        sess = self._session_for(payload.get("guild_id"))
        iid = int(payload["id"])
        rec = self.interactions.get(iid)
        if rec is None:
            rec = InteractionRecord(iid, payload["token"], int(payload["type"]), payload, time.monotonic())
            self.interactions[iid] = rec
        else:
            rec.deliveries += 1
        if rec.deliveries == 1:
            rec.dispatched_at = time.monotonic()
        await self.dispatch_event("INTERACTION_CREATE", payload, session=sess)
        self._notify()
        return rec

    def find_command(self, name: str, guild_id: int | None = None, command_type: int = 1) -> dict[str, Any] | None:
        """The synced command (guild first, then global) named ``name``."""
        gid = self.guild_id if guild_id is None else guild_id
        for cmd in self.guild_commands.get(gid, []):
            if cmd["name"] == name and cmd.get("type", 1) == command_type:
                return cmd
        for cmd in self.global_commands:
            if cmd["name"] == name and cmd.get("type", 1) == command_type:
                return cmd
        return None

    def make_command(
        self,
        name: str,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        allow_unsynced: bool = False,
        _focused: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Build a command interaction for a *synced* command, the way Discord would:
        the synced command's id, ``data.guild_id`` for guild commands, options
        checked against the synced schema (unknown/missing-required/out-of-range
        options raise ValueError: Discord's UI would not let a user send them),
        and ``resolved`` filled for user/role/channel options from the guild.
        ``kwargs`` go to :func:`discord_payloads.make_command_interaction`
        (``permissions=``, ``user_id=``, ``channel_id=``, ``locale=``...)."""
        guild_id = kwargs.setdefault("guild_id", self.guild_id)
        kwargs.setdefault("application_id", self.application_id)
        kwargs.setdefault("channel_id", self.channel_id if guild_id == self.guild_id else P.DEFAULT_CHANNEL_ID)
        kwargs.setdefault("user_id", self.user_id)
        member = self.member(kwargs["user_id"], guild_id) if guild_id else None
        if member:
            kwargs.setdefault("username", member["user"]["username"])
            kwargs.setdefault("roles", [int(r) for r in member["roles"]])
            kwargs.setdefault("permissions", self.member_permissions(kwargs["user_id"], guild_id))
        if guild_id in self.guilds:
            kwargs.setdefault("app_permissions", self.member_permissions(int(self.bot_user["id"]), guild_id))
        if guild_id is not None and "channel" not in kwargs:
            ch = self.channel(kwargs["channel_id"])
            if ch is not None:
                kwargs["channel"] = ch
        ctype = kwargs.get("command_type", 1)
        cmd = self.find_command(name, guild_id, ctype)
        if cmd is None:
            if not allow_unsynced:
                raise LookupError(
                    f"command {name!r} was never synced to the fake (global or guild {guild_id}); "
                    "sync the tree first or pass allow_unsynced=True"
                )
        else:
            kwargs.setdefault("command_id", int(cmd["id"]))
            if cmd.get("guild_id"):
                kwargs.setdefault("command_guild_id", int(cmd["guild_id"]))
        leaf = P.command_options(options)
        if _focused is not None:
            for opt in leaf:
                if opt["name"] == _focused:
                    opt["focused"] = True  # what Discord sends while typing need not meet min_length etc.
        if cmd is not None:
            self._check_options(cmd, leaf, subcommand, group, autocomplete=_focused is not None)
        if guild_id is not None and "resolved" not in kwargs:
            resolved = self._resolve(leaf, guild_id)
            if resolved:
                kwargs["resolved"] = resolved
        itype = P.INTERACTION_AUTOCOMPLETE if _focused is not None else P.INTERACTION_APPLICATION_COMMAND
        return P.make_command_interaction(name, leaf, subcommand=subcommand, group=group,
                                          _focused=_focused, _itype=itype, **kwargs)

    async def send_command(self, name: str, options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None, **kwargs: Any) -> InteractionRecord:
        """``make_command`` + ``dispatch_interaction``."""
        return await self.dispatch_interaction(self.make_command(name, options, **kwargs))

    async def send_autocomplete(self, name: str, options: Mapping[str, Any] | Sequence[Mapping[str, Any]], focused: str, **kwargs: Any) -> InteractionRecord:
        """An autocomplete interaction for a synced command (``focused``: the option being typed)."""
        return await self.dispatch_interaction(self.make_command(name, options, _focused=focused, **kwargs))

    async def click(self, custom_id: str, message_id: int | str, *, values: Sequence[str] | None = None, **kwargs: Any) -> InteractionRecord:
        """Click a button / use a select on a message the bot sent (must be in ``fake.messages``)."""
        msg = self.messages.get(int(message_id))
        if msg is None:
            raise LookupError(f"message {message_id} was not sent through the fake")
        comp = _find_component(msg.get("components") or [], custom_id)
        if comp is None:
            raise LookupError(f"message {message_id} has no component with custom_id {custom_id!r}")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled: Discord would not send this click")
        kwargs.setdefault("application_id", self.application_id)
        kwargs.setdefault("channel_id", int(msg["channel_id"]))
        kwargs.setdefault("guild_id", int(msg["guild_id"]) if msg.get("guild_id") else None)
        kwargs.setdefault("user_id", self.user_id)
        payload = P.make_component_interaction(custom_id, message=copy.deepcopy(msg), component_type=comp["type"],
                                               values=values, **kwargs)
        return await self.dispatch_interaction(payload)

    def _check_options(self, cmd: Mapping[str, Any], leaf: list[dict[str, Any]], subcommand: str | None,
                       group: str | None, *, autocomplete: bool) -> None:
        schema = list(cmd.get("options") or [])
        where = cmd["name"]
        for level in (group, subcommand):
            if level is None:
                continue
            found = next((o for o in schema if o["name"] == level and o["type"] in (1, 2)), None)
            if found is None:
                raise ValueError(f"/{where} has no subcommand (group) {level!r}")
            schema, where = list(found.get("options") or []), f"{where} {level}"
        if any(o["type"] in (1, 2) for o in schema):
            raise ValueError(f"/{where} needs a subcommand")
        by_name = {o["name"]: o for o in schema}
        for opt in leaf:
            spec = by_name.get(opt["name"])
            if spec is None:
                raise ValueError(f"/{where} has no option {opt['name']!r} (has {sorted(by_name)})")
            if opt.get("focused"):
                continue
            if spec["type"] == P.OPT_NUMBER and opt["type"] == P.OPT_INTEGER:
                opt["type"] = P.OPT_NUMBER
            if spec["type"] != opt["type"]:
                raise ValueError(f"/{where} option {opt['name']!r} has type {spec['type']}, not {opt['type']}")
            value = opt.get("value")
            if spec.get("choices") and value not in [c["value"] for c in spec["choices"]]:
                raise ValueError(f"/{where} option {opt['name']!r}: {value!r} is not one of its choices")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if spec.get("min_value") is not None and value < spec["min_value"]:
                    raise ValueError(f"/{where} option {opt['name']!r}: {value} < min_value {spec['min_value']}")
                if spec.get("max_value") is not None and value > spec["max_value"]:
                    raise ValueError(f"/{where} option {opt['name']!r}: {value} > max_value {spec['max_value']}")
            if isinstance(value, str):
                if spec.get("min_length") is not None and len(value) < spec["min_length"]:
                    raise ValueError(f"/{where} option {opt['name']!r}: shorter than min_length {spec['min_length']}")
                if spec.get("max_length") is not None and len(value) > spec["max_length"]:
                    raise ValueError(f"/{where} option {opt['name']!r}: longer than max_length {spec['max_length']}")
        if not autocomplete:
            given = {o["name"] for o in leaf}
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in given]
            if missing:
                raise ValueError(f"/{where} is missing required option(s) {missing}")

    def _resolve(self, leaf: list[dict[str, Any]], guild_id: int) -> dict[str, Any]:
        resolved: dict[str, dict[str, Any]] = {}
        guild = self.guilds.get(guild_id)
        if guild is None:
            return {}
        for opt in leaf:
            sid = str(opt.get("value"))
            if opt["type"] in (P.OPT_USER, P.OPT_MENTIONABLE):
                member = self.member(int(sid), guild_id)
                if member is not None:
                    resolved.setdefault("users", {})[sid] = member["user"]
                    resolved.setdefault("members", {})[sid] = {k: v for k, v in member.items() if k != "user"} | {
                        "permissions": str(self.member_permissions(int(sid), guild_id))}
                    continue
            if opt["type"] in (P.OPT_ROLE, P.OPT_MENTIONABLE):
                role = next((r for r in guild["roles"] if r["id"] == sid), None)
                if role is not None:
                    resolved.setdefault("roles", {})[sid] = role
            if opt["type"] == P.OPT_CHANNEL:
                ch = self.channel(int(sid))
                if ch is not None:
                    resolved.setdefault("channels", {})[sid] = {**ch, "permissions": str(P.MEMBER_PERMISSIONS)}
        return resolved

    # ---------------------------------------------------------- state lookups

    def member(self, user_id: int, guild_id: int | None = None) -> dict[str, Any] | None:
        guild = self.guilds.get(self.guild_id if guild_id is None else guild_id)
        if guild is None:
            return None
        return next((m for m in guild["members"] if int(m["user"]["id"]) == int(user_id)), None)

    def member_permissions(self, user_id: int, guild_id: int | None = None) -> int:
        """Guild-level permissions of a member: @everyone | their roles (owner and
        ADMINISTRATOR: everything). Channel overwrites are not modelled."""
        gid = self.guild_id if guild_id is None else guild_id
        guild = self.guilds[gid]
        if int(guild["owner_id"]) == int(user_id):
            return P.ALL_PERMISSIONS
        member = self.member(user_id, gid)
        wanted = {str(gid), *(member["roles"] if member else [])}
        perms = 0
        for role in guild["roles"]:
            if role["id"] in wanted:
                perms |= int(role["permissions"])
        return P.ALL_PERMISSIONS if perms & P.Perm.ADMINISTRATOR else perms

    def channel(self, channel_id: int) -> dict[str, Any] | None:
        for guild in self.guilds.values():
            for ch in guild["channels"]:
                if int(ch["id"]) == int(channel_id):
                    return ch
        return None

    def message(self, message_id: int | str) -> dict[str, Any]:
        return self.messages[int(message_id)]

    def messages_in(self, channel_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot created in a channel (default: the first channel), oldest first."""
        cid = str(self.channel_id if channel_id is None else channel_id)
        return [m for m in self.messages.values() if m["channel_id"] == cid]

    def synced_commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The commands as last bulk-overwritten (global if ``guild_id`` is None)."""
        return self.global_commands if guild_id is None else self.guild_commands.get(guild_id, [])

    def heartbeat_stats(self) -> dict[str, Any]:
        """Summary of heartbeat timing: the bot's loop sends them every
        ``heartbeat_interval_ms``; large gaps mean the event loop was blocked."""
        gaps = [h.since_previous for h in self.heartbeats if h.since_previous is not None]
        acks = [h.acked_at - h.received_at for h in self.heartbeats if h.acked_at is not None]
        return {
            "count": len(self.heartbeats),
            "interval_s": self.heartbeat_interval_ms / 1000,
            "max_gap_s": max(gaps) if gaps else None,
            "mean_gap_s": sum(gaps) / len(gaps) if gaps else None,
            "max_ack_s": max(acks) if acks else None,
        }

    # ---------------------------------------------------------- REST

    _ROUTES: list[tuple[str, str, str]] = [
        ("GET", r"/users/@me", "users_me"),
        ("GET", r"/oauth2/applications/@me", "application_info"),
        ("GET", r"/applications/@me", "application_info"),
        ("GET", r"/gateway", "gateway"),
        ("GET", r"/gateway/bot", "gateway_bot"),
        ("GET", r"/applications/(?P<app>\d+)/commands", "get_global_commands"),
        ("PUT", r"/applications/(?P<app>\d+)/commands", "put_global_commands"),
        ("GET", r"/applications/(?P<app>\d+)/commands/(?P<cmd>\d+)", "get_global_command"),
        ("GET", r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands", "get_guild_commands"),
        ("PUT", r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands", "put_guild_commands"),
        ("GET", r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands/(?P<cmd>\d+)", "get_guild_command"),
        ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", "interaction_callback"),
        ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", "followup_create"),
        ("GET", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", "webhook_message_get"),
        ("PATCH", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", "webhook_message_edit"),
        ("DELETE", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", "webhook_message_delete"),
        ("GET", r"/channels/(?P<cid>\d+)", "channel_get"),
        ("GET", r"/channels/(?P<cid>\d+)/messages", "channel_messages_list"),
        ("POST", r"/channels/(?P<cid>\d+)/messages", "channel_message_create"),
        ("GET", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "channel_message_get"),
        ("PATCH", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "channel_message_edit"),
        ("DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "channel_message_delete"),
        ("POST", r"/channels/(?P<cid>\d+)/typing", "channel_typing"),
        ("GET", r"/guilds/(?P<guild>\d+)", "guild_get"),
        ("GET", r"/guilds/(?P<guild>\d+)/channels", "guild_channels"),
        ("GET", r"/guilds/(?P<guild>\d+)/roles", "guild_roles"),
        ("GET", r"/guilds/(?P<guild>\d+)/members/(?P<uid>\d+)", "guild_member"),
    ]
    _COMPILED = [(m, re.compile(p + r"$"), n) for m, p, n in _ROUTES]
    _NO_AUTH = {"gateway", "interaction_callback", "followup_create", "webhook_message_get", "webhook_message_edit", "webhook_message_delete"}

    async def _rest_handler(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        method = request.method.upper()
        body_json, files = await self._read_body(request)
        rec = RecordedRequest(
            method=method,
            path=path,
            query=dict(request.query),
            json=body_json,
            headers={k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type", "user-agent", "x-audit-log-reason")},
            time=time.monotonic(),
            files=files,
        )
        self.requests.append(rec)
        try:
            route, match = None, None
            for m, rx, name in self._COMPILED:
                mt = rx.match(path)
                if mt and m == method:
                    route, match = name, mt
                    break
            rec.route = route
            for inj in self._injections:
                if inj.matches(method, path):
                    inj.remaining -= 1
                    rec.injected, rec.status, rec.response = inj.kind, inj.status, inj.body
                    return _json_response(inj.status, inj.body, inj.headers)
            if route is None:
                self.unknown_requests.append(rec)
                rec.status, rec.response = _error(404, 0, "404: Not Found")
                return _json_response(rec.status, rec.response)
            if route not in self._NO_AUTH and request.headers.get("Authorization") != f"Bot {self.token}":
                rec.status, rec.response = _error(401, 0, "401: Unauthorized")
                return _json_response(rec.status, rec.response)
            handler = getattr(self, f"_r_{route}")
            status, body = await handler(rec, match.groupdict())
            rec.status, rec.response = status, body
            if body is None:
                return web.Response(status=status)
            return _json_response(status, body)
        except Exception as exc:  # a bug in the fake: make it loud, not a retried 500
            _log.exception("fake discord: handler crashed for %s %s", method, path)
            rec.status, rec.response = _error(400, 0, f"fake discord handler crashed: {exc!r}")
            self.unknown_requests.append(rec)
            return _json_response(rec.status, rec.response)
        finally:
            self._notify()

    async def _read_body(self, request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
        if not request.can_read_body:
            return None, []
        ctype = request.content_type
        if ctype == "multipart/form-data":
            payload: Any = None
            files: list[dict[str, Any]] = []
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(data.decode())
                elif part.filename:  # type: ignore[union-attr]
                    files.append({"field": part.name, "filename": part.filename, "size": len(data),  # type: ignore[union-attr]
                                  "content_type": part.headers.get("Content-Type"), "data": bytes(data)})  # type: ignore[union-attr]
            return payload, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw.decode(errors="replace"), []

    # -- login / gateway

    async def _r_users_me(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return 200, self.bot_user

    async def _r_application_info(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return 200, self.application

    async def _r_gateway(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _r_gateway_bot(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1},
        }

    # -- commands

    def _check_app(self, g: Mapping[str, str]) -> tuple[int, Any] | None:
        if int(g["app"]) != self.application_id:
            return _error(403, 50001, "Missing Access")
        return None

    def _store_commands(self, payload: Any, guild_id: int | None) -> tuple[int, Any]:
        if self.validate:
            errors = command_list_errors(payload)
            if errors:
                return _error(400, 50035, "Invalid Form Body", errors)
        out = []
        for cmd in payload:
            key = (guild_id, int(cmd.get("type", 1)), cmd["name"])
            cid = self._command_ids.setdefault(key, P.snowflake())
            stored = {
                "id": str(cid),
                "application_id": str(self.application_id),
                "version": str(P.snowflake()),
                "type": 1,
                "description": "",
                "default_member_permissions": None,
                "nsfw": False,
                "integration_types": [0],
                "contexts": None,
                "name_localizations": None,
                "description_localizations": None,
                **copy.deepcopy(cmd),
            }
            if stored["default_member_permissions"] is not None:  # Discord answers a string
                stored["default_member_permissions"] = str(int(stored["default_member_permissions"]))
            if guild_id is not None:
                stored["guild_id"] = str(guild_id)
            else:
                stored.setdefault("dm_permission", True)
            out.append(stored)
        if guild_id is None:
            self.global_commands = out
        else:
            self.guild_commands[guild_id] = out
        return 200, out

    async def _r_get_global_commands(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return self._check_app(g) or (200, self.global_commands)

    async def _r_put_global_commands(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return self._check_app(g) or self._store_commands(rec.json, None)

    async def _r_get_global_command(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        cmd = next((c for c in self.global_commands if c["id"] == g["cmd"]), None)
        return self._check_app(g) or ((200, cmd) if cmd else _error(404, 10063, "Unknown application command"))

    def _check_guild(self, g: Mapping[str, str]) -> tuple[int, Any] | None:
        if int(g["guild"]) not in self.guilds:
            return _error(403, 50001, "Missing Access")
        return None

    async def _r_get_guild_commands(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return self._check_app(g) or self._check_guild(g) or (200, self.guild_commands.get(int(g["guild"]), []))

    async def _r_put_guild_commands(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return self._check_app(g) or self._check_guild(g) or self._store_commands(rec.json, int(g["guild"]))

    async def _r_get_guild_command(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        cmd = next((c for c in self.guild_commands.get(int(g["guild"]), []) if c["id"] == g["cmd"]), None)
        return self._check_app(g) or self._check_guild(g) or ((200, cmd) if cmd else _error(404, 10063, "Unknown application command"))

    # -- messages

    def _new_message(self, payload: Mapping[str, Any] | None, *, channel_id: int, guild_id: int | None,
                     files: Sequence[Mapping[str, Any]] = (), interaction: InteractionRecord | None = None,
                     message_type: int = 0, extra_flags: int = 0) -> dict[str, Any]:
        payload = payload or {}
        mid = P.snowflake()
        metadata = None
        if interaction is not None:
            ip = interaction.payload
            user = (ip.get("member") or {}).get("user") or ip.get("user")
            metadata = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user,
                "authorizing_integration_owners": ip.get("authorizing_integration_owners", {}),
            }
            if interaction.type == P.INTERACTION_APPLICATION_COMMAND:
                metadata["name"] = (ip.get("data") or {}).get("name")
                metadata["command_type"] = (ip.get("data") or {}).get("type", 1)
            if interaction.type == P.INTERACTION_COMPONENT and ip.get("message"):
                metadata["interacted_message_id"] = ip["message"]["id"]
            if interaction.original is not None and message_type == 0:
                metadata["original_response_message_id"] = interaction.original["id"]
        keep = P.MESSAGE_FLAG_EPHEMERAL | (1 << 2) | (1 << 12) | P.MESSAGE_FLAG_COMPONENTS_V2
        flags = (int(payload.get("flags") or 0) & keep) | extra_flags
        msg = P.make_message(
            message_id=mid,
            channel_id=channel_id,
            guild_id=guild_id,
            author=self.bot_user,
            flags=flags,
            message_type=message_type,
            webhook_id=self.application_id if interaction is not None else None,
            application_id=self.application_id if interaction is not None else None,
            interaction_metadata=metadata,
        )
        self._apply_edit(msg, payload, files, new=True)
        self.messages[mid] = msg
        return msg

    def _apply_edit(self, msg: dict[str, Any], payload: Mapping[str, Any], files: Sequence[Mapping[str, Any]], *, new: bool = False) -> None:
        for key in ("content", "embeds", "components", "poll"):
            if key in payload:
                msg[key] = copy.deepcopy(payload[key]) if payload[key] is not None else ([] if key != "content" else "")
        if payload.get("embed"):
            msg["embeds"] = [copy.deepcopy(payload["embed"])]
        if payload.get("flags") is not None and not new:
            keep = (1 << 2) | P.MESSAGE_FLAG_COMPONENTS_V2
            msg["flags"] = (msg["flags"] & ~keep) | (int(payload["flags"]) & keep)
        for e in msg.get("embeds") or []:
            e.setdefault("type", "rich")
        if "attachments" in payload or files:
            kept = []
            existing = {a["id"]: a for a in msg.get("attachments") or []}
            for a in payload.get("attachments") or []:
                if str(a.get("id")) in existing:
                    kept.append(existing[str(a["id"])])
            for i, f in enumerate(files):
                aid = P.snowflake()
                desc = next((a.get("description") for a in payload.get("attachments") or [] if str(a.get("id")) == str(i)), None)
                url = f"https://cdn.discordapp.com/attachments/{msg['channel_id']}/{aid}/{f['filename']}"
                kept.append({"id": str(aid), "filename": f["filename"], "size": f["size"], "url": url, "proxy_url": url,
                             "content_type": f.get("content_type"), "description": desc,
                             "ephemeral": bool(msg["flags"] & P.MESSAGE_FLAG_EPHEMERAL)})
            msg["attachments"] = kept
        if not new:
            msg["edited_timestamp"] = P.iso_now()
        self._apply_mentions(msg, payload.get("allowed_mentions", msg.get("_allowed_mentions")))
        if "allowed_mentions" in payload:
            msg["_allowed_mentions"] = payload["allowed_mentions"]

    def _apply_mentions(self, msg: dict[str, Any], am: Mapping[str, Any] | None) -> None:
        """Fill mentions/mention_roles/mention_everyone the way Discord resolves
        them under allowed_mentions (absent = everything allowed)."""
        content = msg.get("content") or ""
        parse = None if am is None else set(am.get("parse") or [])
        allowed_users = set() if am is None else {str(u) for u in am.get("users") or []}
        allowed_roles = set() if am is None else {str(r) for r in am.get("roles") or []}
        users, roles = [], []
        for uid in dict.fromkeys(_MENTION_USER.findall(content)):
            if parse is None or "users" in parse or uid in allowed_users:
                member = self.member(int(uid), int(msg["guild_id"])) if msg.get("guild_id") else None
                users.append(member["user"] if member else P.make_user(int(uid), f"user{uid[-4:]}"))
        for rid in dict.fromkeys(_MENTION_ROLE.findall(content)):
            if parse is None or "roles" in parse or rid in allowed_roles:
                roles.append(rid)
        msg["mentions"] = users
        msg["mention_roles"] = roles
        msg["mention_everyone"] = ("@everyone" in content or "@here" in content) and (parse is None or "everyone" in parse)

    def _public(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in msg.items() if not k.startswith("_")}

    def _message_check(self, payload: Any, files: Sequence[Any], *, require_content: bool) -> tuple[int, Any] | None:
        if not self.validate:
            return None
        if payload is not None and not isinstance(payload, Mapping):
            return _error(400, 50109, "The request body contains invalid JSON.")
        code, errors = message_errors(payload, files=len(files), require_content=require_content)
        if code == 50006:
            return _error(400, 50006, "Cannot send an empty message")
        if code:
            return _error(400, code, "Invalid Form Body", errors)
        return None

    # -- interaction callback

    _ALLOWED_CALLBACKS = {
        P.INTERACTION_APPLICATION_COMMAND: {4, 5, 9, 12},
        P.INTERACTION_COMPONENT: {4, 5, 6, 7, 9, 12},
        P.INTERACTION_AUTOCOMPLETE: {8},
        P.INTERACTION_MODAL_SUBMIT: {4, 5, 6, 7},
    }

    async def _r_interaction_callback(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        now = rec.time
        ir = self.interactions.get(int(g["iid"]))
        if ir is None or ir.token != g["token"]:
            return _error(404, 10062, "Unknown interaction")
        ir.callback_attempts.append(rec)
        if now - ir.dispatched_at > self.ack_deadline:
            ir.late_callbacks.append(now - ir.dispatched_at)
            return _error(404, 10062, "Unknown interaction")
        if ir.acked:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = rec.json if isinstance(rec.json, Mapping) else {}
        ctype = body.get("type")
        data = body.get("data") or {}
        if ctype not in self._ALLOWED_CALLBACKS.get(ir.type, set()):
            return _error(400, 50035, "Invalid Form Body", {"type": {"_errors": [
                {"code": "INTERACTION_RESPONSE_TYPE_INVALID",
                 "message": f"Callback type {ctype!r} is not valid for interaction type {ir.type}"}]}})
        if self.validate:
            if ctype in (4, 7):
                err = self._message_check(data, rec.files, require_content=(ctype == 4))
                if err:
                    return err
            elif ctype == 8:
                errors = autocomplete_errors(data)
                if errors:
                    return _error(400, 50035, "Invalid Form Body", errors)
            elif ctype == 9:
                errors = modal_errors(data)
                if errors:
                    return _error(400, 50035, "Invalid Form Body", errors)
        ir.acked_at = now
        ir.callback_type = ctype
        ir.callback_data = copy.deepcopy(data)
        channel_id = int(ir.payload.get("channel_id") or ir.payload.get("channel", {}).get("id"))
        guild_id = int(ir.payload["guild_id"]) if ir.payload.get("guild_id") else None
        msg: dict[str, Any] | None = None
        loading = False
        if ctype == 4:
            mtype = 20 if ir.type == P.INTERACTION_APPLICATION_COMMAND else 19
            msg = ir.original = self._new_message(data, channel_id=channel_id, guild_id=guild_id, files=rec.files,
                                                  interaction=ir, message_type=mtype)
        elif ctype == 5:
            loading = True
            mtype = 20 if ir.type == P.INTERACTION_APPLICATION_COMMAND else 19
            msg = ir.original = self._new_message({"flags": data.get("flags", 0)}, channel_id=channel_id,
                                                  guild_id=guild_id, interaction=ir, message_type=mtype,
                                                  extra_flags=P.MESSAGE_FLAG_LOADING)
        elif ctype in (6, 7) and ir.payload.get("message"):
            target = self.messages.get(int(ir.payload["message"]["id"]))
            if target is None:
                target = copy.deepcopy(ir.payload["message"])
                self.messages[int(target["id"])] = target
            ir.original = target
            if ctype == 7:
                self._apply_edit(target, data, rec.files)
                msg = target
        if rec.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        interaction = {"id": str(ir.id), "type": ir.type}
        if msg is not None:
            interaction.update({
                "response_message_id": msg["id"],
                "response_message_loading": loading,
                "response_message_ephemeral": bool(msg["flags"] & P.MESSAGE_FLAG_EPHEMERAL),
            })
        resource: dict[str, Any] = {"type": ctype}
        if msg is not None:
            resource["message"] = self._public(msg)
        return 200, {"interaction": interaction, "resource": resource}

    # -- webhooks (followups, @original)

    def _webhook_interaction(self, rec: RecordedRequest, g: Mapping[str, str]) -> InteractionRecord | tuple[int, Any]:
        if int(g["app"]) != self.application_id:
            return _error(404, 10015, "Unknown Webhook")
        ir = next((i for i in self.interactions.values() if i.token == g["token"]), None)
        if ir is None or not ir.acked:
            # Discord only creates the interaction webhook once the interaction is acknowledged.
            return _error(404, 10015, "Unknown Webhook")
        if rec.time - ir.dispatched_at > self.interaction_token_ttl:
            return _error(401, 50027, "Invalid Webhook Token")
        return ir

    def _webhook_message(self, ir: InteractionRecord, mid: str) -> dict[str, Any] | None:
        if mid == "@original":
            return None if ir.deleted_original else ir.original
        for msg in ([ir.original] if ir.original and not ir.deleted_original else []) + ir.followups:
            if msg["id"] == mid and not msg.get("_deleted"):
                return msg
        return None

    async def _r_followup_create(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        ir = self._webhook_interaction(rec, g)
        if not isinstance(ir, InteractionRecord):
            return ir
        err = self._message_check(rec.json, rec.files, require_content=True)
        if err:
            return err
        payload = rec.json or {}
        orig = ir.original
        if (ir.callback_type == 5 and orig is not None and not ir._deferred_followup_done
                and not ir.deleted_original and orig["flags"] & P.MESSAGE_FLAG_LOADING):
            # After a "thinking" defer, the first followup completes the deferred message
            # (same id, and the defer's ephemerality wins over the followup's flags).
            ir._deferred_followup_done = True
            payload = {k: v for k, v in payload.items() if k != "flags"}
            self._apply_edit(orig, payload, rec.files)
            orig["flags"] &= ~P.MESSAGE_FLAG_LOADING
            orig["edited_timestamp"] = None
            msg = orig
        else:
            channel_id = int(ir.payload.get("channel_id"))
            guild_id = int(ir.payload["guild_id"]) if ir.payload.get("guild_id") else None
            msg = self._new_message(payload, channel_id=channel_id, guild_id=guild_id, files=rec.files, interaction=ir)
        ir.followups.append(msg)
        if rec.query.get("wait") in ("1", "true", "True"):
            return 200, self._public(msg)
        return 204, None

    async def _r_webhook_message_get(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        ir = self._webhook_interaction(rec, g)
        if not isinstance(ir, InteractionRecord):
            return ir
        msg = self._webhook_message(ir, g["mid"])
        return (200, self._public(msg)) if msg else _error(404, 10008, "Unknown Message")

    async def _r_webhook_message_edit(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        ir = self._webhook_interaction(rec, g)
        if not isinstance(ir, InteractionRecord):
            return ir
        msg = self._webhook_message(ir, g["mid"])
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        err = self._message_check(rec.json, rec.files, require_content=False)
        if err:
            return err
        self._apply_edit(msg, rec.json or {}, rec.files)
        if msg["flags"] & P.MESSAGE_FLAG_LOADING:
            msg["flags"] &= ~P.MESSAGE_FLAG_LOADING
            ir._deferred_followup_done = True
        if g["mid"] == "@original" or msg is ir.original:
            ir._deferred_followup_done = True
        return 200, self._public(msg)

    async def _r_webhook_message_delete(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        ir = self._webhook_interaction(rec, g)
        if not isinstance(ir, InteractionRecord):
            return ir
        msg = self._webhook_message(ir, g["mid"])
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        if msg is ir.original:
            ir.deleted_original = True
        self.messages.pop(int(msg["id"]), None)
        msg["_deleted"] = True
        return 204, None

    # -- channels / guilds

    async def _r_channel_get(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        ch = self.channel(int(g["cid"]))
        return (200, ch) if ch else _error(404, 10003, "Unknown Channel")

    async def _r_channel_message_create(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        ch = self.channel(int(g["cid"]))
        if ch is None:
            return _error(404, 10003, "Unknown Channel")
        err = self._message_check(rec.json, rec.files, require_content=True)
        if err:
            return err
        payload = dict(rec.json or {})
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            for m in self.messages.values():
                if (
                    m["channel_id"] == g["cid"]
                    and m.get("_nonce") == str(nonce)
                    and time.time() - m.get("_created", 0) < NONCE_WINDOW_S
                ):
                    return 200, self._public(m)
        if payload.get("flags", 0) & P.MESSAGE_FLAG_EPHEMERAL:
            return _error(400, 50035, "Invalid Form Body", {"flags": {"_errors": [{"code": "MESSAGE_FLAGS_INVALID", "message": "Ephemeral is only for interaction responses"}]}})
        mtype = 19 if payload.get("message_reference") else 0
        msg = self._new_message(payload, channel_id=int(g["cid"]), guild_id=int(ch["guild_id"]), files=rec.files, message_type=mtype)
        if payload.get("message_reference"):
            msg["message_reference"] = {"type": 0, **payload["message_reference"], "channel_id": g["cid"], "guild_id": ch["guild_id"]}
        if nonce is not None:
            msg["nonce"], msg["_nonce"], msg["_created"] = str(nonce), str(nonce), time.time()
        return 200, self._public(msg)

    async def _r_channel_messages_list(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        """Channel history, newest first (as Discord answers, also for ``after``); no nonces echoed."""
        if self.channel(int(g["cid"])) is None:
            return _error(404, 10003, "Unknown Channel")
        limit = max(1, min(int(rec.query.get("limit", 50)), 100))
        msgs = sorted(
            (
                m
                for m in self.messages.values()
                if m["channel_id"] == g["cid"] and not m.get("_deleted") and not m["flags"] & P.MESSAGE_FLAG_EPHEMERAL
            ),
            key=lambda m: int(m["id"]),
        )
        if "after" in rec.query:
            msgs = [m for m in msgs if int(m["id"]) > int(rec.query["after"])][:limit]
        else:
            if "before" in rec.query:
                msgs = [m for m in msgs if int(m["id"]) < int(rec.query["before"])]
            msgs = msgs[-limit:]
        return 200, [{k: v for k, v in self._public(m).items() if k != "nonce"} for m in reversed(msgs)]


    def _channel_message(self, g: Mapping[str, str]) -> dict[str, Any] | None:
        msg = self.messages.get(int(g["mid"]))
        return msg if msg is not None and msg["channel_id"] == g["cid"] else None

    async def _r_channel_message_get(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        if self.channel(int(g["cid"])) is None:
            return _error(404, 10003, "Unknown Channel")
        msg = self._channel_message(g)
        return (200, self._public(msg)) if msg else _error(404, 10008, "Unknown Message")

    async def _r_channel_message_edit(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        msg = self._channel_message(g)
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        if msg["flags"] & P.MESSAGE_FLAG_EPHEMERAL:
            return _error(404, 10008, "Unknown Message")
        err = self._message_check(rec.json, rec.files, require_content=False)
        if err:
            return err
        self._apply_edit(msg, rec.json or {}, rec.files)
        return 200, self._public(msg)

    async def _r_channel_message_delete(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        msg = self._channel_message(g)
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        self.messages.pop(int(msg["id"]), None)
        msg["_deleted"] = True
        return 204, None

    async def _r_channel_typing(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        return (204, None) if self.channel(int(g["cid"])) else _error(404, 10003, "Unknown Channel")

    async def _r_guild_get(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        guild = self.guilds.get(int(g["guild"]))
        if guild is None:
            return _error(404, 10004, "Unknown Guild")
        skip = {"members", "channels", "threads", "presences", "voice_states", "joined_at", "large", "member_count",
                "lazy", "stage_instances", "guild_scheduled_events", "soundboard_sounds", "unavailable"}
        return 200, {k: v for k, v in guild.items() if k not in skip}

    async def _r_guild_channels(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        guild = self.guilds.get(int(g["guild"]))
        return (200, guild["channels"]) if guild else _error(404, 10004, "Unknown Guild")

    async def _r_guild_roles(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        guild = self.guilds.get(int(g["guild"]))
        return (200, guild["roles"]) if guild else _error(404, 10004, "Unknown Guild")

    async def _r_guild_member(self, rec: RecordedRequest, g: dict[str, str]) -> tuple[int, Any]:
        if int(g["guild"]) not in self.guilds:
            return _error(404, 10004, "Unknown Guild")
        member = self.member(int(g["uid"]), int(g["guild"]))
        return (200, member) if member else _error(404, 10007, "Unknown Member")


def _find_component(components: Iterable[Mapping[str, Any]], custom_id: str) -> Mapping[str, Any] | None:
    for comp in components:
        if comp.get("custom_id") == custom_id:
            return comp
        for key in ("components", "accessory"):
            child = comp.get(key)
            if isinstance(child, Mapping):
                child = [child]
            if child:
                found = _find_component(child, custom_id)
                if found is not None:
                    return found
    return None


# ------------------------------------------------------------------ client harness


class _ErrorLogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.asynccontextmanager
async def running_client(
    fake: FakeDiscord,
    client_factory: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    ready_timeout: float = 10.0,
    guild_ready_timeout: float | None = 0.1,
    close_timeout: float = 5.0,
    fail_on_error_logs: bool = True,
    error_loggers: Sequence[str] = ("discord",),
) -> AsyncIterator[Any]:
    """Start a real discord.py client against ``fake`` and wait until it is ready.

    ``client_factory()`` (sync or async) builds the client inside the running
    loop. The ``start()`` task is watched: if it dies (e.g. a gateway payload
    the parser rejects), every ``fake.wait_*`` raises :class:`ClientCrashed`
    with the real error chained, instead of timing out. ``guild_ready_timeout``
    (the ConnectionState option behind ``Client(guild_ready_timeout=...)``,
    default 2 s) is lowered so ``on_ready`` comes quickly. On exit the client is
    closed and its task awaited; the block fails if the task crashed or, with
    ``fail_on_error_logs``, if anything logged an ERROR on ``error_loggers``
    (discord.py logs exceptions from commands, views and event handlers there).
    The captured records are on ``client._fake_error_logs``.
    """
    client = client_factory()
    if inspect.isawaitable(client):
        client = await client
    state = client._connection
    if guild_ready_timeout is not None and state.guild_ready_timeout > guild_ready_timeout:
        state.guild_ready_timeout = guild_ready_timeout
    capture = _ErrorLogCapture()
    loggers = [logging.getLogger(name) for name in error_loggers]
    for lg in loggers:
        lg.addHandler(capture)
    client._fake_error_logs = capture.records
    task = asyncio.create_task(client.start(fake.token), name=f"{type(client).__name__}.start")
    fake.watch_task(task)
    body_failed = False
    try:
        await fake.wait_until(client.is_ready, ready_timeout, what="the client to become ready")
        yield client
    except BaseException:
        body_failed = True
        raise
    finally:
        fake.unwatch_task(task)
        problems: list[str] = []
        crash: BaseException | None = None
        try:
            await asyncio.wait_for(client.close(), close_timeout)
        except Exception as exc:  # pragma: no cover - diagnostic path
            problems.append(f"client.close() failed: {exc!r}")
        try:
            await asyncio.wait_for(asyncio.shield(task), close_timeout)
        except asyncio.TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            problems.append(f"the client task did not end within {close_timeout}s of close()")
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        except Exception as exc:
            crash = exc
            problems.append(f"the client task crashed: {exc!r}")
        for lg in loggers:
            lg.removeHandler(capture)
        if fail_on_error_logs and capture.records:
            msgs = "\n".join(
                f"  {r.name}: {r.getMessage()}" + (f" [{r.exc_info[1]!r}]" if r.exc_info and r.exc_info[1] else "")
                for r in capture.records
            )
            problems.append(f"{len(capture.records)} ERROR log record(s) while the client ran:\n{msgs}")
        if problems and not body_failed:
            err = ClientCrashed("; ".join(problems))
            if crash is not None:
                raise err from crash
            raise err
