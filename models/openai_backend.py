"""An OpenAI-compatible HTTP server as the generator: Ollama, llama.cpp's ``llama-server``, vLLM ...

``SUMMARY_MODEL=http://host:8080/v1`` (an ``http://`` or ``https://`` URL ending in
``/v1``); ``SUMMARY_MODEL_NAME`` names the served model where the server needs
one; ``SUMMARY_API_KEY`` is sent as a bearer token (never logged, never shown).

What is sent, and only to that URL: ``POST {url}/chat/completions`` with the
prompt (one article sentence and the instruction to shorten it, or for /ask the
question and its supporting sentences), the model name, greedy settings and,
where the server takes one, the copy constraint as a GBNF grammar. On first use
it asks the same server what it is (``GET {root}/props``, which only llama.cpp's
server answers, then ``GET {url}/models``) to know whether it takes a grammar:

* llama.cpp server: ``grammar`` (GBNF): decoding is constrained;
* vLLM: ``guided_grammar`` (its grammar backend reads GBNF): constrained;
* anything else (Ollama takes only a JSON schema): no grammar is sent.

Every reply is then checked word by word (:func:`models.decoding.satisfies`)
and one that breaks the constraint is not used (its line shows the article's
own sentence), whatever the server claims to support.

Robustness: connect and read timeouts and an overall deadline per request (a
server that trickles its body is cut off), at most ``max_concurrency``
requests at once, retries with exponential back-off on connection errors,
429 (honouring ``Retry-After``, capped) and 5xx; replies over 1 MiB or not
JSON are refused. Failures raise :class:`models.chat.GenerationError` with a
message a user can read; the last outcome is kept for /about.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from .chat import ChatGenerator, GenerationError
from .registry import ModelUnavailable

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 1 << 20
PROBE_RETRY_SECONDS = 60.0  # an unreachable server is asked what it is at most this often


def is_server_url(setting: str | None) -> bool:
    """Does a SUMMARY_MODEL setting name an OpenAI-compatible server (http(s)://.../v1)?"""
    s = (setting or "").strip().lower()
    return s.startswith(("http://", "https://"))


def _check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelUnavailable(f"{url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise ModelUnavailable("put the server's key in SUMMARY_API_KEY, not in the URL")
    if not parts.path.endswith("/v1"):
        raise ModelUnavailable(f"the server URL must end in /v1 (e.g. http://localhost:8080/v1), not {url!r}")
    return url


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - time.time()
    return max(0.0, min(secs, cap))


class OpenAIGenerator(ChatGenerator):
    """A model behind an OpenAI-compatible ``/v1/chat/completions``. Thread-safe."""

    backend = "openai"

    def __init__(
        self,
        url: str,
        *,
        model_name: str = "",
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_concurrency: int = 3,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        grammar: str = "auto",
    ) -> None:
        super().__init__()
        import httpx

        self.url = _check_url(url)
        self.model_name = (model_name or "").strip()
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_wait = float(max_wait)
        self.concurrency = max(1, int(max_concurrency))
        self._slots = threading.BoundedSemaphore(self.concurrency)
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
            headers=headers,
            follow_redirects=False,  # the article text goes to the configured URL and nowhere else
            trust_env=False,  # ... not to a proxy named in the environment either
        )
        if grammar not in ("auto", "grammar", "guided_grammar", "none"):
            raise ModelUnavailable(f"unknown grammar mode {grammar!r} (auto, grammar, guided_grammar or none)")
        self._grammar_mode = grammar
        self._probed = grammar != "auto"
        self.grammar_field = None if grammar in ("auto", "none") else grammar
        self.server_kind = "" if grammar == "auto" else grammar
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._probe_lock = threading.Lock()
        self._probe_failed_at = -PROBE_RETRY_SECONDS

    # ------------------------------------------------------------------ describe
    @property
    def name(self) -> str:
        return f"the summary server at {self.url}"

    def describe(self) -> str:
        model = f", model {self.model_name}" if self.model_name else ""
        kind = f" ({self.server_kind})" if self.server_kind and self.server_kind != "none" else ""
        state = "not asked yet"
        if self.last_error_at and (self.last_ok is None or self.last_error_at >= self.last_ok):
            state = f"UNREACHABLE or failing: {self.last_error} ({time.strftime('%H:%M:%S', time.gmtime(self.last_error_at))} UTC)"
        elif self.last_ok:
            state = f"answering (last reply {time.strftime('%H:%M:%S', time.gmtime(self.last_ok))} UTC)"
        how = self.constraint if self._probed else "constraint form decided on first use"
        return f"OpenAI-compatible server {self.url}{kind}{model}; copy constraint: {how}; {state}"

    # ------------------------------------------------------------------ HTTP
    def _fail(self, message: str) -> GenerationError:
        self.last_error, self.last_error_at = message, time.time()
        log.warning("summary server: %s", message)
        return GenerationError(message)

    def _read(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, dict[str, str], bytes]:
        """One request, its body read within the overall deadline (a trickled body is cut off)."""
        import httpx

        deadline = time.monotonic() + self.connect_timeout + self.read_timeout
        with self._client.stream(method, url, json=body) as r:
            chunks: list[bytes] = []
            size = 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise GenerationError(f"{self.name} sent a reply over {MAX_REPLY_BYTES} bytes")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the reply did not finish in time")
            return r.status_code, dict(r.headers), b"".join(chunks)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        url = self.url + path
        attempt = 0
        while True:
            wait: float | None = None
            try:
                with self._slots:
                    status, headers, raw = self._read(method, url, body)
            except httpx.TimeoutException:
                problem = f"{self.name} did not answer within {self.read_timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"{self.name} is unreachable ({type(exc).__name__}: {exc})"
            else:
                if status == 200:
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        raise self._fail(f"{self.name} sent a malformed reply (not JSON)") from None
                    if not isinstance(data, dict):
                        raise self._fail(f"{self.name} sent a malformed reply (not a JSON object)")
                    self.last_ok = time.time()
                    return data
                if status == 429 or status >= 500:
                    problem = f"{self.name} answered HTTP {status}"
                    if status == 429:
                        problem += " (too many requests)"
                        wait = _retry_after(headers.get("retry-after"), float("inf"))
                        if wait is not None and wait > self.max_wait:  # not worth holding the reply for
                            raise self._fail(f"{problem}; it asks to wait {wait:.0f} s")
                elif status in (401, 403):
                    raise self._fail(f"{self.name} refused the key (HTTP {status}): check SUMMARY_API_KEY")
                elif status == 404:
                    raise self._fail(
                        f"{self.name} has no {path} (HTTP 404): check the URL and SUMMARY_MODEL_NAME"
                    )
                else:
                    raise self._fail(f"{self.name} refused the request (HTTP {status})")
            if attempt >= self.retries:
                suffix = f" after {attempt + 1} tries" if attempt else ""
                raise self._fail(problem + suffix)
            delay = wait if wait is not None else min(self.max_wait, self.backoff * (2**attempt))
            attempt += 1
            log.info("summary server: %s; retry %d in %.1fs", problem, attempt, delay)
            time.sleep(delay)

    def _probe(self) -> None:
        """Which grammar field (if any) this server takes; asked once, of the same server."""
        with self._probe_lock:
            if self._probed or time.monotonic() - self._probe_failed_at < PROBE_RETRY_SECONDS:
                return
            root = self.url[: -len("/v1")]
            field, kind = None, "unknown server, no grammar"
            answered = False  # an unreachable server is asked again next time
            try:
                st, _, raw = self._read("GET", root + "/props", None)
                answered = True
                if st == 200 and "default_generation_settings" in json.loads(raw):
                    field, kind = "grammar", "llama.cpp server"
            except Exception:  # noqa: BLE001 - any failure: not llama.cpp
                pass
            if field is None:
                try:
                    st, _, raw = self._read("GET", self.url + "/models", None)
                    answered = True
                    models = json.loads(raw).get("data", []) if st == 200 else []
                    if any(isinstance(m, dict) and m.get("owned_by") == "vllm" for m in models):
                        field, kind = "guided_grammar", "vLLM"
                except Exception:  # noqa: BLE001
                    pass
            self.grammar_field, self.server_kind, self._probed = field, kind, answered
            if not answered:
                self._probe_failed_at = time.monotonic()  # not asked again at once: each try costs a timeout
            log.info("summary server %s: %s", self.url, kind)

    def _chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.model_name:
            payload = {**payload, "model": self.model_name}
        return self._request("POST", "/chat/completions", payload)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: the server's own count where it offers one (llama.cpp's ``/tokenize``,
        so the token budget is the in-process one), else an estimate from the words."""
        if not self._probed:
            self._probe()
        if self.server_kind == "llama.cpp server":
            try:
                st, _, raw = self._read("POST", self.url[: -len("/v1")] + "/tokenize",
                                        {"content": text, "add_special": False})
                if st == 200:
                    return len(json.loads(raw)["tokens"])
            except Exception:  # noqa: BLE001 - an estimate will do
                pass
        return int(1.6 * len(text.split()))

    def generate_copy(self, prompt: str, support: str, **kw: Any) -> str:
        if not self._probed:
            self._probe()
        return super().generate_copy(prompt, support, **kw)

    def close(self) -> None:
        self._client.close()
