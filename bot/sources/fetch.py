"""Fetching web pages and feeds safely: httpx, every hop checked.

:class:`Fetcher` does one GET the way a polite, careful bot should:

* only ``http`` / ``https``; at most :data:`MAX_REDIRECTS` redirects, followed
  here (not by httpx) so that **every hop's host is resolved and checked**:
  an address in a loopback, private, link-local, multicast, reserved or
  otherwise non-global range is refused unless ``allow_private`` (the
  ``FETCH_ALLOW_PRIVATE`` setting) is on. The connection then goes to the
  address that was checked (the URL's host is swapped for it; ``Host`` and TLS
  SNI keep the name), so a name cannot resolve to a public address for the
  check and to a private one for the connection;
* a connect timeout and a total timeout for the whole fetch, redirects
  included (a server that trickles bytes is cut off);
* a size cap on the *decoded* body, read as a stream (a 20 MB page or a gzip
  bomb stops at the cap), checked against ``Content-Length`` first;
* ``Accept-Encoding: gzip``, a ``User-Agent`` naming the bot and a contact;
* conditional requests (``If-None-Match`` / ``If-Modified-Since``);
* one request at a time per host, with a pause between them (:class:`HostGate`; across processes
  when they share a PostgreSQL);
* the body decoded with the charset from the headers, else the page's own
  declaration, else a detected one (:func:`decode_body`).

Failures raise :class:`FetchError` with a short, clear message and a ``kind``
(``http``, ``timeout``, ``too-large``, ``redirects``, ``refused``, ``network``,
``bad-url``). The resolver is injectable (tests make ``news.example`` resolve
to a public address) and so is the httpx transport.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol
from urllib.parse import urljoin

import httpx

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_HOST_PAUSE_S = 1.0
SHARED_RETRY_S = 30.0  # after the hosts' shared turns could not be read, how long each process keeps its own only
ACCEPT = "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,application/xml;q=0.9,*/*;q=0.8"
REDIRECT_CODES = {301, 302, 303, 307, 308}

Resolver = Callable[[str, int], Awaitable[list[str]]]


class FetchError(Exception):
    """A fetch that failed; ``str()`` is a short message fit for a user and the log."""

    def __init__(self, message: str, *, kind: str, url: str, status: int | None = None,
                 retry_after: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.url = url
        self.status = status
        self.retry_after = retry_after  # the server's Retry-After header (429, 503)


@dataclass(frozen=True)
class FetchResult:
    url: str  # the final URL, after redirects
    requested: str
    status: int  # 200, or 304 when not modified
    headers: dict[str, str]
    content: bytes = b""
    hops: tuple[str, ...] = ()  # every URL requested, in order
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag") or None

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified") or None

    @property
    def header_charset(self) -> str | None:
        m = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", self.headers.get("content-type", ""), re.IGNORECASE)
        return m.group(1) if m else None

    def text(self) -> str:
        return decode_body(self.content, self.header_charset)[0]


# ------------------------------------------------------------------ charsets

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)["']""", re.IGNORECASE)


_LATIN_SINGLE_BYTE = {
    "cp1250", "cp1252", "cp1254", "cp1257", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_9",
    "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_latin2", "mac_roman",
    "mac_iceland", "mac_turkish",
}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        return None


def declared_charset(content: bytes) -> str | None:
    """The charset a page or XML document declares in its first few KB, if any."""
    head = content[:4096]
    m = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
    return _codec(m.group(1).decode("ascii", "replace")) if m else None


def decode_body(content: bytes, header_charset: str | None = None) -> tuple[str, str]:
    """Decode a body: the header's charset, else the page's declaration, else a
    detected one, else UTF-8 with replacement characters. A declared charset
    that does not decode the bytes (a server that lies) is passed over.
    Returns (text, the charset used)."""
    if content.startswith(codecs.BOM_UTF8):
        return content[len(codecs.BOM_UTF8):].decode("utf-8", "replace"), "utf-8"
    tried = []
    for name in (_codec(header_charset), declared_charset(content)):
        if name and name not in tried:
            tried.append(name)
            try:
                return content.decode(name), name
            except UnicodeDecodeError:
                log.info("fetch: the body is not valid %s as declared; trying another charset", name)
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(content[:200_000]))
    if matches:
        best = min(matches, key=lambda m: m.chaos)
        # Latin single-byte codepages all "read" Latin text and the detector cannot tell them apart on a
        # short page: take windows-1252, the web's default for undeclared legacy pages (WHATWG).
        pick = "cp1252" if best.encoding in _LATIN_SINGLE_BYTE else best.encoding
        return content.decode(pick, "replace"), pick
    return content.decode("utf-8", "replace"), "utf-8"


