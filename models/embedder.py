"""Sentence embedder: ``encode(list[str]) -> (n, dim) float32``, L2-normalised.

Loads a sentence-transformers style folder (``1_Pooling/config.json`` tells the
pooling) with plain ``transformers``, local files only unless downloads are
allowed.

Throughput on a small CPU box comes from three choices, measured in
``benchmarks/build_speed.py``:

* batches bucketed by length, so short news sentences do not pay for the
  padding of long ones;
* bfloat16 weights where the CPU has native bf16 matrix instructions
  (AVX512-BF16 / AMX; checked at load; ONNX int8 elsewhere, below): same
  vectors to a cosine of 0.9998 or better;
* batches run side by side on ``workers`` threads, each with the intra-op
  threads torch was given (``MODEL_THREADS``, 1 by default): two single-thread
  matmuls keep two cores busier than one two-thread matmul on short inputs.

Two runtimes (``backend``): PyTorch, and ONNX Runtime (:mod:`models.onnx_embed`)
for the CPU - a graph exported once and cached under ``cache_dir``, optimised by
ONNX Runtime as it opens it; it needs neither bf16 nor transformers' modelling
code at load. What runs (:func:`pick_path`), on the CPU:

* ``precision="auto"``: PyTorch bfloat16 where the CPU has native bf16; ONNX
  int8 elsewhere (weight MatMuls quantised per channel, quantised once from the
  float32 graph and cached under its own name; about twice float32's sentences
  per CPU-second; mean cosine ~0.99 to float32, so its vectors get their own
  embedding cache);
* ``"float32"``: exact float32 (ONNX float32: cosine 0.9999 to torch float32,
  same embedding cache);
* ``"int8"``: ONNX int8; with ``backend="torch"``, PyTorch's dynamic int8 Linear
  layers instead (mean cosine ~0.94: its own cache too).

GPUs always run PyTorch; without onnxruntime or a cache folder, the CPU runs
PyTorch float32 for ``auto``. ``NO_BF16`` (:func:`models.runtime.disable_bf16`)
makes a bf16 CPU choose as one without bf16, to measure that path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .registry import ModelSpec, ModelUnavailable, resolve
from .runtime import cpu_has_bf16, pick_device, set_threads

log = logging.getLogger(__name__)


BACKENDS = ("auto", "torch", "onnx")
_BACKEND_ALIASES = {"pytorch": "torch", "ort": "onnx", "onnxruntime": "onnx"}
PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")
_PRECISION_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "qint8": "int8"}


BATCH_CHARS = 32 * 300  # a batch's texts times its longest text, in characters (~32 sentences of 75 tokens)


def _batches(order: np.ndarray, lengths: list[int], batch_size: int, budget: int) -> list[np.ndarray]:
    """Consecutive runs of ``order`` (longest first) of at most ``batch_size`` texts whose count times
    their longest length stays within ``budget`` characters (one text always fits)."""
    out: list[np.ndarray] = []
    i, n = 0, len(order)
    while i < n:
        longest = max(1, lengths[int(order[i])])
        size = max(1, min(batch_size, budget // longest))
        out.append(order[i : i + size])
        i += size
    return out


class Embedder:
    def __init__(
        self,
        model: str | ModelSpec = "minilm",
        *,
        device: str = "auto",
        threads: int | None = None,
        allow_download: bool = False,
        max_length: int = 256,
        precision: str = "auto",
        workers: int | None = None,
        backend: str = "auto",
        cache_dir: str | Path | None = None,
    ) -> None:
        self.spec = model if isinstance(model, ModelSpec) else resolve(model, "embedder")
        self.device = pick_device(device)
        self.backend, self.precision, why = pick_path(backend, precision, self.device, cache_dir)
        log.info("embedder %s: %s-%s (%s)", self.spec.name, self.backend, self.precision, why)
        self._onnx = None
        if self.backend == "onnx":
            from .onnx_embed import OnnxEncoder

            try:
                self._onnx = OnnxEncoder(
                    self.spec, Path(cache_dir) / "onnx", threads=threads or 1,
                    max_length=max_length, allow_download=allow_download, precision=self.precision,
                )
            except Exception as exc:  # noqa: BLE001 - export or runtime failure: the torch path still works
                log.warning("ONNX embedder unavailable (%s: %s); using torch", exc.__class__.__name__, exc)
                self.backend = "torch"
                self.precision = _pick_precision(precision, self.device)
        if self._onnx is not None:
            self.dim = self._onnx.dim
            self.max_length = self._onnx.max_length
            self.pooling = "in graph"
            threads_each = threads or 1
        else:
            self._load_torch(threads, allow_download, max_length)
            threads_each = self._torch.get_num_threads()
        if workers is None:
            workers = max(1, min(4, (os.cpu_count() or 1) // max(1, threads_each)))
        self.workers = 1 if self.device != "cpu" else max(1, int(workers))

    def _load_torch(self, threads: int | None, allow_download: bool, max_length: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        set_threads(threads)
        self._torch = torch
        local_only = not allow_download
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.spec.path, local_files_only=local_only)
            self.model = AutoModel.from_pretrained(self.spec.path, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported the same way
            raise ModelUnavailable(f"embedder {self.spec.name!r} failed to load: {exc}") from exc
        self.model.eval().to(self.device)
        if self.precision == "int8":
            self.model = _int8(self.model)
        elif self.precision != "float32":
            self.model = self.model.to(getattr(torch, self.precision))
        self._tok_lock = threading.Lock()  # the fast tokenizer's padding state is shared
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self.pooling = "mean"
        pool_cfg = Path(self.spec.path) / "1_Pooling" / "config.json"
        if pool_cfg.is_file():
            cfg = json.loads(pool_cfg.read_text())
            if cfg.get("pooling_mode_cls_token"):
                self.pooling = "cls"
        self.dim = int(self.model.config.hidden_size)

    @property
    def path(self) -> str:
        """Which runtime and numerics ran, for logs and benchmarks: ``onnx-float32``, ``torch-bfloat16``..."""
        return f"{self.backend}-{self.precision}"

    @property
    def quantized(self) -> bool:
        return self.precision == "int8"

    @property
    def name(self) -> str:
        """The embedding cache's key: vectors that differ (int8, each int8 recipe) get their own cache."""
        if self.precision != "int8":
            return self.spec.cache_key  # float32, bf16 and ONNX float32 agree to a cosine of 0.999
        if self.backend == "onnx":
            from .onnx_embed import QUANT_VERSION

            return f"{self.spec.cache_key}-onnx-int8-q{QUANT_VERSION}"
        return self.spec.cache_key + "-int8"

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Sort by length so each batch pads to similar lengths; long texts go in smaller batches
        # (attention scratch grows with batch x length^2: 32 texts of 256 tokens took ~100 MB a worker).
        lengths = [len(t) for t in texts]
        order = np.argsort(lengths, kind="stable")[::-1]
        batches = _batches(order, lengths, batch_size, BATCH_CHARS)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding sentences", unit="sent", file=None)

        def run(idx: np.ndarray) -> None:
            out[idx] = self._batch([texts[i] for i in idx])
            if bar is not None:
                bar.update(len(idx))

        try:
            if self.workers > 1 and len(batches) > 1:
                with ThreadPoolExecutor(self.workers, thread_name_prefix="embed") as pool:
                    for _ in pool.map(run, batches):
                        pass
            else:
                for idx in batches:
                    run(idx)
        finally:
            if bar is not None:
                bar.close()
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.run(texts)
        torch = self._torch
        with self._tok_lock:
            enc = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
        enc = enc.to(self.device)
        with torch.inference_mode():  # thread-local: entered in the worker that runs the batch
            hidden = self.model(**enc).last_hidden_state.float()
            if self.pooling == "cls":
                vec = hidden[:, 0]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vec = torch.nn.functional.normalize(vec, dim=-1)
            return vec.cpu().numpy()


