"""Text generator: ``generate(prompt) -> str`` with a local Hugging Face model.

Loads any generator :class:`~models.registry.ModelSpec`:

* encoder-decoder models (BART, T5, PEGASUS, ...) through
  ``AutoModelForSeq2SeqLM``;
* decoder-only (causal) instruct models through ``AutoModelForCausalLM``; the
  prompt goes through the tokenizer's chat template when it has one;
* ``.gguf`` checkpoints (the bundled SmolLM2 is one) through
  ``from_pretrained(folder, gguf_file=...)``, which needs ``gguf`` and
  ``accelerate``.

Which of the first two it is comes from the config (``is_encoder_decoder``).

De-quantising a GGUF file takes ~20 s on a small CPU, so when a ``cache_dir`` is
given the de-quantised model and its tokenizer are saved once, in plain Hugging
Face format (safetensors), under ``cache_dir/<spec.cache_key>/`` and later
starts load that folder instead (~2 s). The folder is written to a temporary
sibling and renamed into place only when complete, with a ``precis-cache.json``
marker written last; a folder without a valid marker, or one that fails to
load, is removed and rebuilt.

Every failure to find or load a model raises
:class:`~models.registry.ModelUnavailable` naming the model and the reason.

:class:`Generator` is the transformers backend. :func:`open_generator` picks the
backend for a ``SUMMARY_MODEL`` setting: a ``.gguf`` runs on llama.cpp in-process
(:mod:`models.llamacpp`, no de-quantisation) when xllamacpp is installed, an
``http(s)://.../v1`` URL on an OpenAI-compatible server
(:mod:`models.openai_backend`), anything else here. Every backend has
``generate_copy``: the copy constraint (:mod:`models.decoding`) in its own form.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from .registry import DEFAULT_GENERATOR, ModelSpec, ModelUnavailable, resolve
from .runtime import cpu_has_bf16, pick_device, set_threads

log = logging.getLogger(__name__)

CACHE_MARKER = "precis-cache.json"
CACHE_FORMAT = 1
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "sentencepiece.bpe.model")
# Encoder-decoder models with relative positions (T5) have no max_position_embeddings;
# 512 is what they were trained on.
SEQ2SEQ_FALLBACK_CONTEXT = 512
CAUSAL_FALLBACK_CONTEXT = 2048
_SANE_MAX_LENGTH = 1_000_000  # tokenizers without a limit report ~1e30
_STALE_TMP_SECONDS = 15 * 60


def _parse_dtype(dtype: Any, device: str):
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        # On a CPU with native bf16 matmul: half the memory and ~20 % faster greedy decoding.
        return torch.bfloat16 if device == "cpu" and cpu_has_bf16() else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
    }
    try:
        return names[str(dtype).strip().lower()]
    except KeyError:
        raise ModelUnavailable(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16)") from None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_protobuf() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("google.protobuf") is not None
    except ModuleNotFoundError:
        return False


class Generator:
    """A loaded text-generation model. Plain, synchronous, not thread-safe.

    ``generate`` is deterministic (greedy) unless ``do_sample=True``.
    """

    def __init__(
        self,
        model: str | ModelSpec = DEFAULT_GENERATOR,
        *,
        cache_dir: Path | str | None = None,
        device: str = "auto",
        threads: int | None = None,
        allow_download: bool = False,
        dtype: Any = None,
    ) -> None:
        import torch

        self._torch = torch
        if isinstance(model, ModelSpec):
            self.spec = model
        else:
            try:
                self.spec = resolve(model, "generator")
            except ModelUnavailable as exc:
                msg = str(exc)
                if str(model) not in msg:
                    msg = f"generator {model!r} is unavailable: {msg}"
                raise ModelUnavailable(msg) from exc
        set_threads(threads)
        self.device = pick_device(device)
        self.dtype = _parse_dtype(dtype, self.device)
        self.allow_download = allow_download
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.loaded_from: str = ""  # "gguf", "cache" or "pretrained": where the weights came from
        self.load_seconds: float = 0.0
        self.last_stats: dict[str, float] = {}

        t0 = time.perf_counter()
        try:
            self._load()
        except ModelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported the same way
            raise self._fail(f"failed to load: {_short(exc)}") from exc
        self.model.eval()
        try:
            if self.model.dtype != self.dtype:
                self.model.to(self.dtype)
            self.model.to(self.device)
        except Exception as exc:  # noqa: BLE001 - e.g. a device that does not exist
            raise self._fail(f"cannot move it to {self.device} / {self.dtype}: {_short(exc)}") from exc
        self.load_seconds = time.perf_counter() - t0
        self.is_seq2seq = bool(getattr(self.model.config, "is_encoder_decoder", False))
        tok = self.tokenizer
        if tok.pad_token_id is None and tok.eos_token_id is not None:
            tok.pad_token = tok.eos_token
        self.has_chat_template = (not self.is_seq2seq) and bool(getattr(tok, "chat_template", None))
        self.context_length = self._context_length()
        log.info(
            "generator %s loaded from %s in %.1fs (%s, %s, %s, context %d)",
            self.spec.name,
            self.loaded_from,
            self.load_seconds,
            "seq2seq" if self.is_seq2seq else "causal",
            self.device,
            str(self.dtype).removeprefix("torch."),
            self.context_length,
        )

    # ------------------------------------------------------------------ loading

    def _fail(self, reason: str) -> ModelUnavailable:
        return ModelUnavailable(f"generator {self.spec.name!r} is unavailable: {reason}")

    def _load(self) -> None:
        spec = self.spec
        if spec.source == "hub":
            self._load_pretrained(spec.path, local_only=not self.allow_download)
            self.loaded_from = "pretrained"
            return
        folder = Path(spec.path)
        if not folder.is_dir():
            raise self._fail(f"model folder {folder} does not exist")
        if spec.gguf_file:
            self._load_gguf(folder, spec.gguf_file)
            return
        if not (folder / "config.json").is_file():
            raise self._fail(f"{folder} has no config.json (not a Hugging Face model folder)")
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise self._fail(f"{folder} has no weights file ({', '.join(WEIGHT_FILES)})")
        self._load_pretrained(str(folder), local_only=True)
        self.loaded_from = "pretrained"

    def _load_pretrained(self, where: str, *, local_only: bool) -> None:
        """Load config, tokenizer and model from a Hugging Face folder or hub id."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        hub = self.spec.source == "hub" and where == self.spec.path
        try:
            config = AutoConfig.from_pretrained(where, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001
            if hub and local_only:
                raise self._fail(
                    f"not in the local Hugging Face cache and downloads are off ({_short(exc, 160)}); "
                    "allow downloads or fetch it first"
                ) from exc
            raise self._fail(f"config.json in {where} could not be read: {_short(exc)}") from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001
            hint = ""
            folder = Path(where)
            if (
                folder.is_dir()
                and not (folder / "tokenizer.json").is_file()
                and any(folder.glob("*.model"))
                and not _has_protobuf()
            ):
                hint = " (a sentencepiece-only tokenizer needs protobuf to convert: pip install protobuf)"
            raise self._fail(f"tokenizer could not be loaded: {_short(exc)}{hint}") from exc
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        try:
            model = auto.from_pretrained(where, config=config, local_files_only=local_only, dtype=self.dtype)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"weights could not be loaded (corrupt or incomplete?): {_short(exc)}") from exc
        self.tokenizer, self.model = tokenizer, model

    # GGUF --------------------------------------------------------------------

    def _load_gguf(self, folder: Path, gguf_file: str) -> None:
        src = folder / gguf_file
        if not src.is_file():
            raise self._fail(f"GGUF file {src} does not exist")
        cache = self.cache_dir / self.spec.cache_key if self.cache_dir else None
        fingerprint = self._fingerprint(src)
        if cache is not None and cache.exists():
            if self._cache_complete(cache, fingerprint):
                try:
                    self._load_pretrained(str(cache), local_only=True)
                    self.loaded_from = "cache"
                    return
                except ModelUnavailable as exc:
                    log.warning("generator cache %s is corrupt (%s); rebuilding it", cache, exc)
            else:
                log.warning("generator cache %s is incomplete or stale; rebuilding it", cache)
            shutil.rmtree(cache, ignore_errors=True)

        self._dequantise_gguf(folder, gguf_file)
        self.loaded_from = "gguf"
        if cache is not None:
            try:
                self._write_cache(cache, fingerprint)
            except Exception as exc:  # noqa: BLE001 - a failed cache only costs time next start
                log.warning("could not cache generator %s in %s: %s", self.spec.name, cache, _short(exc))

    def _dequantise_gguf(self, folder: Path, gguf_file: str) -> None:
        import importlib.util

        for pkg in ("gguf", "accelerate"):
            if importlib.util.find_spec(pkg) is None:
                raise self._fail(f"reading a .gguf file needs the {pkg!r} package (pip install {pkg})")
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, GgufConfig

        torch = self._torch
        log.info("de-quantising %s (first start only when a cache folder is set)", folder / gguf_file)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file, local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"tokenizer in {gguf_file} could not be read: {_short(exc)}") from exc
        try:
            # dequantize=True gives a plain dense model with no quantizer attached, so it can be
            # saved with save_pretrained. Always float32 here: the cache must not depend on dtype.
            qconf = GgufConfig(gguf_file=gguf_file, dequantize=True)
            kw = dict(gguf_file=gguf_file, local_files_only=True, quantization_config=qconf, dtype=torch.float32)
            try:
                model = AutoModelForCausalLM.from_pretrained(str(folder), **kw)
            except ValueError as exc:
                # An encoder-decoder architecture (T5 GGUFs exist) is not a causal LM.
                if "Unrecognized configuration class" not in str(exc):
                    raise
                model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), **kw)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"weights in {gguf_file} could not be loaded (corrupt or unsupported?): {_short(exc)}") from exc
        if getattr(model, "hf_quantizer", None) is not None:
            # Older loaders keep the quantizer even after de-quantising; the weights are dense.
            model.hf_quantizer.remove_quantization_config(model)
        self.tokenizer, self.model = tokenizer, model

    @staticmethod
    def _fingerprint(src: Path) -> dict[str, Any]:
        import transformers

        st = src.stat()
        return {
            "format": CACHE_FORMAT,
            "source": str(src.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "transformers": transformers.__version__.split(".")[0],  # major version only
        }

    @staticmethod
    def _cache_complete(cache: Path, fingerprint: dict[str, Any]) -> bool:
        try:
            marker = json.loads((cache / CACHE_MARKER).read_text())
        except (OSError, ValueError):
            return False
        if marker.get("fingerprint") != fingerprint:
            return False
        for name in marker.get("files", []):
            p = cache / name["name"]
            if not p.is_file() or p.stat().st_size != name["size"]:
                return False
        return (cache / "config.json").is_file() and any((cache / n).is_file() for n in WEIGHT_FILES)

    def _write_cache(self, cache: Path, fingerprint: dict[str, Any]) -> None:
        parent = cache.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp(parent, cache.name)
        tmp = parent / f".{cache.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        try:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            files = [{"name": p.name, "size": p.stat().st_size} for p in sorted(tmp.iterdir()) if p.is_file()]
            marker = {"model": self.spec.name, "fingerprint": fingerprint, "files": files}
            (tmp / CACHE_MARKER).write_text(json.dumps(marker, indent=1))
            if cache.exists():  # another process finished first, or a broken leftover
                if self._cache_complete(cache, fingerprint):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return
                shutil.rmtree(cache, ignore_errors=True)
            os.replace(tmp, cache)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("cached de-quantised %s in %s (%.1fs)", self.spec.name, cache, time.perf_counter() - t0)

    @staticmethod
    def _remove_stale_tmp(parent: Path, name: str) -> None:
        now = time.time()
        for p in parent.glob(f".{name}.tmp-*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        """The model as the user named it (bundled name, folder or hub id)."""
        return self.spec.name

    def _context_length(self) -> int:
        cfg = self.model.config
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        value = None
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
            v = getattr(text_cfg, attr, None)
            if isinstance(v, int) and v > 0:
                value = v
                break
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < _SANE_MAX_LENGTH:
            value = min(value, tok_max) if value else tok_max
        if not value:
            value = SEQ2SEQ_FALLBACK_CONTEXT if self.is_seq2seq else CAUSAL_FALLBACK_CONTEXT
        return int(value)

    # ------------------------------------------------------------------ tokens

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens, no chat template)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate_to_tokens(self, text: str, n: int) -> str:
        """The longest prefix of ``text`` that is at most ``n`` tokens (original characters kept)."""
        if n <= 0:
            return ""
        tok = self.tokenizer
        if getattr(tok, "is_fast", False):
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            if len(enc["input_ids"]) <= n:
                return text
            return text[: enc["offset_mapping"][n - 1][1]].rstrip()
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= n:
            return text
        return tok.decode(ids[:n], skip_special_tokens=True).rstrip()

    def _plain_prompt(self, prompt: str, system: str | None) -> str:
        return f"{system.strip()}\n\n{prompt}" if system and system.strip() else prompt

    def _render(self, prompt: str, system: str | None) -> str:
        """The text the model sees (chat template applied for causal models that have one)."""
        if not self.has_chat_template:
            return self._plain_prompt(prompt, system)
        messages = []
        if system and system.strip():
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _fit_prompt(self, prompt: str, system: str | None, max_new_tokens: int) -> str:
        """Cut the user prompt (never the system text or template) so input + output fit the context."""
        budget = self.context_length - (0 if self.is_seq2seq else max_new_tokens)
        overhead = self.count_tokens(self._render("", system)) + 2
        room = budget - overhead
        if self.count_tokens(prompt) <= room:
            return prompt
        log.warning("prompt too long for %s (%d tokens of context); truncating it", self.name, self.context_length)
        return self.truncate_to_tokens(prompt, max(room, 1))

    # ------------------------------------------------------------------ generation

    def _generation_config(self, **kw: Any):
        gc = copy.deepcopy(self.model.generation_config)
        gc.max_length = None
        gc.min_length = None
        gc.max_new_tokens = kw["max_new_tokens"]
        gc.min_new_tokens = kw["min_new_tokens"] or None
        gc.num_beams = kw["num_beams"]
        gc.no_repeat_ngram_size = kw["no_repeat_ngram_size"] or None
        gc.repetition_penalty = kw["repetition_penalty"]
        gc.do_sample = kw["do_sample"]
        if not gc.do_sample:
            gc.temperature = gc.top_k = gc.top_p = None
        if gc.num_beams == 1:
            gc.early_stopping = False
            gc.length_penalty = None
        if gc.pad_token_id is None:
            gc.pad_token_id = self.tokenizer.pad_token_id
        if gc.eos_token_id is None and self.tokenizer.eos_token_id is not None:
            gc.eos_token_id = self.tokenizer.eos_token_id
        return gc

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        max_new_tokens: int = 96,
        min_new_tokens: int = 0,
        num_beams: int = 1,
        no_repeat_ngram_size: int = 0,
        repetition_penalty: float = 1.0,
        do_sample: bool = False,
    ) -> str:
        """Generate a reply to ``prompt``; greedy (deterministic) by default.

        Causal models with a chat template see ``[system?, user]`` messages with the
        assistant prompt appended; others (and seq2seq models) see ``system\\n\\nprompt``.
        Only the new tokens are decoded. Over-long prompts are cut to fit the context.
        """
        return self.generate_batch(
            [prompt],
            system=system,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            num_beams=num_beams,
            no_repeat_ngram_size=no_repeat_ngram_size,
            repetition_penalty=repetition_penalty,
            do_sample=do_sample,
        )[0]

    def generate_batch(
        self,
        prompts: list[str],
        *,
        system: str | None = None,
        max_new_tokens: int = 96,
        min_new_tokens: int = 0,
        num_beams: int = 1,
        no_repeat_ngram_size: int = 0,
        repetition_penalty: float = 1.0,
        do_sample: bool = False,
    ) -> list[str]:
        """Like :meth:`generate` for several prompts in one padded batch.

        Batched greedy output can differ in rare cases from one-at-a-time output
        (padding changes the floating-point sums).
        """
        if not prompts:
            return []
        torch = self._torch
        max_new_tokens = max(1, int(max_new_tokens))
        min_new_tokens = max(0, min(int(min_new_tokens), max_new_tokens))
        gc = self._generation_config(
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            num_beams=max(1, int(num_beams)),
            no_repeat_ngram_size=max(0, int(no_repeat_ngram_size)),
            repetition_penalty=float(repetition_penalty),
            do_sample=bool(do_sample),
        )
        tok = self.tokenizer
        texts = [self._render(self._fit_prompt(p, system, max_new_tokens), system) for p in prompts]
        # A chat template already carries the special tokens it wants (e.g. BOS).
        add_special = not self.has_chat_template
        old_sides = tok.padding_side, tok.truncation_side
        if not self.is_seq2seq:
            # Decoder-only models continue from the right edge: pad and cut on the left.
            tok.padding_side = tok.truncation_side = "left"
        try:
            enc = tok(
                texts,
                return_tensors="pt",
                padding=len(texts) > 1,
                truncation=True,
                max_length=self.context_length,
                add_special_tokens=add_special,
            )
        finally:
            tok.padding_side, tok.truncation_side = old_sides
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**enc, generation_config=gc)
        seconds = time.perf_counter() - t0
        if not self.is_seq2seq:
            out = out[:, enc["input_ids"].shape[1] :]
        new_tokens = self._count_new(out, gc)
        self.last_stats = {
            "prompt_tokens": float(enc["input_ids"].shape[1]),
            "new_tokens": float(new_tokens),
            "seconds": seconds,
            "tokens_per_s": new_tokens / seconds if seconds > 0 else 0.0,
        }
        return [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]

    # ------------------------------------------------------------------ copy-constrained

    backend = "transformers"
    constraint = "logits processor"  # how this backend takes the copy constraint (models/decoding.py)

    def generate_copy(
        self,
        prompt: str,
        support: str,
        *,
        strict: bool = False,
        max_new_tokens: int = 80,
        target_tokens: int = 20,
        end_bonus: float = 0.15,
        skip_bonus: float = 0.0,
        lookup_tokens: int = 10,
        span: bool = False,
        system: str | None = None,
    ) -> str:
        """A greedy reply to ``prompt`` that is a compression of ``support`` the copy constraint allows
        (:class:`models.decoding.CopyConstraint`, as a logits processor; ``span``: one unbroken run of its
        words); '' when none fits."""
        from .decoding import transformers_copy_generate

        t0 = time.perf_counter()
        text, n_new = transformers_copy_generate(
            self, prompt, support, strict=strict, max_new_tokens=max_new_tokens, target_tokens=target_tokens,
            end_bonus=end_bonus, skip_bonus=skip_bonus, lookup_tokens=lookup_tokens, span=span, system=system,
        )
        seconds = time.perf_counter() - t0
        self.last_stats = {"new_tokens": float(n_new), "seconds": seconds,
                           "tokens_per_s": n_new / seconds if seconds > 0 else 0.0}
        return text

    def describe(self) -> str:
        """One line for /about: backend, device and number format."""
        return f"transformers, {self.device}, {str(self.dtype).removeprefix('torch.')}, loaded from {self.loaded_from}"

    def _count_new(self, out, gc) -> int:
        """Generated tokens in the first row: no decoder start token, no trailing padding."""
        row = out[0].tolist()
        if self.is_seq2seq and row:
            row = row[1:]  # generate() puts the decoder start token first
        pad = gc.pad_token_id
        eos = gc.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        n = len(row)
        while n and row[n - 1] == pad:
            n -= 1
        if n < len(row) and pad in eos_ids:
            n += 1  # the first of them was the real end-of-sequence token
        return n


# --------------------------------------------------------------------------- backends

BACKENDS = ("auto", "transformers", "llamacpp", "openai")


def pick_backend(model: str | ModelSpec, backend: str = "auto") -> str:
    """Which backend serves ``model``: a server URL -> openai; a .gguf with xllamacpp installed ->
    llamacpp; else transformers. An explicit ``backend`` other than auto is used as given."""
    from .llamacpp import available
    from .openai_backend import is_server_url

    backend = (backend or "auto").strip().lower().replace(".", "").replace("-", "")
    if backend not in BACKENDS:
        raise ModelUnavailable(f"unknown generator backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if isinstance(model, str) and is_server_url(model):
        return "openai"
    try:
        spec = model if isinstance(model, ModelSpec) else resolve(model, "generator")
    except ModelUnavailable:
        return "transformers"  # whose loader reports it, worded as ever
    if spec.gguf_file and available():
        return "llamacpp"
    return "transformers"


def open_generator(
    model: str | ModelSpec = DEFAULT_GENERATOR,
    *,
    backend: str = "auto",
    cache_dir: Path | str | None = None,
    device: str = "auto",
    threads: int | None = None,
    allow_download: bool = False,
    dtype: Any = None,
    model_name: str = "",
    api_key: str | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_concurrency: int = 3,
    retries: int = 3,
):
    """The generator for a SUMMARY_MODEL setting, on the backend :func:`pick_backend` chooses:
    :class:`Generator` (transformers), :class:`models.llamacpp.LlamaCppGenerator` or
    :class:`models.openai_backend.OpenAIGenerator`. All have ``generate``, ``generate_batch``,
    ``generate_copy`` (the copy constraint, each in its own form) and ``describe``."""
    kind = pick_backend(model, backend)
    if kind == "openai":
        from .openai_backend import OpenAIGenerator

        if isinstance(model, ModelSpec):
            raise ModelUnavailable("the openai backend needs a server URL (http://host:port/v1)")
        return OpenAIGenerator(
            model, model_name=model_name, api_key=api_key, connect_timeout=connect_timeout,
            read_timeout=read_timeout, max_concurrency=max_concurrency, retries=retries,
        )
    if kind == "llamacpp":
        from .llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(model, threads=threads, workers=max_concurrency)
    return Generator(model, cache_dir=cache_dir, device=device, threads=threads,
                     allow_download=allow_download, dtype=dtype)
