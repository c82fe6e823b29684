"""``VERIFY_MODEL``: an entailment / factual-consistency classifier that scores a summary line against its support.

Any Hugging Face sequence-classification model given like ``SUMMARY_MODEL`` (a hub id such as an NLI
cross-encoder, MiniCheck-RoBERTa/DeBERTa or HHEM-1, or a local folder): the article side is the premise,
the summary line the hypothesis. What the model's outputs mean is read off its config at load:

* **one logit** (HHEM-1 style): ``sigmoid(logit)`` is the probability the line is supported;
* **two labels** (MiniCheck and other binary consistency models, 2-way NLI): the label named
  ``entailment``/``consistent``/``supported``/... (or ``LABEL_1`` of ``LABEL_0``/``LABEL_1``) is "supported";
  its softmax probability is the score;
* **three labels** (MNLI-style NLI): the label named ``entailment`` (any case); its probability of a softmax
  over all three is the score.

Any other label set is refused at load with the names it found (``VERIFY_LABEL`` names the supported label
when a model's config does not say it). A checkpoint without a trained classification head (a bare
encoder, which ``from_pretrained`` would silently give a random head) is refused too.

**Chunks** (the way SummaC and AlignScore do it): a model reads a few hundred tokens, an article is longer,
and a line's facts may sit in two neighbouring sentences. So the article's sentences are cut into windows of
up to ``chunk_sentences`` consecutive sentences (neighbouring windows share a sentence) that fit with the
line in the model's maximum length; the line is scored against each and the best score is its score. When
an article gives more than ``max_chunks`` windows, the ones sharing most words with the line are scored.

The checker only scores; :class:`~bot.grounding.verifier.Verifier` combines the score with its lexical
checks, which stay blocking.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.registry import ModelSpec, ModelUnavailable, resolve

log = logging.getLogger(__name__)

LEXICAL = "lexical"
# Two-label models: names that mean "the claim is supported" (compared lower-case, '-'/' ' read as '_').
POSITIVE = frozenset(
    "entailment entailed entails consistent factual faithful supported support true yes correct "
    "grounded attributable not_hallucinated".split()
)
ENTAILMENT = frozenset({"entailment", "entailed", "entails", "entail"})
_SANE_MAX_LENGTH = 100_000  # tokenizers without a limit report ~1e30
DEFAULT_MAX_LENGTH = 512
_WORD = re.compile(r"[^\W_]{3,}")


def is_lexical(setting: str | None) -> bool:
    """``VERIFY_MODEL`` unset, blank or ``lexical``: the bundled checker only."""
    return not (setting or "").strip() or (setting or "").strip().lower() == LEXICAL


def _norm(label: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(label).strip().lower())


def supported_label(id2label: dict, num_labels: int, override: str | None = None) -> int | None:
    """Index of the label that means "supported"; ``None`` for a single-logit model (sigmoid).

    Raises :class:`ModelUnavailable` with the names found when the label set cannot be read."""
    labels = {int(k): str(v) for k, v in (id2label or {}).items()}
    if num_labels == 1:
        return None
    names = ", ".join(f"{i}={labels.get(i, '?')}" for i in range(num_labels))
    if override and override.strip():
        want = override.strip()
        if want.isdigit() and int(want) < num_labels:
            return int(want)
        hits = [i for i in range(num_labels) if _norm(labels.get(i, "")) == _norm(want)]
        if len(hits) == 1:
            return hits[0]
        raise ModelUnavailable(f"VERIFY_LABEL={want!r} is none of the model's labels ({names})")
    if num_labels == 3:
        hits = [i for i in range(3) if _norm(labels.get(i, "")) in ENTAILMENT]
        if len(hits) == 1:
            return hits[0]
        raise ModelUnavailable(
            f"a 3-label model must name one label 'entailment' (an NLI model); its labels are {names} - "
            "set VERIFY_LABEL to the label (name or index) that means supported"
        )
    if num_labels == 2:
        normed = [_norm(labels.get(i, "")) for i in range(2)]
        hits = [i for i in range(2) if normed[i] in POSITIVE]
        if len(hits) == 1:
            return hits[0]
        if set(normed) == {"label_0", "label_1"}:
            return normed.index("label_1")  # MiniCheck and most binary consistency models: 1 = supported
        raise ModelUnavailable(
            f"cannot tell which of the 2 labels ({names}) means supported - "
            "set VERIFY_LABEL to its name or index"
        )
    raise ModelUnavailable(
        f"a checker needs 1, 2 or 3 output labels (sigmoid, consistent/inconsistent, NLI); this model has "
        f"{num_labels} ({names})"
    )


@dataclass(frozen=True)
class ChunkScore:
    """A line's best score and the article sentences ``[start, end)`` of the chunk that gave it."""

    score: float
    start: int
    end: int
    scores: tuple[float, ...] = ()  # every scored chunk's score, in ``chunks`` order
    chunks: tuple[tuple[int, int], ...] = ()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModelChecker:
    """A loaded classifier: ``best(sentences, line)`` -> :class:`ChunkScore`. Plain, synchronous.

    ``threshold``: the score a line needs (the Verifier reads it). ``label``: which output label means
    supported, when the config's names do not say (a name or an index).
    """

    def __init__(
        self,
        model: str | ModelSpec,
        *,
        threshold: float = 0.5,
        label: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        allow_download: bool = False,
        chunk_sentences: int = 3,
        max_chunks: int = 8,
        max_length: int | None = None,
        batch_size: int = 16,
    ) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError("the checker's threshold must be from 0 to 1")
        if chunk_sentences < 1 or max_chunks < 1 or batch_size < 1:
            raise ValueError("chunk_sentences, max_chunks and batch_size must be at least 1")
        from models.runtime import pick_device, set_threads

        if isinstance(model, ModelSpec):
            self.spec = model
        else:
            try:
                self.spec = resolve(str(model), "classifier")
            except ModelUnavailable as exc:
                raise ModelUnavailable(f"checker {str(model)!r} is unavailable: {exc}") from exc
        self.name = self.spec.name
        self.threshold = float(threshold)
        self.chunk_sentences = int(chunk_sentences)
        self.max_chunks = int(max_chunks)
        self.batch_size = int(batch_size)
        self.allow_download = allow_download
        set_threads(threads)
        self.device = pick_device(device)
        t0 = time.perf_counter()
        try:
            self._load()
        except ModelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported the same way
            raise self._fail(f"failed to load: {_short(exc)}") from exc
        cfg = self.model.config
        self.num_labels = int(getattr(cfg, "num_labels", 0) or len(getattr(cfg, "id2label", {}) or {}))
        try:
            self.positive = supported_label(getattr(cfg, "id2label", {}), self.num_labels, label)
        except ModelUnavailable as exc:
            raise self._fail(str(exc)) from None
        self.kind = {1: "single logit (sigmoid)", 2: "binary", 3: "NLI 3-way"}[self.num_labels]
        self.max_length = self._max_length(max_length)
        self._pair_special = self.tokenizer.num_special_tokens_to_add(pair=True)
        self.load_seconds = time.perf_counter() - t0
        log.info(
            "checker %s loaded in %.1fs (%s, supported = %s, max length %d, %s)",
            self.name, self.load_seconds, self.kind,
            "sigmoid" if self.positive is None else cfg.id2label.get(self.positive, self.positive),
            self.max_length, self.device,
        )

    # ------------------------------------------------------------------ loading
    def _fail(self, reason: str) -> ModelUnavailable:
        return ModelUnavailable(f"checker {self.spec.name!r} is unavailable: {reason}")

    def _load(self) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        spec = self.spec
        if spec.gguf_file:
            raise self._fail("a checker is a Hugging Face folder or hub id (config.json + weights), not a .gguf file")
        hub = spec.source == "hub"
        local_only = not (hub and self.allow_download)
        where = spec.path
        if not hub and not Path(where, "config.json").is_file():
            raise self._fail(f"{where} has no config.json (not a Hugging Face model folder)")
        try:
            config = AutoConfig.from_pretrained(where, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001
            if hub and local_only:
                raise self._fail(
                    f"not in the local Hugging Face cache and downloads are off ({_short(exc, 160)}); "
                    "set ALLOW_DOWNLOADS=true or fetch it first"
                ) from exc
            raise self._fail(f"config.json could not be read: {_short(exc)}") from exc
        archs = list(getattr(config, "architectures", None) or [])
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise self._fail(
                f"not a sequence-classification model (its architecture is {', '.join(archs)}); a checker needs an "
                "NLI or factual-consistency classifier"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"tokenizer could not be loaded: {_short(exc)}") from exc
        import torch

        try:  # float32 on a CPU (a checkpoint saved in float16 would be slow or fail there)
            model, info = AutoModelForSequenceClassification.from_pretrained(
                where, config=config, local_files_only=local_only, output_loading_info=True,
                dtype=torch.float32 if self.device == "cpu" else "auto",
            )
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"weights could not be loaded: {_short(exc)}") from exc
        missing = list(info.get("missing_keys") or [])
        if missing:  # a bare encoder: from_pretrained would have made up the classification head
            raise self._fail(
                f"the checkpoint has no trained classification head (missing {', '.join(sorted(missing)[:3])}); "
                "a checker needs an NLI or factual-consistency classifier"
            )
        model.eval()
        model.to(self.device)
        self.tokenizer, self.model = tokenizer, model
        self._torch = torch
        self._inputs = set(getattr(tokenizer, "model_input_names", []) or [])

    def _max_length(self, override: int | None) -> int:
        if override:
            return int(override)
        tok = int(getattr(self.tokenizer, "model_max_length", 0) or 0)
        pos = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        cands = [x for x in (tok, pos) if 0 < x < _SANE_MAX_LENGTH]
        return min(cands + [DEFAULT_MAX_LENGTH]) if cands else DEFAULT_MAX_LENGTH

    # ------------------------------------------------------------------ scoring
    def describe(self) -> str:
        return f"{self.name} ({self.kind}, threshold {self.threshold:g})"

    def pair_scores(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        """Probability that each hypothesis is supported by its premise (float64, one per pair)."""
        if len(premises) != len(hypotheses):
            raise ValueError("premises and hypotheses differ in length")
        out = np.zeros(len(premises), dtype=np.float64)
        torch = self._torch
        for b in range(0, len(premises), self.batch_size):
            enc = self.tokenizer(
                premises[b : b + self.batch_size], hypotheses[b : b + self.batch_size], truncation="longest_first",
                max_length=self.max_length, padding=True, return_tensors="pt",
            )
            feed = {k: v.to(self.device) for k, v in enc.items() if not self._inputs or k in self._inputs}
            with torch.inference_mode():
                logits = self.model(**feed).logits.float()
            if self.positive is None:
                p = torch.sigmoid(logits[:, 0])
            else:
                p = torch.softmax(logits, dim=-1)[:, self.positive]
            out[b : b + len(p)] = p.cpu().numpy()
        return out

    def _token_counts(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer([" " + t for t in texts], add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def chunks(self, sentences: list[str], line: str, counts: list[int] | None = None) -> list[tuple[int, int]]:
        """Windows ``[start, end)`` of up to ``chunk_sentences`` consecutive sentences that fit with ``line`` in
        the model's maximum length (a sentence too long alone is its own chunk, cut by the tokenizer);
        neighbouring windows share a sentence."""
        n = len(sentences)
        if n == 0:
            return []
        counts = counts if counts is not None else self._token_counts(sentences)
        (line_len,) = self._token_counts([line])
        budget = max(1, self.max_length - self._pair_special - line_len)
        out: list[tuple[int, int]] = []
        i = 0
        while i < n:
            end, used = i + 1, counts[i]
            while end < n and end - i < self.chunk_sentences and used + counts[end] <= budget:
                used += counts[end]
                end += 1
            out.append((i, end))
            if end >= n:
                break
            i = end - 1 if end - i > 1 else end
        return out

    def best(self, sentences: list[str], line: str) -> ChunkScore:
        """``line`` scored against each chunk of ``sentences``; the best score and where it came from."""
        return self.best_many(sentences, [line])[0]

    def best_many(self, sentences: list[str], lines: list[str]) -> list[ChunkScore]:
        """:meth:`best` for several lines against the same sentences, in one pass of batches."""
        if not sentences:
            return [ChunkScore(0.0, 0, 0) for _ in lines]
        counts = self._token_counts(sentences)
        words = [set(_WORD.findall(s.lower())) for s in sentences]
        plan: list[list[tuple[int, int]]] = []
        premises: list[str] = []
        hyps: list[str] = []
        for line in lines:
            wins = self.chunks(sentences, line, counts)
            if len(wins) > self.max_chunks:  # "a few": the windows sharing most words with the line
                lw = set(_WORD.findall(line.lower()))
                overlap = [len(lw & set().union(*words[a:b])) for a, b in wins]
                keep = sorted(range(len(wins)), key=lambda k: (-overlap[k], k))[: self.max_chunks]
                wins = [wins[k] for k in sorted(keep)]
            plan.append(wins)
            premises += [" ".join(sentences[a:b]) for a, b in wins]
            hyps += [line] * len(wins)
        scores = self.pair_scores(premises, hyps)
        out, k = [], 0
        for wins in plan:
            sc = scores[k : k + len(wins)]
            k += len(wins)
            j = int(np.argmax(sc))
            out.append(ChunkScore(float(sc[j]), wins[j][0], wins[j][1], tuple(float(x) for x in sc), tuple(wins)))
        return out


def load_checker(setting: str | None, **kwargs) -> ModelChecker | None:
    """``None`` for ``lexical``; else the loaded :class:`ModelChecker` (raises :class:`ModelUnavailable`)."""
    if is_lexical(setting):
        return None
    return ModelChecker(str(setting).strip(), **kwargs)


def checker_from_settings(settings) -> ModelChecker | None:
    """The checker ``VERIFY_MODEL`` names, loaded with the model settings (``None`` for ``lexical``)."""
    s = settings
    return load_checker(
        s.verify_model, threshold=s.verify_threshold, label=s.verify_label or None, device=s.model_device,
        threads=s.model_threads or None, allow_download=s.allow_downloads,
    )
