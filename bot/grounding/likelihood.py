"""How much likelier a sentence is given its support than without it, under the summary model.

``gain = mean log p(sentence | "Article: <support>\\nSummary:") - mean log p(sentence | "Summary:")``
per token of the sentence (the bundled SmolLM2-135M, plain text, no chat
template). A sentence that restates its support gains a lot; one that adds
facts gains little. Two forward passes per sentence, batched per summary.
"""

from __future__ import annotations

from typing import Any

CONTEXT_TOKENS = 320  # support is cut to this many tokens (from the start)


class LikelihoodScorer:
    def __init__(self, generator: Any) -> None:
        self.gen = generator
        self.tok = generator.tokenizer
        self.model = generator.model
        import torch

        self.torch = torch

    def _token_logp(self, prefixes: list[list[int]], targets: list[list[int]]) -> list[Any]:
        """Per pair, the log-probability of each target token after its prefix (a float tensor)."""
        torch = self.torch
        seqs = [p + t for p, t in zip(prefixes, targets)]
        width = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id or 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        out = []
        for i, (p, t) in enumerate(zip(prefixes, targets)):
            pos = torch.arange(len(p) - 1, len(p) + len(t) - 1)
            out.append(logp[i, pos, torch.tensor(t)])
        return out

    def stats(self, supports: list[str], sentences: list[str]) -> list[dict]:
        """Per (support, sentence): ``gain`` (mean log-ratio per token), ``cond`` (mean log p given the
        support), ``worst`` (the mean of the three lowest per-token log-ratios)."""
        if not sentences:
            return []
        enc = self.tok
        targets = [enc.encode(" " + s, add_special_tokens=False)[:80] or [enc.eos_token_id] for s in sentences]
        cond = [enc.encode("Article: ", add_special_tokens=False)
                + enc.encode(sup, add_special_tokens=False)[:CONTEXT_TOKENS]
                + enc.encode("\nSummary:", add_special_tokens=False) for sup in supports]
        bare = [enc.encode("Summary:", add_special_tokens=False)] * len(sentences)
        out = []
        for a, b in zip(self._token_logp(cond, targets), self._token_logp(bare, targets)):
            ratio = a - b
            k = min(3, len(ratio))
            out.append({"gain": float(ratio.mean()), "cond": float(a.mean()),
                        "worst": float(ratio.sort().values[:k].mean())})
        return out

    def gains(self, supports: list[str], sentences: list[str]) -> list[float]:
        """One gain per (support, sentence) pair."""
        return [s["gain"] for s in self.stats(supports, sentences)]
