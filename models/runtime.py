"""Device and thread choices shared by the model loaders.

Importing torch costs 1-6 s of a 2-core box's start-up, so the answers that
can be read off the system (no GPU driver, the CPU's flags) are, and torch is
asked only where it has to be.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import sys

log = logging.getLogger(__name__)

# Device nodes a GPU that torch can use needs on Linux: NVIDIA, AMD ROCm (torch calls it cuda), WSL.
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def _no_gpu_driver() -> bool:
    return sys.platform == "linux" and not any(os.path.exists(p) for p in _GPU_NODES)


def pick_device(setting: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given.

    On Linux with no GPU driver loaded the answer is ``cpu`` without importing torch.
    """
    setting = (setting or "auto").strip().lower()
    if setting == "cpu" or (setting == "auto" and _no_gpu_driver()):
        return "cpu"
    import torch

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


@functools.cache
def _cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 Linux), or None where there is none."""
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return None


_bf16_disabled = False


def disable_bf16(disabled: bool = True) -> None:
    """Treat this CPU as one without native bf16 from now on (``NO_BF16``): every
    ``auto`` choice then takes the path such a CPU gets (the ONNX int8 embedder,
    a float32 generator). For measuring that path on a bf16 machine."""
    global _bf16_disabled
    _bf16_disabled = bool(disabled)


def bf16_disabled() -> bool:
    """Whether native bf16 is switched off: :func:`disable_bf16`, or ``NO_BF16`` set true in the environment."""
    env = os.environ.get("NO_BF16", "").strip().lower()
    return _bf16_disabled or env in ("1", "true", "yes", "on")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 / AMX), and bf16 is not disabled.

    Read from the CPU flags on x86 Linux (no torch import); elsewhere as oneDNN sees it.
    """
    if bf16_disabled():
        return False
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - private API: absent means "don't know", so no
        return False
