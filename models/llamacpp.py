"""In-process llama.cpp for ``.gguf`` models, through ``xllamacpp``.

Why xllamacpp: it ships prebuilt CPU wheels (no compiler; ``llama-cpp-python``
has no wheel for this platform and compiles llama.cpp from source), loads a
GGUF file as it is (no de-quantisation into torch weights: the bundled
SmolLM2 loads in under a second), and embeds llama.cpp's own server, so the
in-process path and a remote ``llama-server`` are the same code and protocol.

The model is served by in-process llama.cpp servers: requests go straight
to them as Python dicts (``handle_chat_completions``, which releases the GIL),
greedy, with the copy constraint as a GBNF grammar
(:func:`models.decoding.gbnf`). Each server also listens on 127.0.0.1 on a
free port, which it always does; it is locked with a random API key made at
start-up, and this class uses one such port only to count tokens
(``/tokenize``).

Workers: ``workers`` servers of one thread each (``SUMMARY_MAX_CONCURRENCY``,
3 by default: a 3-sentence summary's rewrites all at once), one request each
at a time. Each maps the same GGUF file read-only (the OS keeps one copy of
the weights) and adds its KV cache and scratch buffers (~75 MB for SmolLM2). A
summary's sentences are rewritten on the workers at once
(:class:`bot.engines.abstractive.AbstractiveSummarizer`), so a summary takes
about 60 % of the time of one worker when the other core is free (3 workers on
2 cores: the three rewrites end together rather than one after two), and two
members' requests share the cores as the OS schedules single-thread processes: no
multi-thread barrier that stalls when the other core is busy (why llama.cpp
runs with 1 thread per request here). Each request runs alone on its worker,
so its greedy output is the same as on one worker or on a 1-slot llama.cpp
server.
"""

from __future__ import annotations

import importlib.util
import logging
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from .chat import ChatGenerator, GenerationError
from .registry import DEFAULT_GENERATOR, ModelSpec, ModelUnavailable, resolve

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 1024  # one sentence and its rewrite, or a question and three sentences (cut to fit)


def available() -> bool:
    """Is xllamacpp installed (found without importing it)?"""
    try:
        return importlib.util.find_spec("xllamacpp") is not None
    except (ImportError, ValueError):
        return False


def cpu_features() -> str:
    """The CPU features llama.cpp's loaded backend uses (e.g. 'AVX2 FMA F16C'), or ''."""
    try:
        import xllamacpp

        info = xllamacpp.get_system_info()
    except Exception:  # noqa: BLE001
        return ""
    wanted = ("AVX512_BF16", "AVX512", "AVX_VNNI", "AVX2", "AVX", "FMA", "F16C", "AMX_INT8", "NEON")
    feats = []
    for part in info.replace("|", "\n").splitlines():
        key, _, val = part.partition("=")
        if key.strip() in wanted and val.strip() == "1":
            feats.append(key.strip())
    return " ".join(feats)


