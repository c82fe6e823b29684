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
torch bf16 where the CPU multiplies bf16 natively, else PyTorch's dynamic int8 (``backend="auto"``
or ``"torch"``). ``backend="onnx"`` (the app's ``EMBED_BACKEND=onnx``) runs it on ONNX Runtime
instead (:mod:`models.onnx_span`: a graph exported once and cached beside the embedder's, read with
the ``tokenizers`` library), float32 or int8, with neither torch nor transformers imported once the
graph is cached: a process that runs both bundled encoders on ONNX Runtime never loads torch.
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
MIN_SENTENCE = 16  # word pieces the window keeps for the sentence however long the question (see clip)
_EDGE = " \t\n,;:.!?\"'()[]{}“”‘’"


@dataclass(frozen=True)
class Span:
    start: int  # character offsets in the sentence
    end: int
    text: str
    prob: float  # P(start) x P(end) of this span
    margin: float  # its log-score minus "no answer here" (> 0: read as the answer)


def inside_mask(sentence: str, sequence_ids, offsets) -> np.ndarray:
    """Which word pieces of one encoded pair lie inside ``sentence`` itself: the second segment's
    pieces that cover characters before its context (:func:`models.reranker.pair` puts it first)."""
    n = len(sentence.strip())
    return np.array([s == 1 and off[1] > off[0] and off[1] <= n for s, off in zip(sequence_ids, offsets)],
                    dtype=bool)


def encode(tokenizer, question: str, items: list[tuple[str, str, str]], max_length: int):
    """Tokenise ``(sentence, title, sentence before)`` items against ``question``; returns the encoding
    (with offsets) and, per item, a bool mask of the word pieces that lie inside the sentence.
    (:func:`models.onnx_span.encode` is the same with the ``tokenizers`` library alone.)"""
    pairs = [pair(question, *it) for it in items]
    enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second",
                    max_length=max_length, padding=True, return_offsets_mapping=True, return_tensors="np")
    masks = [inside_mask(it[0], enc.sequence_ids(i), enc["offset_mapping"][i]) for i, it in enumerate(items)]
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


BACKENDS = ("auto", "torch", "onnx")
_BACKEND_ALIASES = {"pytorch": "torch", "ort": "onnx", "onnxruntime": "onnx"}
_PRECISION_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "qint8": "int8"}


def norm_backend(backend: str | None) -> str:
    """``auto``, ``torch`` or ``onnx`` (``EMBED_BACKEND``'s spellings: ``pytorch``, ``ort``, ``onnxruntime``)."""
    b = (backend or "auto").strip().lower()
    b = _BACKEND_ALIASES.get(b, b)
    if b not in BACKENDS:
        raise ModelUnavailable(f"unknown span reader backend {backend!r} ({', '.join(BACKENDS)})")
    return b


def pick_path(backend: str, precision: str, cache_dir: str | Path | None) -> tuple[str, str, str]:
    """``(backend, precision, why)``: which runtime and numerics the span reader uses.

    ``auto`` and ``torch``: PyTorch, ``precision`` as given (``auto``: bf16 where the CPU multiplies
    bf16 natively, else dynamic int8; :func:`models.reranker.on_cpu_path`). ``onnx``: ONNX Runtime in
    ``float32`` or ``int8``; ``auto`` is int8, as for the embedder under ``EMBED_BACKEND=onnx``, and
    bfloat16 / float16 are read as float32. Without onnxruntime or a cache folder for the graph it
    falls back to PyTorch, logged.
    """
    from .onnx_embed import onnxruntime_available

    b = norm_backend(backend)
    p = (precision or "auto").strip().lower()
    p = _PRECISION_ALIASES.get(p, p)
    if b != "onnx":
        return "torch", p, f"backend {b}"
    if cache_dir is None:
        log.warning("the ONNX span reader needs a cache folder for its graph; using torch")
        return "torch", p, "no cache folder for an ONNX graph"
    if not onnxruntime_available():
        log.warning("onnxruntime is not installed; the span reader uses torch (pip install onnxruntime)")
        return "torch", p, "onnxruntime missing"
    if p in ("bfloat16", "float16"):
        log.warning("the ONNX span reader runs float32 or int8; precision %s is read as float32", p)
        return "onnx", "float32", f"precision {p} on ONNX Runtime"
    if p == "auto":
        return "onnx", "int8", "backend onnx"
    if p not in ("float32", "int8"):
        raise ModelUnavailable(f"unknown span reader precision {precision!r} (auto, float32, int8)")
    return "onnx", p, f"precision {p}"


_ONNX_LOADED: dict[tuple, "BaseSpanReader"] = {}  # ONNX settings -> the reader (or its torch fallback)
_ONNX_LOCK = threading.Lock()


