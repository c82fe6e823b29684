"""Device and thread choices shared by the model loaders."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def pick_device(setting: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    import torch

    setting = (setting or "auto").strip().lower()
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        log.warning("MODEL_DEVICE=%s but CUDA is not available; using cpu", setting)
        return "cpu"
    return setting


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads once (0 or None keeps torch's default)."""
    import torch

    if threads and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 / AMX), as oneDNN sees it."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - private API: absent means "don't know", so no
        return False