def server_params(
    path: str | Path,
    *,
    threads: int = 1,
    context_length: int = DEFAULT_CONTEXT,
    parallel: int = 1,
    api_key: str | None = None,
    speculative: bool = True,
):
    """xllamacpp server parameters as the bot runs them (the tests' and benchmarks' llama.cpp servers
    use the same): quiet, offline, no warm-up, ``threads`` for decoding and prompt alike, and
    prompt-lookup speculation (``ngram-simple``: drafts copied from the prompt, verified in one batch;
    greedy output unchanged, ~15-20 % faster generation of copy-heavy rewrites)."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(path)
    p.n_ctx = int(context_length) * max(1, int(parallel))
    p.n_parallel = max(1, int(parallel))
    p.cpuparams.n_threads = int(threads)
    p.cpuparams_batch.n_threads = int(threads)
    p.warmup = False
    p.verbosity = -1
    p.offline = True
    try:
        p.cache_ram_mib = 0  # no extra prompt cache in RAM (8 GiB by default): the slot's own KV cache is enough
    except AttributeError:
        pass
    if api_key:
        p.api_keys = [api_key]
    if speculative:
        try:
            p.speculative.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
            p.speculative.ngram_simple.size_n = 2
            p.speculative.ngram_simple.size_m = 8
            p.speculative.draft.n_max = 8
            p.speculative.draft.n_min = 0
        except AttributeError:  # another xllamacpp version: plain decoding
            log.info("llama.cpp: prompt-lookup speculation unavailable in this xllamacpp")
    return p


class LlamaCppGenerator(ChatGenerator):
    """A ``.gguf`` model on llama.cpp in this process. Greedy; thread-safe (llama.cpp queues requests)."""

    backend = "llama.cpp"
    grammar_field = "grammar"

    def __init__(
        self,
        model: str | ModelSpec = DEFAULT_GENERATOR,
        *,
        threads: int | None = None,
        context_length: int = DEFAULT_CONTEXT,
        parallel: int = 1,
        workers: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(model, ModelSpec):
            self.spec = model
        else:
            self.spec = resolve(model, "generator")
        if not self.spec.gguf_file:
            raise ModelUnavailable(f"generator {self.spec.name!r}: llama.cpp needs a .gguf file")
        path = Path(self.spec.path) / self.spec.gguf_file
        if not path.is_file():
            raise ModelUnavailable(f"generator {self.spec.name!r} is unavailable: GGUF file {path} does not exist")
        if not available():
            raise ModelUnavailable("llama.cpp is not installed (pip install xllamacpp)")
        import xllamacpp

        self.threads = max(1, int(threads or 1))
        self.context_length = int(context_length)
        self.workers = max(1, int(workers))
        self.concurrency = self.workers  # requests that run at once (the abstractive engine sends that many)
        self._key = secrets.token_urlsafe(24)  # the listening ports answer only to this process
        p = server_params(path, threads=self.threads, context_length=self.context_length, parallel=parallel,
                          api_key=self._key)
        t0 = time.perf_counter()
        servers: list = []
        try:
            for _ in range(self.workers):
                servers.append(xllamacpp.Server(p))
        except Exception as exc:  # noqa: BLE001
            stop_server(servers, 2.0)
            raise ModelUnavailable(
                f"generator {self.spec.name!r} is unavailable: llama.cpp could not load {path.name}: {exc}"
            ) from exc
        self.load_seconds = time.perf_counter() - t0
        self._servers = servers
        self._server = servers[0]
        self._free: queue.SimpleQueue = queue.SimpleQueue()  # idle workers
        for srv in servers:
            self._free.put(srv)
        self.loaded_from = "gguf (llama.cpp)"
        self.device = "cpu"
        self.cpu = cpu_features()
        self._address = str(self._server.listening_address)
        self._http = None
        self._http_lock = threading.Lock()
        log.info("generator %s loaded on llama.cpp in %.2fs (%d worker(s) of %d thread(s), CPU: %s)",
                 self.spec.name, self.load_seconds, self.workers, self.threads, self.cpu or "?")

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        workers = f"{self.workers} workers of " if self.workers > 1 else ""
        return (f"llama.cpp in-process (xllamacpp), {workers}{self.threads} thread(s), "
                f"CPU {self.cpu or 'unknown'}")

    def _chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self._server is None:
            raise GenerationError("llama.cpp is closed")
        srv = self._free.get()  # waits for an idle worker
        try:
            reply = srv.handle_chat_completions(payload)
        except Exception as exc:  # noqa: BLE001
            raise GenerationError(f"llama.cpp failed: {exc}") from exc
        finally:
            self._free.put(srv)
        if not isinstance(reply, dict):
            raise GenerationError("llama.cpp gave no reply")
        if "error" in reply and "choices" not in reply:
            err = reply["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise GenerationError(f"llama.cpp refused the request: {msg}")
        return reply

    # ------------------------------------------------------------------ tokens
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(base_url=self._address, timeout=10.0,
                                          headers={"Authorization": f"Bearer {self._key}"})
            client = self._http
        r = client.post(path, json=body)
        r.raise_for_status()
        return r.json()

    def _tokens(self, text: str) -> list[int]:
        return list(self._post("/tokenize", {"content": text, "add_special": False})["tokens"])

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens, no chat template)."""
        return len(self._tokens(text))

    def truncate_to_tokens(self, text: str, n: int) -> str:
        """A prefix of ``text`` of at most ``n`` tokens."""
        if n <= 0:
            return ""
        ids = self._tokens(text)
        if len(ids) <= n:
            return text
        return str(self._post("/detokenize", {"tokens": ids[:n]})["content"]).rstrip()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the in-process server. Its teardown waits for llama.cpp's own threads, which was once
        seen to hang in a long benchmark run: it runs on a daemon thread, waited for ``timeout`` s."""
        if self._http is not None:
            self._http.close()
            self._http = None
        holder = list(self._servers)
        self._servers = []
        self._server = None
        stop_server(holder, timeout)


def stop_server(holder: list, timeout: float = 5.0) -> bool:
    """Drop the xllamacpp server in ``holder`` (its last reference) on a daemon thread, waiting at
    most ``timeout`` s for llama.cpp's threads to stop; False if they did not (left to the exit)."""
    if not holder or holder[0] is None:
        return True
    done = threading.Event()

    def stop() -> None:
        holder.clear()  # the server shuts down here
        done.set()

    threading.Thread(target=stop, name="llamacpp-stop", daemon=True).start()
    if not done.wait(timeout):
        log.warning("llama.cpp server did not stop within %.0f s; left to the process exit", timeout)
        return False
    return True
