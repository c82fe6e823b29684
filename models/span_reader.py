"""Span reader: the short answer phrase, read from a sentence by a model trained here.

The shipped weights (``models/weights/span/``, built by ``training/span.py``) are the bundled
all-MiniLM-L6-v2 fine-tuned for extractive question answering (a start and an end logit per word
piece, SQuAD 2.0 style) on SQuAD and RealTime QA news questions. It reads the same pair as the
reranker (:func:`models.reranker.pair`: the question, then the sentence followed by its title and
the sentence before it) and may only point inside the sentence itself, so the phrase is always word
for word from the sentence the answer shows.

Its one decision has no knob: the best span (start and end within :data:`MAX_SPAN` word pieces) is
the answer when it scores above "no answer here" (both pointers on ``[CLS]``), as in SQuAD 2.0;
otherwise :meth:`SpanReader.read` returns None (or, with ``always``, that best span with a negative
margin: the answerer also asks whether it agrees with the phrase rules, see
:meth:`bot.engines.answerer.Answerer.lead`).

Loading follows the reranker: local files only (a hub id downloads only with ``allow_download``),
torch bf16 where the CPU multiplies bf16 natively, else PyTorch's dynamic int8.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .registry import ModelSpec, ModelUnavailable, resolve
from .reranker import MAX_LENGTH, load_once, on_cpu_path, pair
from .runtime import set_threads

log = logging.getLogger(__name__)

MAX_SPAN = 24  # word pieces: a name, a number with its unit, a short phrase
_EDGE = " \t\n,;:.!?\"'()[]{}“”‘’"


@dataclass(frozen=True)
class Span:
    start: int  # character offsets in the sentence
    end: int
    text: str
    prob: float  # P(start) x P(end) of this span
    margin: float  # its log-score minus "no answer here" (> 0: read as the answer)


def encode(tokenizer, question: str, items: list[tuple[str, str, str]], max_length: int):
    """Tokenise ``(sentence, title, sentence before)`` items against ``question``; returns the encoding
    (with offsets) and, per item, a bool mask of the word pieces that lie inside the sentence."""
    pairs = [pair(question, *it) for it in items]
    enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second",
                    max_length=max_length, padding=True, return_offsets_mapping=True, return_tensors="np")
    masks = []
    for i, it in enumerate(items):
        n = len(it[0].strip())
        seq = enc.sequence_ids(i)
        off = enc["offset_mapping"][i]
        masks.append(np.array([s == 1 and off[t][1] > off[t][0] and off[t][1] <= n
                               for t, s in enumerate(seq)], dtype=bool))
    return enc, masks


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def decode(sentence: str, start: np.ndarray, end: np.ndarray, inside: np.ndarray, offsets,
           always: bool = False) -> Span | None:
    """The best span of one item, or None when "no answer here" ([CLS], position 0) scores higher
    (``always``: the best span even then, its ``margin`` negative; None only when there is none)."""
    allowed = inside.copy()
    allowed[0] = True
    if not inside.any():
        return None
    ls = _log_softmax(np.where(allowed, start, -np.inf)[allowed])
    le = _log_softmax(np.where(allowed, end, -np.inf)[allowed])
    pos = np.flatnonzero(allowed)  # pos[0] == 0, [CLS]
    null = ls[0] + le[0]
    best, bi, bj = -np.inf, -1, -1
    for i in range(1, len(pos)):
        j_hi = min(len(pos), i + MAX_SPAN)
        j = i + int(np.argmax(le[i:j_hi]))
        s = ls[i] + le[j]
        if s > best:
            best, bi, bj = s, i, j
    if bi < 0 or (best <= null and not always):
        return None
    text = sentence.strip()
    a, b = int(offsets[pos[bi]][0]), int(offsets[pos[bj]][1])
    while a > 0 and text[a - 1].isalnum():  # whole words only
        a -= 1
    while b < len(text) and text[b].isalnum():
        b += 1
    while a < b and text[a] in _EDGE:
        a += 1
    while b > a and text[b - 1] in _EDGE:
        b -= 1
    if b <= a or not re.search(r"\w", text[a:b]):
        return None
    return Span(a, b, text[a:b], float(np.exp(best)), float(best - null))


RULES = frozenset({"", "rules", "off", "none", "false", "0", "no"})


def is_rules(setting: str | None) -> bool:
    """ASK_PHRASE=rules (or off, or empty): the short answer comes from the phrase rules alone."""
    return (setting or "").strip().lower() in RULES


def open_span_reader(name: str, *, threads: int | None = None, precision: str = "auto",
                     allow_download: bool = False) -> "SpanReader":
    """A :class:`SpanReader`, loaded once per process for the same settings (:func:`models.reranker.load_once`)."""
    return load_once(SpanReader, name, threads=threads, precision=precision, allow_download=allow_download)


class SpanReader:
    """``read(question, sentence, title, before)`` -> the answer :class:`Span` in ``sentence`` or None."""

    def __init__(self, model: str | ModelSpec = "precis-span", *, threads: int | None = None,
                 precision: str = "auto", allow_download: bool = False, max_length: int = MAX_LENGTH) -> None:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self.spec = model if isinstance(model, ModelSpec) else resolve(model, "reader")
        set_threads(threads)
        self._torch = torch
        local_only = not allow_download
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.spec.path, local_files_only=local_only)
            net = AutoModelForQuestionAnswering.from_pretrained(self.spec.path, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported the same way
            raise ModelUnavailable(f"span reader {self.spec.name!r} failed to load: {exc}") from exc
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelUnavailable(f"span reader {self.spec.name!r} needs a fast tokenizer (character offsets)")
        self.precision, self.model = on_cpu_path(net, precision, "span reader")
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def path(self) -> str:
        return f"torch-{self.precision}"

    def describe(self) -> str:
        return f"{self.spec.name} ({self.path}, {Path(self.spec.path).name})"

    def logits(self, question: str, items: list[tuple[str, str, str]]):
        """(encoding, inside masks, start logits, end logits) for the items, one row each."""
        torch = self._torch
        with self._lock:
            enc, masks = encode(self.tokenizer, question, items, self.max_length)
        feed = {k: torch.from_numpy(np.asarray(v)) for k, v in enc.items() if k != "offset_mapping"}
        with torch.inference_mode():
            out = self.model(**feed)
        return enc, masks, out.start_logits.float().numpy(), out.end_logits.float().numpy()

    def read_many(self, question: str, items: list[tuple[str, str, str]], always: bool = False
                  ) -> list[Span | None]:
        if not items:
            return []
        enc, masks, st, en = self.logits(question, items)
        return [decode(it[0], st[i], en[i], masks[i], enc["offset_mapping"][i], always) for i, it in enumerate(items)]

    def read(self, question: str, sentence: str, title: str = "", before: str = "", always: bool = False
             ) -> Span | None:
        """The answer phrase in ``sentence`` (word for word), or None when the model finds none there
        (``always``: its best span even then, with a negative ``margin``)."""
        return self.read_many(question, [(sentence, title, before)], always)[0]
