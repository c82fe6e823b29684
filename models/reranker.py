"""Reranker: a cross-encoder that scores how well a sentence answers a question.

The shipped weights (``models/weights/reranker/``, built by ``training/reranker.py``) are the bundled
all-MiniLM-L6-v2 fine-tuned as a cross-encoder on RealTime QA news questions and SQuAD: the question
is the first segment, the candidate sentence followed by its article's title and the sentence before
it is the second (:func:`pair`, the one place that format is written, for training and at run time).
The score is a logit: higher answers better; ``sigmoid(score)`` reads as the probability that the
sentence holds the answer (the training loss has a pointwise part that calibrates it).

Loading follows the embedder: local files only (a hub id downloads only with ``allow_download``),
torch in bfloat16 where the CPU multiplies bf16 natively, else PyTorch's dynamic int8 (float32 with
``precision="float32"``). The forward pass runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from .registry import ModelSpec, ModelUnavailable, resolve
from .runtime import cpu_has_bf16, set_threads

log = logging.getLogger(__name__)

# question + sentence + context, in word pieces; the context is cut first. Trained at 128; read at 96: the
# same top-1 on RealTime QA 2022 (58.1 %), three fifths of the time; at 64 it fell to 52.5 %.
MAX_LENGTH = 96
TRAIN_MAX_LENGTH = 128
CONTEXT_SEP = " || "


def pair(question: str, sentence: str, title: str = "", before: str = "") -> tuple[str, str]:
    """The (first, second) segment the cross-encoder reads: the sentence comes first in the second
    segment, so truncation cuts its context (title, the sentence before), never the sentence."""
    ctx = " | ".join(x.strip() for x in (title, before) if x and x.strip())
    return question.strip(), sentence.strip() + (CONTEXT_SEP + ctx if ctx else "")


OFF = frozenset({"", "off", "none", "false", "0", "no"})


def is_off(setting: str | None) -> bool:
    """ASK_RERANKER=off (or empty): /ask ranks with the reader alone."""
    return (setting or "").strip().lower() in OFF


def on_cpu_path(net, precision: str, what: str):
    """(the precision taken, ``net`` in eval mode on it): ``auto`` is torch bfloat16 where the CPU multiplies
    bf16 natively, else PyTorch's dynamic int8 (the embedder's paths); or ``bfloat16``, ``int8``, ``float32``.
    int8 scales each output channel's weights on its own: with one scale per layer, the shipped span
    reader's margin on a sentence that answers fell from 1.29 (float32) to -0.50, read as "no answer
    here" (the golf pair in tests/test_span_reader.py, on a CPU without native bf16); per channel 0.98."""
    import torch

    net.eval()
    p = (precision or "auto").strip().lower()
    if p == "auto":
        p = "bfloat16" if cpu_has_bf16() else "int8"
    if p == "int8":
        from .embedder import _int8

        return p, _int8(net.float(), per_channel=True)
    if p == "bfloat16":
        return p, net.to(torch.bfloat16)
    if p == "float32":
        return p, net.float()
    raise ModelUnavailable(f"unknown {what} precision {precision!r} (auto, bfloat16, int8, float32)")


_LOADED: dict[tuple, object] = {}  # (class, settings) -> the loaded model
_LOADED_LOCK = threading.Lock()


def load_once(cls, name: str, *, threads: int | None = None, precision: str = "auto",
              allow_download: bool = False):
    """``cls(name, ...)``, loaded once per process for the same class and settings (every snapshot's
    answerer and every app in a process share it: these models are read-only after loading)."""
    key = (cls, name, threads, precision, allow_download)
    with _LOADED_LOCK:
        found = _LOADED.get(key)
        if found is None:
            found = _LOADED[key] = cls(name, threads=threads, precision=precision, allow_download=allow_download)
        return found


def open_reranker(name: str, *, threads: int | None = None, precision: str = "auto",
                  allow_download: bool = False) -> "Reranker":
    """A :class:`Reranker`, loaded once per process for the same settings (:func:`load_once`)."""
    return load_once(Reranker, name, threads=threads, precision=precision, allow_download=allow_download)


class Reranker:
    """``score(question, items)`` -> one logit per (sentence, title, sentence before) item."""

    def __init__(
        self,
        model: str | ModelSpec = "precis-reranker",
        *,
        threads: int | None = None,
        precision: str = "auto",
        allow_download: bool = False,
        max_length: int = MAX_LENGTH,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.spec = model if isinstance(model, ModelSpec) else resolve(model, "reranker")
        set_threads(threads)
        self._torch = torch
        local_only = not allow_download
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.spec.path, local_files_only=local_only)
            net = AutoModelForSequenceClassification.from_pretrained(self.spec.path, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported the same way
            raise ModelUnavailable(f"reranker {self.spec.name!r} failed to load: {exc}") from exc
        if int(getattr(net.config, "num_labels", 0)) != 1:
            raise ModelUnavailable(
                f"reranker {self.spec.name!r} has {net.config.num_labels} output labels; a reranker has one score"
            )
        self.precision, self.model = on_cpu_path(net, precision, "reranker")
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self._lock = threading.Lock()  # the fast tokenizer's truncation/padding state is shared

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def path(self) -> str:
        """Which runtime and numerics ran: ``torch-bfloat16``, ``torch-int8``, ``torch-float32``."""
        return f"torch-{self.precision}"

    def describe(self) -> str:
        return f"{self.spec.name} ({self.path}, {Path(self.spec.path).name})"

    def score(self, question: str, items: list[tuple[str, str, str]]) -> np.ndarray:
        """One logit per ``(sentence, title, sentence before)``; higher answers ``question`` better."""
        if not items:
            return np.zeros(0, dtype=np.float32)
        pairs = [pair(question, *it) for it in items]
        torch = self._torch
        with self._lock:
            enc = self.tokenizer(
                [a for a, _ in pairs], [b for _, b in pairs], truncation="only_second",
                max_length=self.max_length, padding=True, return_tensors="pt",
            )
        with torch.inference_mode():
            logits = self.model(**enc).logits
        return logits.float().reshape(-1).numpy().astype(np.float32)
