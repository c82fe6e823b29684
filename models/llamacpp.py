"""In-process llama.cpp for ``.gguf`` models, through ``xllamacpp``.

Why xllamacpp: it ships prebuilt CPU wheels (no compiler; ``llama-cpp-python``
has no wheel for this platform and compiles llama.cpp from source), loads a
GGUF file as it is (no de-quantisation into torch weights: the bundled
SmolLM2 loads in under a second), and embeds llama.cpp's own server, so the
in-process path and a remote ``llama-server`` are the same code and protocol.

The model is served by an in-process llama.cpp server: requests go straight
to it as Python dicts (``handle_chat_completions``), greedy, with the copy
constraint as a GBNF grammar (:func:`models.decoding.gbnf`). The same server
also listens on 127.0.0.1 on a free port, which it always does; it is locked
with a random API key made at start-up, and this class uses that port only
to count tokens (``/tokenize``).
"""

from __future__ import annotations

import importlib.util
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from .chat import ChatGenerator, GenerationError
from .registry import DEFAULT_GENERATOR, ModelSpec, ModelUnavailable, resolve

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 2048  # one sentence and its rewrite, or a question and three sentences


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
        self._key = secrets.token_urlsafe(24)  # the listening port answers only to this process
        p = server_params(path, threads=self.threads, context_length=self.context_length, parallel=parallel,
                          api_key=self._key)
        t0 = time.perf_counter()
        try:
            self._server = xllamacpp.Server(p)
        except Exception as exc:  # noqa: BLE001
            raise ModelUnavailable(
                f"generator {self.spec.name!r} is unavailable: llama.cpp could not load {path.name}: {exc}"
            ) from exc
        self.load_seconds = time.perf_counter() - t0
        self.loaded_from = "gguf (llama.cpp)"
        self.device = "cpu"
        self.cpu = cpu_features()
        self._address = str(self._server.listening_address)
        self._http = None
        self._http_lock = threading.Lock()
        log.info("generator %s loaded on llama.cpp in %.2fs (%d thread(s), CPU: %s)",
                 self.spec.name, self.load_seconds, self.threads, self.cpu or "?")

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        return f"llama.cpp in-process (xllamacpp), {self.threads} thread(s), CPU {self.cpu or 'unknown'}"

    def _chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = self._server.handle_chat_completions(payload)
        except Exception as exc:  # noqa: BLE001
            raise GenerationError(f"llama.cpp failed: {exc}") from exc
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
        holder = [self._server]
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