def pick_path(
    backend: str, precision: str, device: str, cache_dir: str | Path | None
) -> tuple[str, str, str]:
    """``(backend, precision, why)``: which runtime and numerics the embedder uses.

    On the CPU with ``EMBED_PRECISION=auto``: PyTorch in bfloat16 where the CPU
    multiplies bf16 natively, ONNX Runtime in int8 elsewhere. ``float32`` is
    exact float32 (ONNX Runtime, or PyTorch with ``EMBED_BACKEND=torch``);
    ``int8`` is ONNX int8 (PyTorch's dynamic int8 with ``EMBED_BACKEND=torch``:
    vectors further off). GPUs always run PyTorch. Without onnxruntime or a
    cache folder for the graph, the CPU falls back to PyTorch, float32 for
    ``auto``.
    """
    from .onnx_embed import onnxruntime_available

    b = (backend or "auto").strip().lower()
    b = _BACKEND_ALIASES.get(b, b)
    if b not in BACKENDS:
        raise ModelUnavailable(f"unknown embedder backend {backend!r} ({', '.join(BACKENDS)})")
    p = _norm_precision(precision)
    if b == "torch":
        return "torch", _pick_precision(p, device), "EMBED_BACKEND=torch"
    if device != "cpu":
        if b == "onnx":
            log.warning("the ONNX embedder runs on the CPU only; using torch on %s", device)
        return "torch", _pick_precision(p, device), f"device {device}"
    if b == "auto" and p == "auto" and cpu_has_bf16():
        return "torch", "bfloat16", "native bf16 on this CPU"
    if b == "auto" and p in ("bfloat16", "float16"):
        return "torch", _pick_precision(p, device), f"EMBED_PRECISION={p}"
    fallback = _pick_precision(p, device)
    if cache_dir is None:
        if b == "onnx":
            log.warning("the ONNX embedder needs a cache folder for its graph; using torch")
        return "torch", fallback, "no cache folder for an ONNX graph"
    if not onnxruntime_available():
        log.warning("onnxruntime is not installed; the embedder uses torch (pip install onnxruntime)")
        return "torch", fallback, "onnxruntime missing"
    if p in ("bfloat16", "float16"):  # EMBED_BACKEND=onnx with a precision ONNX does not run
        log.warning("the ONNX embedder runs float32 or int8; EMBED_PRECISION=%s is read as float32", p)
        return "onnx", "float32", "EMBED_BACKEND=onnx"
    if p == "auto":
        return "onnx", "int8", "no native bf16 on this CPU" if b == "auto" else "EMBED_BACKEND=onnx"
    return "onnx", p, f"EMBED_PRECISION={p} on the CPU"


