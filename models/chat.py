"""What the llama.cpp and OpenAI-compatible backends share: chat requests in the OpenAI shape.

A backend here implements ``_chat(payload) -> dict`` (an OpenAI
``/v1/chat/completions`` request and its reply); this base turns the
:class:`~models.generator.Generator` API into such requests:

* ``generate`` / ``generate_batch``: greedy (``temperature`` 0) unless sampling
  is asked for; ``system`` becomes a system message;
* ``generate_copy``: the copy constraint (:mod:`models.decoding`) as a GBNF
  grammar where the backend takes one (``grammar_field``), and in every case
  the reply is kept only when :func:`~models.decoding.satisfies` passes it
  word by word against the support (a server may ignore a field it does not
  know; model output is never trusted). A reply cut by the token budget is
  first backed up to the last place the constraint lets it end.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .decoding import gbnf, satisfies, truncate

log = logging.getLogger(__name__)


class GenerationError(RuntimeError):
    """The backend could not produce a reply; the message says why in words a user can read."""


class ChatGenerator:
    """Base for backends that speak the OpenAI chat-completions shape."""

    backend = "chat"
    is_seq2seq = False
    has_chat_template = True
    grammar_field: str | None = None  # request field that carries a GBNF grammar, if the backend takes one

    concurrency = 1  # requests worth sending at once (the OpenAI backend's max_concurrency, llama.cpp's workers)

    def __init__(self) -> None:
        self._local = threading.local()
        self.rejected = 0  # replies that broke the copy constraint (a server that cannot constrain)
        self.load_seconds = 0.0

    @property
    def last_stats(self) -> dict[str, float]:
        """The statistics of this thread's last request (requests from other threads run at once)."""
        return getattr(self._local, "stats", {})

    @last_stats.setter
    def last_stats(self, value: dict[str, float]) -> None:
        self._local.stats = value

    # ------------------------------------------------------------------ to implement
    def _chat(self, payload: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def constraint(self) -> str:
        if self.grammar_field:
            return f"GBNF grammar ({self.grammar_field!r} field), then checked word by word"
        return "checked word by word after generation (the server cannot constrain decoding)"

    # ------------------------------------------------------------------ requests
    @staticmethod
    def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
        msgs = []
        if system and system.strip():
            msgs.append({"role": "system", "content": system})
        msgs.append({"role": "user", "content": prompt})
        return msgs

    def _complete(self, payload: dict[str, Any]) -> tuple[str, str]:
        """(reply text, finish reason) for one request; raises :class:`GenerationError`."""
        t0 = time.perf_counter()
        reply = self._chat(payload)
        seconds = time.perf_counter() - t0
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"]
            finish = str(choice.get("finish_reason") or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise GenerationError(f"{self.name} gave a reply without choices[0].message.content") from exc
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise GenerationError(f"{self.name} gave a reply whose content is not text")
        usage = reply.get("usage") if isinstance(reply, dict) else None
        n_new = 0
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            n_new = int(usage["completion_tokens"])
        self.last_stats = {
            "new_tokens": float(n_new),
            "seconds": seconds,
            "tokens_per_s": n_new / seconds if seconds > 0 else 0.0,
        }
        return text, finish

    def _base_payload(self, max_new_tokens: int, do_sample: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"max_tokens": max(1, int(max_new_tokens)), "stream": False}
        if not do_sample:
            payload["temperature"] = 0.0
        return payload

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
        """A reply to ``prompt`` (greedy unless ``do_sample``). Beam search, minimum length and
        n-gram blocking are transformers options; these backends ignore them."""
        payload = self._base_payload(max_new_tokens, do_sample)
        payload["messages"] = self._messages(prompt, system)
        if repetition_penalty and repetition_penalty != 1.0:
            payload["repeat_penalty"] = float(repetition_penalty)  # llama.cpp's name; others ignore it
        return self._complete(payload)[0].strip()

    def generate_batch(self, prompts: list[str], **kw: Any) -> list[str]:
        return [self.generate(p, **kw) for p in prompts]

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
        """A greedy reply that the copy constraint allows for ``support``; '' when there is none.
        ``span``: one unbroken run of its words (``/ask``'s short answers); ``system``: a system message.

        ``target_tokens``/``end_bonus``/``skip_bonus`` steer the transformers logits processor
        only (a grammar has no scores to nudge); ``lookup_tokens`` likewise."""
        grammar = gbnf(support, strict=strict, span=span)
        if grammar is None:
            return ""
        payload = self._base_payload(max_new_tokens, False)
        payload["messages"] = self._messages(prompt, system)
        if self.grammar_field:
            payload[self.grammar_field] = grammar
        text, finish = self._complete(payload)
        text = text.strip()
        if finish == "length":
            # a compression is backed up to where it may end; a span cut by the budget is no short answer
            text = "" if span else truncate(text, support, strict=strict)
        if text and not satisfies(text, support, strict=strict, span=span):
            self.rejected += 1
            log.info("%s: a reply broke the copy constraint; its line falls back to the article's sentence",
                     self.name)
            return ""
        return text
