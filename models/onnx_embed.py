"""The embedder's ONNX Runtime path: float32 and int8 on CPUs without native bf16.

The bundled MiniLM (or any BERT-style sentence-transformers folder) is exported
once with ``torch.onnx.export`` - mean pooling and L2 normalisation included in
the graph - and cached as one ``.onnx`` file; ONNX Runtime applies its full
graph optimisations (``ORT_ENABLE_ALL``: constant folding, GELU / LayerNorm /
MatMul+Add fusions) when it opens it. Its offline transformer optimizer (fused
Attention ops) was tried and dropped: 6% fewer sentences per CPU-second on
short news sentences. Later loads read only the graph plus ``tokenizer.json``
(the ``tokenizers`` library): no transformers modelling code is imported, which
is most of what a cold start used to pay for.

The cached graph's name carries everything that can change it: the model (its
name, config and weight files' sizes and times), the torch exporter, onnx and
onnxruntime versions, and :data:`EXPORT_VERSION` (bump it when the export code
changes). It is written to a temporary name and renamed into place, so a
crash leaves no half-written graph; a graph that will not load is moved aside
and exported again.

int8 (:func:`quantize`, :data:`QUANT_RECIPE`): the float32 graph is quantised
once with ONNX Runtime's dynamic quantisation and cached beside it; its name
carries the float32 graph's name, the recipe, :data:`QUANT_VERSION` and the
onnxruntime version (the quantizer ships with it). A corrupt int8 graph is moved
aside and both graphs are built again.

:class:`OnnxGraph` (the cache, the export, the int8 graph and the rebuild) is
shared with the span reader's ONNX path (:mod:`models.onnx_span`), which exports
its own graph under its own export version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from .registry import ModelSpec, ModelUnavailable

log = logging.getLogger(__name__)

EXPORT_VERSION = "2"  # bump when export() changes (1: with ORT's transformer fusion, dropped)
OPSET = 17
# The int8 recipe (bump QUANT_VERSION when it changes: it names the graph and the int8 embedding cache):
# ONNX Runtime's dynamic quantisation of the weight MatMuls (Q/K/V, attention output, both FFN layers:
# int8 weights per output channel, uint8 activations quantised per batch at run time) and of the
# embedding tables' Gather (int8, one scale per table, dequantised after the lookup). LayerNorm, softmax
# and pooling stay float32. Version 2 added the Gather: the word-piece table (30,522 x 384) was most of
# each int8 graph (47 of 59 MB) and of what its session holds; quantised, each session holds ~30 MB
# less, with vectors as close to float32 as before (mean cosine 0.9923 against 0.9926, 238 RealTime QA
# questions) and the span reader's spans as often right (443 of 589 against 442). docs/benchmarks.md.
QUANT_VERSION = "2"
QUANT_RECIPE = {"op_types_to_quantize": ["MatMul", "Gather"], "per_channel": True, "reduce_range": False}
PRECISIONS = ("float32", "int8")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def graph_path(spec: ModelSpec, folder: Path, version: str | None = None) -> Path:
    """Where the exported graph of ``spec`` lives under ``folder`` (the name is its cache key).
    ``version``: the export code's version (:data:`EXPORT_VERSION`, the embedder's, by default)."""
    import onnxruntime

    model_dir = Path(spec.path)
    ident = [spec.cache_key, version or EXPORT_VERSION, f"opset{OPSET}"]
    for name in ("config.json", "tokenizer.json", "1_Pooling/config.json"):
        p = model_dir / name
        ident.append(p.read_text(encoding="utf-8") if p.is_file() else "-")
    for p in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        st = p.stat()
        ident.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    ident += [f"torch {_version('torch')}", f"onnx {_version('onnx')}", f"ort {onnxruntime.__version__}"]
    digest = hashlib.sha1("\n".join(ident).encode("utf-8")).hexdigest()[:16]
    return Path(folder) / f"{spec.cache_key}-{digest}.onnx"


def quantized_path(spec: ModelSpec, folder: Path, version: str | None = None) -> Path:
    """Where the int8 graph of ``spec`` lives: keyed by its float32 graph, the recipe and the quantizer."""
    import onnxruntime

    src = graph_path(spec, folder, version)
    ident = [src.name, QUANT_VERSION, json.dumps(QUANT_RECIPE, sort_keys=True), f"ort {onnxruntime.__version__}"]
    digest = hashlib.sha1("\n".join(ident).encode("utf-8")).hexdigest()[:16]
    return Path(folder) / f"{spec.cache_key}-int8-{digest}.onnx"


def quantize(src: Path, dest: Path) -> dict:
    """Write the int8 version of the float32 graph ``src`` to ``dest`` (atomically)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.perf_counter()
    dest = Path(dest)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}-{threading.get_ident()}.onnx")
    try:
        qlog = logging.getLogger()  # the quantizer logs a pre-processing hint on the root logger
        level = qlog.level
        qlog.setLevel(max(level, logging.ERROR))
        try:
            quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, **QUANT_RECIPE)
        finally:
            qlog.setLevel(level)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    log.info("quantised %s to int8 (%s) in %.1fs", src.name, dest.name, seconds)
    return {"seconds": seconds}