def _norm_precision(precision: str) -> str:
    p = (precision or "auto").strip().lower()
    p = _PRECISION_ALIASES.get(p, p)
    if p not in PRECISIONS:
        raise ModelUnavailable(f"unknown embedder precision {precision!r} ({', '.join(PRECISIONS)})")
    return p


def _pick_precision(precision: str, device: str) -> str:
    """The PyTorch path's precision. ``auto``: bfloat16 on a CPU with native bf16 matmul, float16 on CUDA, else float32."""
    p = _norm_precision(precision)
    on_cpu = device == "cpu"
    if p == "auto":
        if not on_cpu:
            return "float16" if device.startswith("cuda") else "float32"
        return "bfloat16" if cpu_has_bf16() else "float32"
    if p == "int8" and not on_cpu:
        log.warning("int8 embedder precision is CPU only; using float32 on %s", device)
        return "float32"
    if p == "float16" and on_cpu:
        log.warning("float16 is slow on CPU; using float32")
        return "float32"
    if p == "bfloat16" and on_cpu and not cpu_has_bf16():
        log.warning("this CPU has no native bfloat16 matmul; bfloat16 will be slow")
    return p


def _int8(model, per_channel: bool = False):
    """Dynamic int8 quantisation of the Linear layers (CPU only): one weight scale per layer, or one per
    output channel (``per_channel``: what the span reader takes; the embedder keeps per layer, as its
    cached vectors were made)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks the eager quantisation API as deprecated
        spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig} if per_channel \
            else {torch.nn.Linear}
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
