"""The ONNX Runtime embedder path: same vectors as torch float32, graph exported once
and cached, a corrupt graph rebuilt, the path picked by what the machine has, and
a torch fallback when onnxruntime is missing or the export fails."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.corpus.loader import load_corpus
from models.registry import ModelUnavailable
from tests.conftest import REPO, SAMPLE

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def texts():
    arts = load_corpus(SAMPLE).articles
    return [s for a in arts for s in a.sentences] + [a.title for a in arts] + ["Short.", "x " * 400, "é ü — “quotes”"]


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory):
    """A cache folder holding the exported graph (exported once for this module)."""
    from models.embedder import Embedder

    folder = tmp_path_factory.mktemp("onnx-cache")
    emb = Embedder("minilm", device="cpu", precision="float32", backend="onnx", cache_dir=folder)
    assert emb.backend == "onnx" and emb._onnx.exported
    return folder


@pytest.fixture(scope="module")
def torch_fp32():
    from models.embedder import Embedder

    return Embedder("minilm", device="cpu", precision="float32", backend="torch")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_onnx_vectors_match_torch_float32(graph_cache, torch_fp32, texts):
    from models.embedder import Embedder

    emb = Embedder("minilm", device="cpu", precision="float32", backend="onnx", cache_dir=graph_cache)
    assert emb.path == "onnx-float32" and torch_fp32.path == "torch-float32"
    a = emb.encode(texts, batch_size=8)
    b = torch_fp32.encode(texts, batch_size=8)
    assert a.dtype == np.float32 and a.shape == (len(texts), torch_fp32.dim) == (len(texts), emb.dim)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = np.sum(a * b, axis=1)
    assert cos.min() > 0.999, cos.min()
    # Same vectors to tolerance: the same embedding cache file.
    assert emb.name == torch_fp32.name
    # One text alone (no padding) agrees with the same text inside a padded batch.
    single = np.stack([emb.encode([t])[0] for t in texts[:4]])
    assert np.all(np.sum(single * a[:4], axis=1) > 0.9999)
    assert emb.encode([]).shape == (0, emb.dim)


def test_graph_is_exported_once_and_reused(graph_cache, monkeypatch, tmp_path):
    import models.onnx_embed as onnx_embed
    from models.embedder import Embedder

    folder = _copy(graph_cache, tmp_path / "cache")
    (graph,) = (folder / "onnx").glob("*.onnx")
    before = graph.stat().st_mtime_ns

    def no_export(*a, **k):
        raise AssertionError("a cached graph must not be exported again")

    monkeypatch.setattr(onnx_embed, "export", no_export)
    emb = Embedder("minilm", device="cpu", precision="float32", backend="onnx", cache_dir=folder)
    assert emb.backend == "onnx" and not emb._onnx.exported
    assert emb._onnx.path == graph and graph.stat().st_mtime_ns == before
    assert emb.encode(["A sentence."]).shape == (1, emb.dim)


def test_graph_name_changes_with_runtime_version(graph_cache, monkeypatch):
    import onnxruntime

    from models.onnx_embed import graph_path
    from models.registry import resolve

    spec = resolve("minilm", "embedder")
    here = graph_path(spec, graph_cache / "onnx")
    assert here.exists()
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.1-other")
    assert graph_path(spec, graph_cache / "onnx") != here


def test_corrupt_graph_is_moved_aside_and_rebuilt(graph_cache, torch_fp32, tmp_path, caplog):
    from models.embedder import Embedder

    folder = _copy(graph_cache, tmp_path / "cache")
    (graph,) = (folder / "onnx").glob("*.onnx")
    graph.write_bytes(graph.read_bytes()[:4096])  # a torn write
    with caplog.at_level(logging.WARNING, logger="models.onnx_embed"):
        emb = Embedder("minilm", device="cpu", precision="float32", backend="onnx", cache_dir=folder)
    assert emb.backend == "onnx" and emb._onnx.rebuilt
    assert "will not load" in caplog.text
    assert list((folder / "onnx").glob("*.corrupt-*"))
    assert graph.stat().st_size > 1_000_000
    v = emb.encode(["The council approved the budget on Tuesday."])
    ref = torch_fp32.encode(["The council approved the budget on Tuesday."])
    assert float(v[0] @ ref[0]) > 0.999


@pytest.mark.parametrize(
    "backend, device, precision, cache, expected",
    [
        ("auto", "cpu", "float32", True, "onnx"),  # a CPU without bf16, or EMBED_PRECISION=float32
        ("auto", "cpu", "bfloat16", True, "torch"),  # a bf16 CPU keeps its bf16 torch path
        ("auto", "cpu", "int8", True, "torch"),
        ("auto", "cuda", "float16", True, "torch"),
        ("onnx", "cuda", "float16", True, "torch"),
        ("torch", "cpu", "float32", True, "torch"),
        ("onnx", "cpu", "bfloat16", True, "onnx"),
        ("ORT", "cpu", "float32", True, "onnx"),
        ("auto", "cpu", "float32", False, "torch"),  # nowhere to cache a graph
    ],
)
def test_backend_selection(backend, device, precision, cache, expected, tmp_path):
    from models.embedder import pick_backend

    got, why = pick_backend(backend, device, precision, "auto", tmp_path if cache else None)
    assert got == expected and why


def test_unknown_backend_is_a_clear_error(tmp_path):
    from models.embedder import Embedder

    with pytest.raises(ModelUnavailable, match="backend 'tensorrt'"):
        Embedder("minilm", device="cpu", backend="tensorrt", cache_dir=tmp_path)


def test_missing_onnxruntime_falls_back_to_torch(monkeypatch, tmp_path, caplog):
    from models.embedder import Embedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="models.embedder"):
        emb = Embedder("minilm", device="cpu", precision="float32", cache_dir=tmp_path)
    assert emb.backend == "torch" and emb.path == "torch-float32"
    assert "onnxruntime is not installed" in caplog.text
    assert emb.encode(["Still works."]).shape == (1, emb.dim)


def test_failed_export_falls_back_to_torch(monkeypatch, tmp_path, caplog):
    import models.onnx_embed as onnx_embed
    from models.embedder import Embedder

    def broken(*a, **k):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_embed, "export", broken)
    with caplog.at_level(logging.WARNING, logger="models.embedder"):
        emb = Embedder("minilm", device="cpu", precision="float32", backend="onnx", cache_dir=tmp_path)
    assert emb.backend == "torch" and "exporter exploded" in caplog.text
    assert not list((tmp_path / "onnx").glob("*.onnx"))


PROBE = """
import json, runpy, sys
sys.argv = ["bot", "summarize", "--input", sys.argv[1], "--json"]
try:
    runpy.run_module("bot", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
mods = sorted(sys.modules)
print(json.dumps({"code": code, "modules": mods}), file=sys.stderr)
"""


def test_extractive_summarize_imports_no_generation_code(graph_cache, tmp_path):
    """A 1-article `bot summarize` on the ONNX path: no generator, no transformers modelling."""
    data = tmp_path / "data"
    _copy(graph_cache, data / "cache")
    one = tmp_path / "one.jsonl"
    arts = load_corpus(SAMPLE).articles
    one.write_text(json.dumps({"id": "a1", "text": " ".join(arts[0].sentences)}) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBED_", "MODEL_", "SUMMARY_", "DATA_DIR"))}
    env.update({"DATA_DIR": str(data), "EMBED_BACKEND": "onnx", "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING"})
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(one)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), proc.stderr[-2000:]
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(out) == 1 and out[0]["id"] == "a1" and out[0]["summary"]
    mods = set(report["modules"])
    assert "models.onnx_embed" in mods and "models.generator" not in mods
    assert "bot.engines.abstractive" not in mods
    heavy = [m for m in mods if m.startswith(("transformers.generation", "transformers.models", "transformers.modeling"))]
    assert not heavy, heavy[:10]
    assert "transformers" not in mods  # the ONNX path needs only `tokenizers`
    assert "torch" not in mods  # device and bf16 are read off the system; a small index is scored by numpy


def test_device_and_bf16_are_read_without_torch(monkeypatch):
    import models.runtime as runtime

    monkeypatch.setattr(runtime, "_no_gpu_driver", lambda: True)
    assert runtime.pick_device("auto") == "cpu" and runtime.pick_device("cpu") == "cpu"
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert runtime.cpu_has_bf16()
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512bw"}))
    assert not runtime.cpu_has_bf16()  # AVX-512 alone is not native bf16
    code = (
        "import sys; from models.runtime import cpu_has_bf16, pick_device; cpu_has_bf16(); pick_device('cpu'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    if runtime._cpu_flags() is not None:  # x86 Linux: answered from /proc/cpuinfo
        assert out.stdout.strip() == "False"
