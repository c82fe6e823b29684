"""Sentence embedder: ``encode(list[str]) -> (n, dim) float32``, L2-normalised.

Loads a sentence-transformers style folder (``1_Pooling/config.json`` tells the
pooling) with plain ``transformers``, local files only unless downloads are
allowed. Batches are bucketed by length so short news sentences do not pay for
the padding of long ones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .registry import ModelSpec, ModelUnavailable, resolve
from .runtime import pick_device, set_threads

log = logging.getLogger(__name__)


class Embedder:
    def __init__(
        self,
        model: str | ModelSpec = "minilm",
        *,
        device: str = "auto",
        threads: int | None = None,
        allow_download: bool = False,
        max_length: int = 256,
        quantize: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.spec = model if isinstance(model, ModelSpec) else resolve(model, "embedder")
        set_threads(threads)
        self.device = pick_device(device)
        local_only = not allow_download
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.spec.path, local_files_only=local_only)
            self.model = AutoModel.from_pretrained(self.spec.path, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported the same way
            raise ModelUnavailable(f"embedder {self.spec.name!r} failed to load: {exc}") from exc
        self.model.eval().to(self.device)
        self.quantized = False
        if quantize and self.device == "cpu":
            self.model = _int8(self.model)
            self.quantized = True
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self.pooling = "mean"
        pool_cfg = Path(self.spec.path) / "1_Pooling" / "config.json"
        if pool_cfg.is_file():
            cfg = json.loads(pool_cfg.read_text())
            if cfg.get("pooling_mode_cls_token"):
                self.pooling = "cls"
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch

    @property
    def name(self) -> str:
        # int8 vectors differ slightly: they get their own embedding cache.
        return self.spec.cache_key + ("-int8" if self.quantized else "")

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Sort by length so each batch pads to similar lengths.
        order = np.argsort([len(t) for t in texts])[::-1]
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding sentences", unit="sent", file=None)
        with torch.inference_mode():
            for idx in batches:
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                if self.pooling == "cls":
                    vec = hidden[:, 0]
                else:
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vec = torch.nn.functional.normalize(vec.float(), dim=-1)
                out[idx] = vec.cpu().numpy()
                if bar is not None:
                    bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out


def _int8(model):
    """Dynamic int8 quantisation of the Linear layers (CPU only)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks the eager quantisation API as deprecated
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