# ------------------------------------------------------------------ addresses


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public_address(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not (addr.is_multicast or addr.is_reserved or addr.is_loopback
                                   or addr.is_link_local or addr.is_private or addr.is_unspecified)


# ------------------------------------------------------------------ politeness


class SharedTurns(Protocol):
    """Each host's turn, shared with other processes (:class:`HostGate` asks here after its own
    turn): ``claim`` returns None when the turn is taken, else seconds to wait before asking again
    (0.0: unknown, another request is in flight); ``free`` ends the turn, the pause counted from now.
    Blocking calls (a database): the gate makes them in a worker thread."""

    def claim(self, host: str) -> float | None: ...

    def free(self, host: str) -> None: ...


class HostGate:
    """One request at a time per host, and at least ``pause`` seconds between
    the end of one and the start of the next. Works across event loops and
    threads (the bot's loop polls feeds; worker threads fetch pasted links).

    ``shared`` (several processes on one PostgreSQL): after this process's own turn, the host's
    turn across processes (:class:`SharedTurns`; the store's ``feed_hosts``); a host another process
    is requesting waits, the other hosts do not. When that store cannot be reached the gate goes on
    with this process's own turns (logged once per outage) and asks it again after
    :data:`SHARED_RETRY_S` (each request need not wait out the connect timeout)."""

    def __init__(self, pause: float = DEFAULT_HOST_PAUSE_S, shared: SharedTurns | None = None) -> None:
        self.pause = float(pause)
        self.shared = shared
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._next: dict[str, float] = {}
        self._held: set[str] = set()  # hosts whose shared turn this process holds
        self._shared_down = False
        self._shared_retry_at = 0.0  # monotonic: before this, the shared turns are not asked (store down)

    async def acquire(self, host: str) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                if host not in self._busy and now >= self._next.get(host, 0.0):
                    self._busy.add(host)
                    break
                wait = 0.02 if host in self._busy else self._next[host] - now
            await asyncio.sleep(max(0.005, min(wait, 0.5)))
        if self.shared is not None:
            try:
                await self._take_shared(host)
            except BaseException:
                self.release(host)
                raise

    def release(self, host: str) -> None:
        with self._lock:
            self._busy.discard(host)
            self._next[host] = time.monotonic() + self.pause

    async def finish(self, host: str) -> None:
        """The end of a request: :meth:`release`, and the shared turn ended (so the pause runs in
        every process). The local turn first: a second cancellation here cannot leave it held."""
        self.release(host)
        if host in self._held:
            self._held.discard(host)
            # shielded: a cancel while the free waits for a worker thread must not drop it (every process
            # would wait ~26 s for the turn to run out, and nothing here would free it again)
            free = asyncio.ensure_future(asyncio.to_thread(self.shared.free, host))
            try:
                await asyncio.shield(free)
            except asyncio.CancelledError:
                free.add_done_callback(_retrieved)
                raise
            except Exception as exc:  # noqa: BLE001 - the turn runs out on its own
                log.warning("fetch: could not end the shared turn on %s (%s); it runs out by itself", host, exc)

    async def _take_shared(self, host: str) -> None:
        if time.monotonic() < self._shared_retry_at:
            return  # the store was unreachable a moment ago: this process's turns only, no timeout to pay
        poll = min(0.05, max(0.005, self.pause / 4))  # while another process's request is in flight
        # ... doubled each time it is still in flight, up to the pause: a waiter is not a transaction
        # every 50 ms while a slow host answers, and it loses no time (the pause follows the request)
        busy = poll
        while True:
            ticket = _Ticket()
            claim = asyncio.ensure_future(asyncio.to_thread(self._claim, host, ticket))
            try:
                wait = await asyncio.shield(claim)
            except asyncio.CancelledError:
                claim.add_done_callback(_retrieved)
                with ticket.lock:
                    ticket.gone = True  # a turn the worker takes from now on it gives back itself
                    taken = ticket.taken
                if taken:  # taken for nobody: give it back, off the event loop (the store may be slow or down)
                    _off_loop(self._give_back, host)
                raise
            except Exception as exc:  # noqa: BLE001 - an unreachable store: this process's turns only
                self._shared_retry_at = time.monotonic() + SHARED_RETRY_S
                if not self._shared_down:
                    self._shared_down = True
                    log.warning("fetch: the hosts' shared turns cannot be read (%s); each process keeps its own "
                                "one request at a time per host until they can", exc)
                return
            if self._shared_down:
                self._shared_down = False
                log.warning("fetch: the hosts' shared turns can be read again")
            if wait is None:
                self._held.add(host)
                return
            if wait:  # the rest of the pause after another process's request
                await asyncio.sleep(max(0.001, min(wait, max(self.pause, poll))))
                busy = poll
            else:
                await asyncio.sleep(busy)
                busy = min(busy * 2, max(self.pause, poll))

    def _claim(self, host: str, ticket: _Ticket) -> float | None:
        """``shared.claim`` in a worker thread. A turn taken after its waiter was cancelled (the task, or
        the loop's shutdown, which cancels every task) is given back here: nobody else would."""
        wait = self.shared.claim(host)
        if wait is None:
            with ticket.lock:
                ticket.taken = taken = not ticket.gone
            if not taken:  # its waiter was cancelled meanwhile
                self._give_back(host)
        return wait

    def _give_back(self, host: str) -> None:
        """End a shared turn that was taken but is not used (blocking: a worker thread)."""
        try:
            self.shared.free(host)
        except Exception:  # noqa: BLE001 - it runs out on its own
            log.debug("fetch: giving back %s's turn failed", host, exc_info=True)


class _Ticket:
    """One shared claim in flight: whether its waiter is gone, whether the worker took the turn for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gone = False
        self.taken = False


def _retrieved(claim: asyncio.Future) -> None:
    """A claim nobody awaits any more: its error, if any, is read here (not logged as never retrieved)."""
    if not claim.cancelled():
        claim.exception()


def _off_loop(fn: Callable[..., object], *args: object) -> None:
    """Run ``fn`` without waiting for it and off the event loop: the loop's executor (an ``asyncio.run``
    that is shutting down still waits for it), else a thread of its own."""
    try:
        asyncio.get_running_loop().run_in_executor(None, fn, *args)
    except RuntimeError:  # no running loop, or its executor is shut down
        threading.Thread(target=fn, args=args, name="precis-host-turn", daemon=True).start()


# ------------------------------------------------------------------ the fetcher


@dataclass
class FetchConfig:
    user_agent: str = field(default_factory=lambda: user_agent())
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    allow_private: bool = False
    host_pause: float = DEFAULT_HOST_PAUSE_S

    @classmethod
    def from_settings(cls, settings) -> FetchConfig:
        return cls(
            user_agent=user_agent(settings.fetch_contact),
            max_bytes=settings.fetch_max_bytes,
            timeout=settings.fetch_timeout_seconds,
            connect_timeout=min(DEFAULT_CONNECT_TIMEOUT_S, settings.fetch_timeout_seconds),
            allow_private=settings.fetch_allow_private,
        )


def user_agent(contact: str | None = None) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("precis")
    except PackageNotFoundError:
        ver = "dev"
    contact = (contact or "").strip()
    return f"Precis/{ver} (Discord news summary bot{'; +' + contact if contact else ''})"


@dataclass
class Fetcher:
    config: FetchConfig = field(default_factory=FetchConfig)
    resolver: Resolver = system_resolver
    transport: httpx.AsyncBaseTransport | None = None
    gate: HostGate | None = None

    def __post_init__(self) -> None:
        if self.gate is None:
            self.gate = HostGate(self.config.host_pause)

    def _client(self) -> httpx.AsyncClient:
        c = self.config
        return httpx.AsyncClient(
            transport=self.transport,
            follow_redirects=False,  # followed here, each hop checked
            trust_env=False,  # no proxy from the environment: the address checked is the address used
            timeout=httpx.Timeout(c.timeout, connect=c.connect_timeout),
            headers={"User-Agent": c.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
        )

    async def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
                    accept: str | None = None) -> FetchResult:
        """GET ``url`` (conditional when ``etag`` / ``last_modified`` are given)."""
        async with self._client() as client:
            return await self._follow(client, url, etag, last_modified, accept)

    async def _follow(self, client, url, etag, last_modified, accept) -> FetchResult:
        started = time.monotonic()
        budget = self.config.timeout  # spent only while requesting: waiting for the host's turn is free
        hops: list[str] = []
        seen: set[str] = set()
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            hops.append(current)
            seen.add(current)
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(max(0.001, budget)):
                    target, host_header, sni = await self._checked(current, url)
            except TimeoutError:
                raise FetchError(f"timed out after {self.config.timeout:g} s (resolving)", kind="timeout",
                                 url=url) from None
            budget -= time.monotonic() - t0
            headers = {"Host": host_header}
            if accept:
                headers["Accept"] = accept
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            request = client.build_request("GET", target, headers=headers,
                                           extensions={"sni_hostname": sni} if sni else None)
            host = httpx.URL(current).host
            await self.gate.acquire(host)
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(max(0.001, budget)):
                    outcome = await self._hop(client, request, current, url)
            except TimeoutError:
                raise FetchError(f"timed out after {self.config.timeout:g} s", kind="timeout", url=url) from None
            finally:
                budget -= time.monotonic() - t0
                await self.gate.finish(host)
            if isinstance(outcome, str):  # a redirect
                if outcome in seen:
                    raise FetchError(f"redirect loop ({current} -> {outcome})", kind="redirects", url=url)
                current = outcome
                continue
            status, resp_headers, content = outcome
            return FetchResult(current, url, status, resp_headers, content, tuple(hops), time.monotonic() - started)
        raise FetchError(f"more than {MAX_REDIRECTS} redirects", kind="redirects", url=url)

    async def _hop(self, client, request, current: str, url: str):
        """One request: the next URL (a redirect) or (status, headers, body)."""
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            raise FetchError("the server did not answer in time", kind="timeout", url=url) from None
        except httpx.HTTPError as exc:
            raise FetchError(f"could not connect: {_reason(exc)}", kind="network", url=url) from None
        try:
            code = response.status_code
            if code in REDIRECT_CODES:
                location = response.headers.get("location")
                if not location:
                    raise FetchError(f"redirect ({code}) without a Location", kind="http", url=url, status=code)
                return urljoin(current, location.strip())
            if code == 304:
                return 304, _headers(response), b""
            if code != 200:
                raise FetchError(_status_message(response), kind="http", url=url, status=code,
                                 retry_after=response.headers.get("retry-after"))
            return 200, _headers(response), await self._read(response, url)
        finally:
            await response.aclose()

    async def _checked(self, current: str, original: str) -> tuple[httpx.URL, str, str | None]:
        """Check one hop's URL and host; returns (URL to request, Host header, TLS SNI name)."""
        try:
            u = httpx.URL(current)
        except (httpx.InvalidURL, ValueError) as exc:
            raise FetchError(f"not a valid URL ({exc})", kind="bad-url", url=original) from None
        if u.scheme not in ("http", "https"):
            raise FetchError(f"only http and https links can be fetched (not {u.scheme or 'no scheme'}:)",
                             kind="bad-url", url=original)
        host = u.host
        if not host:
            raise FetchError("the link has no host", kind="bad-url", url=original)
        port = u.port or (443 if u.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
            literal = True
        except ValueError:
            literal = False
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise FetchError(f"cannot resolve {host} ({_reason(exc)})", kind="network", url=original) from None
            if not addresses:
                raise FetchError(f"cannot resolve {host}", kind="network", url=original)
            addresses.sort(key=lambda a: ":" in a)  # IPv4 first: the one connected to must work without IPv6
        if not self.config.allow_private:
            bad = [a for a in addresses if not is_public_address(a)]
            if bad:
                log.warning("fetch: refused %s: %s resolves to a non-public address (%s)", current, host, bad[0])
                raise FetchError(
                    f"refused: {host} is a private, local or reserved address ({bad[0]})"
                    + ("" if current == original else f", reached by a redirect from {original}"),
                    kind="refused", url=original,
                )
        host_header = u.netloc.decode("ascii")
        if literal:
            return u, host_header, None
        # Connect to the address that was checked; Host and SNI keep the name.
        return u.copy_with(host=addresses[0]), host_header, host if u.scheme == "https" else None

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        cap = self.config.max_bytes
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > cap and "content-encoding" not in response.headers:
            raise FetchError(f"too large: {int(length) / 2**20:.1f} MB (the limit is {cap / 2**20:.1f} MB)",
                             kind="too-large", url=url)
        chunks, size = [], 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise FetchError(f"too large: more than {cap / 2**20:.1f} MB", kind="too-large", url=url)
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise FetchError("the server stopped sending", kind="timeout", url=url) from None
        except httpx.DecodingError as exc:
            raise FetchError(f"the body could not be decoded ({_reason(exc)})", kind="network", url=url) from None
        except httpx.HTTPError as exc:
            raise FetchError(f"the connection failed while reading ({_reason(exc)})", kind="network", url=url) from None
        return b"".join(chunks)


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


def _reason(exc: BaseException) -> str:
    return (str(exc) or exc.__class__.__name__)[:200]


def _status_message(response: httpx.Response) -> str:
    code = response.status_code
    text = {404: "not found", 410: "gone (the server says it was removed for good)",
            429: "too many requests (the server asks us to slow down)", 401: "needs a login",
            403: "forbidden"}.get(code)
    if text is None:
        text = "server error" if code >= 500 else (response.reason_phrase or "unexpected answer").lower()
    retry = response.headers.get("retry-after")
    return f"HTTP {code}: {text}" + (f" (retry after {retry})" if retry and code in (429, 503) else "")