def _pooling(spec: ModelSpec) -> str:
    cfg = Path(spec.path) / "1_Pooling" / "config.json"
    if cfg.is_file() and json.loads(cfg.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def write_graph(module, dest: Path, outputs: dict[str, dict[int, str]]) -> None:
    """Trace ``module(input_ids, attention_mask, token_type_ids)`` into an ONNX graph at ``dest``
    (atomically); ``outputs``: each output's name and dynamic axes, in the order ``module`` returns them."""
    import torch

    # A padded example: the trace must keep the attention mask (an all-ones mask may be dropped).
    ids = torch.full((2, 16), 101, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about constant Python values in HF code
            torch.onnx.export(
                module,
                (ids, mask, torch.zeros_like(ids)),
                str(tmp),
                input_names=list(INPUTS),
                output_names=list(outputs),
                dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in INPUTS}, **outputs},
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(tmp, dest)  # atomic: readers see the old file or the whole new one
    finally:
        tmp.unlink(missing_ok=True)


def export(spec: ModelSpec, dest: Path, *, allow_download: bool = False) -> dict:
    """Export ``spec`` to ``dest`` (atomically). Imports torch + transformers: first run only."""
    import torch
    from transformers import AutoModel

    t0 = time.perf_counter()
    model = AutoModel.from_pretrained(
        spec.path, local_files_only=not allow_download, attn_implementation="eager"
    ).eval()
    pooling = _pooling(spec)

    class Pooled(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if pooling == "cls":
                vec = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(vec, dim=-1)

    dest = Path(dest)
    write_graph(Pooled(model), dest, {"embedding": {0: "batch"}})
    seconds = time.perf_counter() - t0
    log.info("exported %s to ONNX (%s) in %.1fs", spec.name, dest.name, seconds)
    return {"seconds": seconds}


def token_arrays(encs) -> dict[str, np.ndarray]:
    """The graph inputs (:data:`INPUTS`, int64) of a batch of ``tokenizers`` encodings padded to one length."""
    return {
        "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
    }


class OnnxGraph:
    """An ONNX Runtime session on a graph exported from ``spec`` and cached under ``cache_dir``.

    The float32 graph is exported (:meth:`export_graph`) when it is missing, and quantised
    (:func:`quantize`) when ``precision="int8"`` and the int8 graph is missing; a cached graph
    that will not load is moved aside and built again. Subclasses say how to export
    (:meth:`export_graph`) and, where it is not the embedder's, name their export code
    (:attr:`export_version`: it keys the cache)."""

    what = "ONNX model"  # for messages: "the ONNX embedder runs float32 or int8, ..."
    export_version: str | None = None  # the export code's version, in the graph's name (None: EXPORT_VERSION)

    def __init__(
        self,
        spec: ModelSpec,
        cache_dir: Path,
        *,
        threads: int = 1,
        allow_download: bool = False,
        precision: str = "float32",
    ) -> None:
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ModelUnavailable(f"the ONNX {self.what} runs {' or '.join(PRECISIONS)}, not {precision!r}")
        self.precision = precision
        self._spec, self._allow_download = spec, allow_download
        self.float_path = graph_path(spec, cache_dir, self.export_version)
        self.path = quantized_path(spec, cache_dir, self.export_version) if precision == "int8" else self.float_path
        self.exported = False  # the float32 graph was exported by this load
        self.int8_built = False  # the int8 graph was written by this load
        self.rebuilt = False
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self._ort = ort
        self._opts = opts
        try:
            if not self.path.is_file():
                self._build()  # int8: quantising a torn float32 graph fails here, and is handled alike
            self.session = self._session()
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types for a bad file
            broken = self.path if self.path.is_file() else self.float_path
            if not broken.is_file():
                raise  # nothing cached to blame: the export itself failed
            aside = broken.with_name(f"{broken.name}.corrupt-{int(time.time())}")
            log.warning("cached ONNX graph %s will not load (%s); moved to %s and building it again",
                        broken.name, str(exc).splitlines()[0][:200], aside.name)
            broken.replace(aside)
            if self.precision == "int8":
                self.float_path.unlink(missing_ok=True)  # the source may be what is torn: export it afresh
            self._build()
            self.rebuilt = True
            self.session = self._session()
        self._inputs = {i.name for i in self.session.get_inputs()}

    def export_graph(self, dest: Path) -> None:
        """Write the float32 graph to ``dest`` (atomically)."""
        raise NotImplementedError

    def _build(self) -> None:
        """Export the float32 graph if it is missing, then quantise it when int8 is asked for."""
        if not self.float_path.is_file():
            self.export_graph(self.float_path)
            self.exported = True
        if self.precision == "int8":
            quantize(self.float_path, self.path)
            self.int8_built = True

    def _session(self):
        return self._ort.InferenceSession(str(self.path), self._opts, providers=["CPUExecutionProvider"])

    def outputs(self, feed: dict[str, np.ndarray], names: list[str] | None = None) -> list[np.ndarray]:
        """The graph's outputs (``names``, or all in order) for ``feed`` (:func:`token_arrays`; an input
        the graph does not take is left out)."""
        return self.session.run(names, {k: v for k, v in feed.items() if k in self._inputs})


class OnnxEncoder(OnnxGraph):
    """Tokenizer (``tokenizers``) + an ONNX Runtime session that returns normalised vectors.

    ``run`` is safe to call from several threads at once: each call runs on its
    caller's thread with ``threads`` intra-op threads.
    """

    what = "embedder"

    def __init__(
        self,
        spec: ModelSpec,
        cache_dir: Path,
        *,
        threads: int = 1,
        max_length: int = 256,
        allow_download: bool = False,
        precision: str = "float32",
    ) -> None:
        from tokenizers import Tokenizer

        tok_file = Path(spec.path) / "tokenizer.json"
        if not tok_file.is_file():
            raise ModelUnavailable(f"{spec.name}: no tokenizer.json for the ONNX path")
        self.tokenizer = Tokenizer.from_file(str(tok_file))
        cfg = json.loads((Path(spec.path) / "config.json").read_text())
        limit = int(cfg.get("max_position_embeddings") or max_length)
        self.max_length = min(max_length, limit)
        pad_id = int(cfg.get("pad_token_id") or 0)
        pad_token = self.tokenizer.id_to_token(pad_id) or "[PAD]"
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the batch's longest
        self.dim = int(cfg["hidden_size"])
        super().__init__(spec, cache_dir, threads=threads, allow_download=allow_download, precision=precision)
        self._tok_lock = threading.Lock()

    def export_graph(self, dest: Path) -> None:
        export(self._spec, dest, allow_download=self._allow_download)

    def run(self, texts: list[str]) -> np.ndarray:
        with self._tok_lock:
            encs = self.tokenizer.encode_batch(texts)
        out = self.outputs(token_arrays(encs))[0]
        return np.asarray(out, dtype=np.float32)
