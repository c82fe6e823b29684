"""The span reader's ONNX Runtime path: float32 and int8, with neither torch nor transformers at run time.

The span reader's question-answering model (:mod:`models.span_reader`: a BERT-style encoder with a
start and an end logit per word piece) is exported once with ``torch.onnx.export`` and cached as one
``.onnx`` file beside the embedder's graphs, by the embedder's machinery (:class:`models.onnx_embed.OnnxGraph`):
the graph's name carries the model's files, the torch exporter, onnx and onnxruntime versions and
:data:`EXPORT_VERSION` (bump it when :func:`export` changes); it is written to a temporary name and
renamed into place; a graph that will not load is moved aside and built again; int8 is ONNX Runtime's
dynamic quantisation (:data:`models.onnx_embed.QUANT_RECIPE`), quantised once and cached under its own
name. Only the export imports torch and transformers.

Later loads read the graph plus ``tokenizer.json`` with the ``tokenizers`` library, set up as
transformers sets its fast tokenizer up for :func:`models.span_reader.encode` (pairs, ``only_second``
truncation at the reader's length, padding to the batch's longest, right side): the same word pieces,
offsets and segments, so the same spans are read (:func:`encode`). The decoding is
:func:`models.span_reader.decode`, shared.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np

from .onnx_embed import OnnxGraph, token_arrays, write_graph
from .registry import ModelSpec, ModelUnavailable, resolve
from .reranker import MAX_LENGTH, pair
from .span_reader import BaseSpanReader, inside_mask

log = logging.getLogger(__name__)

EXPORT_VERSION = "span-1"  # bump when export() changes
OUTPUTS = ("start_logits", "end_logits")


def export(spec: ModelSpec, dest: Path, *, allow_download: bool = False) -> dict:
    """Export the question-answering model ``spec`` to ``dest`` (atomically), float32, its start and end
    logits as the outputs. Imports torch + transformers: first run only."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    t0 = time.perf_counter()
    net = AutoModelForQuestionAnswering.from_pretrained(
        spec.path, local_files_only=not allow_download, attn_implementation="eager"
    ).float().eval()  # the shipped weights are stored in float16

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.start_logits, out.end_logits

    dest = Path(dest)
    write_graph(Logits(net), dest, {name: {0: "batch", 1: "seq"} for name in OUTPUTS})
    seconds = time.perf_counter() - t0
    log.info("exported %s to ONNX (%s) in %.1fs", spec.name, dest.name, seconds)
    return {"seconds": seconds}


class SpanGraph(OnnxGraph):
    """The span reader's cached graph and its ONNX Runtime session (:class:`models.onnx_embed.OnnxGraph`)."""

    what = "span reader"
    export_version = EXPORT_VERSION

    def export_graph(self, dest: Path) -> None:
        export(self._spec, dest, allow_download=self._allow_download)


def _config(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def load_tokenizer(spec: ModelSpec, max_length: int = MAX_LENGTH):
    """``(tokenizer, max_length)``: ``spec``'s ``tokenizer.json`` set up as transformers sets it up for
    :func:`models.span_reader.encode`: ``only_second`` truncation at ``max_length`` (capped by the
    tokenizer's ``model_max_length``), padding to the batch's longest with the tokenizer's pad token."""
    from tokenizers import Tokenizer

    folder = Path(spec.path)
    if not (folder / "tokenizer.json").is_file():
        raise ModelUnavailable(f"{spec.name}: no tokenizer.json for the ONNX path")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    cfg = _config(folder / "tokenizer_config.json")
    limit = cfg.get("model_max_length") or _config(folder / "config.json").get("max_position_embeddings")
    if isinstance(limit, int | float) and limit > 0:  # transformers writes 1e30 for "no limit"
        max_length = min(max_length, int(limit))
    pad = cfg.get("pad_token") or "[PAD]"
    pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else str(pad)
    pad_id = tok.token_to_id(pad)
    if pad_id is None:
        raise ModelUnavailable(f"{spec.name}: its pad token {pad!r} is not in tokenizer.json")
    tok.enable_truncation(max_length=max_length, strategy="only_second",
                          direction=cfg.get("truncation_side", "right"))
    tok.enable_padding(direction=cfg.get("padding_side", "right"), pad_id=pad_id,
                       pad_type_id=int(cfg.get("pad_token_type_id", 0)), pad_token=pad)
    return tok, max_length


def encode(tokenizer, question: str, items: list[tuple[str, str, str]]):
    """:func:`models.span_reader.encode` with the ``tokenizers`` library alone (``tokenizer`` from
    :func:`load_tokenizer`): ``(arrays, masks)``, the arrays the graph reads (``input_ids``,
    ``attention_mask``, ``token_type_ids``) plus ``offset_mapping``, and per item the bool mask of
    the word pieces that lie inside the sentence."""
    encs = tokenizer.encode_batch([pair(question, *it) for it in items])
    arrays = token_arrays(encs)
    arrays["offset_mapping"] = np.array([e.offsets for e in encs], dtype=np.int64).reshape(len(encs), -1, 2)
    masks = [inside_mask(it[0], e.sequence_ids, e.offsets) for it, e in zip(items, encs)]
    return arrays, masks


class OnnxSpanReader(BaseSpanReader):
    """The span reader on ONNX Runtime, ``float32`` or ``int8`` (:class:`models.span_reader.BaseSpanReader`).

    ``read`` and ``read_many`` are safe to call from several threads at once: each call runs on its
    caller's thread with ``threads`` intra-op threads.
    """

    def __init__(self, model: str | ModelSpec = "precis-span", *, cache_dir: str | Path,
                 threads: int | None = None, precision: str = "float32", allow_download: bool = False,
                 max_length: int = MAX_LENGTH) -> None:
        self.spec = model if isinstance(model, ModelSpec) else resolve(model, "reader")
        self.tokenizer, self.max_length = load_tokenizer(self.spec, max_length)
        self.graph = SpanGraph(self.spec, Path(cache_dir), threads=threads or 1, allow_download=allow_download,
                               precision=precision)
        self.precision = precision
        self._lock = threading.Lock()
        self._single = None  # the tokenizer for a question alone (:meth:`question_offsets`)

    @property
    def path(self) -> str:
        return f"onnx-{self.precision}"

    def question_offsets(self, question: str) -> list[tuple[int, int]]:
        with self._lock:
            if self._single is None:  # the pair tokenizer's only_second truncation refuses a lone text
                from tokenizers import Tokenizer

                self._single = Tokenizer.from_str(self.tokenizer.to_str())
                self._single.no_truncation()
                self._single.no_padding()
            return list(self._single.encode(question, add_special_tokens=False).offsets)

    def logits(self, question: str, items: list[tuple[str, str, str]]):
        with self._lock:
            arrays, masks = encode(self.tokenizer, question, items)
        start, end = self.graph.outputs(arrays, list(OUTPUTS))
        return arrays["offset_mapping"], masks, np.asarray(start, np.float32), np.asarray(end, np.float32)