def open_span_reader(name: str, *, threads: int | None = None, precision: str = "auto",
                     allow_download: bool = False, backend: str = "auto",
                     cache_dir: str | Path | None = None) -> "BaseSpanReader":
    """A span reader, loaded once per process for the same settings (:func:`models.reranker.load_once`).

    ``backend`` (:func:`pick_path`): ``auto`` or ``torch``, a :class:`SpanReader`; ``onnx``, an
    :class:`models.onnx_span.OnnxSpanReader` whose graph is cached in ``cache_dir/onnx`` (beside the
    embedder's). An ONNX load that fails (the export, the runtime) falls back to PyTorch, logged once.
    """
    b, p, why = pick_path(backend, precision, cache_dir)
    if b == "torch":
        return load_once(SpanReader, name, threads=threads, precision=p, allow_download=allow_download)
    key = (name, threads, p, allow_download, str(Path(cache_dir)))
    with _ONNX_LOCK:
        found = _ONNX_LOADED.get(key)
        if found is None:
            from .onnx_span import OnnxSpanReader

            spec = resolve(name, "reader")  # a missing model says so here, not as an ONNX failure
            try:
                found = OnnxSpanReader(spec, cache_dir=Path(cache_dir) / "onnx", threads=threads,
                                       precision=p, allow_download=allow_download)
                log.info("span reader %s: %s (%s)", spec.name, found.path, why)
            except Exception as exc:  # noqa: BLE001 - export or runtime failure: the torch path still works
                log.warning("ONNX span reader unavailable (%s: %s); using torch", exc.__class__.__name__, exc)
                found = load_once(SpanReader, name, threads=threads, precision=pick_path("torch", precision, None)[1],
                                  allow_download=allow_download)
            _ONNX_LOADED[key] = found
        return found


class BaseSpanReader:
    """``read(question, sentence, title, before)`` -> the answer :class:`Span` in ``sentence`` or None.

    A runtime gives :meth:`logits` (its tokenizer, the same word pieces either way) and :attr:`path`;
    the inside masks (:func:`inside_mask`) and the decoding (:func:`decode`) are shared.
    """

    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def path(self) -> str:
        """Which runtime and numerics run: ``torch-bfloat16``, ``torch-int8``, ``onnx-int8``..."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.spec.name} ({self.path}, {Path(self.spec.path).name})"

    def logits(self, question: str, items: list[tuple[str, str, str]]):
        """(offsets, inside masks, start logits, end logits) for the items, one row each."""
        raise NotImplementedError

    def question_offsets(self, question: str) -> list[tuple[int, int]]:
        """The character span of each word piece of ``question`` alone (no special tokens)."""
        raise NotImplementedError

    @property
    def max_question(self) -> int:
        """The most word pieces of a question read whole: the window less its three special tokens and
        :data:`MIN_SENTENCE` pieces of the sentence (77 of 96)."""
        return self.max_length - 3 - MIN_SENTENCE

    def clip(self, question: str) -> str:
        """``question``, cut after its first :attr:`max_question` word pieces when it is longer: it would
        leave the sentence (almost) no room in the model's window, and from 93 pieces the tokenizer
        refuses the pair outright. Shorter questions are read whole, as before."""
        limit = self.max_question
        pieces = self.question_offsets(question.strip())
        return question.strip()[: pieces[limit - 1][1]] if len(pieces) > limit else question

    def read_many(self, question: str, items: list[tuple[str, str, str]], always: bool = False
                  ) -> list[Span | None]:
        if not items:
            return []
        offsets, masks, st, en = self.logits(self.clip(question), items)
        return [decode(it[0], st[i], en[i], masks[i], offsets[i], always) for i, it in enumerate(items)]

    def read(self, question: str, sentence: str, title: str = "", before: str = "", always: bool = False
             ) -> Span | None:
        """The answer phrase in ``sentence`` (word for word), or None when the model finds none there
        (``always``: its best span even then, with a negative ``margin``)."""
        return self.read_many(question, [(sentence, title, before)], always)[0]


class SpanReader(BaseSpanReader):
    """The span reader on PyTorch (transformers' question-answering model)."""

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
    def path(self) -> str:
        return f"torch-{self.precision}"

    def question_offsets(self, question: str) -> list[tuple[int, int]]:
        with self._lock:
            return list(self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])

    def logits(self, question: str, items: list[tuple[str, str, str]]):
        torch = self._torch
        with self._lock:
            enc, masks = encode(self.tokenizer, question, items, self.max_length)
        feed = {k: torch.from_numpy(np.asarray(v)) for k, v in enc.items() if k != "offset_mapping"}
        with torch.inference_mode():
            out = self.model(**feed)
        return enc["offset_mapping"], masks, out.start_logits.float().numpy(), out.end_logits.float().numpy()
