"""The ONNX Runtime embedder path: same vectors as torch float32, graph exported once
and cached, a corrupt graph rebuilt, the int8 graph quantised once under its own key
with its own embedding cache, the path picked by what the machine has (NO_BF16
simulating a CPU without bf16), and a torch fallback when onnxruntime is missing or
the export fails."""

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


BF16_CPU = frozenset({"avx2", "avx512f", "avx512_bf16"})
PLAIN_CPU = frozenset({"avx2", "fma"})


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a CPU with or without native bf16 (whatever this machine is)."""
    import models.runtime as runtime

    monkeypatch.delenv("NO_BF16", raising=False)
    runtime.disable_bf16(False)

    def make(bf16: bool):
        monkeypatch.setattr(runtime, "_cpu_flags", lambda: BF16_CPU if bf16 else PLAIN_CPU)

    yield make
    runtime.disable_bf16(False)


@pytest.mark.parametrize(
    "bf16, backend, device, precision, cache, expected",
    [
        (False, "auto", "cpu", "auto", True, ("onnx", "int8")),  # a CPU without native bf16: ONNX int8
        (True, "auto", "cpu", "auto", True, ("torch", "bfloat16")),  # a bf16 CPU keeps its bf16 torch path
        (True, "auto", "cpu", "float32", True, ("onnx", "float32")),  # exact float32, asked for
        (False, "auto", "cpu", "fp32", True, ("onnx", "float32")),
        (True, "auto", "cpu", "int8", True, ("onnx", "int8")),
        (False, "torch", "cpu", "int8", True, ("torch", "int8")),  # torch's own dynamic int8
        (False, "torch", "cpu", "auto", True, ("torch", "float32")),
        (True, "torch", "cpu", "auto", True, ("torch", "bfloat16")),
        (False, "auto", "cpu", "auto", False, ("torch", "float32")),  # nowhere to cache a graph: exact float32
        (False, "auto", "cpu", "int8", False, ("torch", "int8")),
        (True, "auto", "cpu", "bfloat16", True, ("torch", "bfloat16")),
        (True, "onnx", "cpu", "auto", True, ("onnx", "int8")),
        (True, "ORT", "cpu", "bfloat16", True, ("onnx", "float32")),  # ONNX runs float32 or int8
        (False, "auto", "cuda", "auto", True, ("torch", "float16")),  # GPUs always run torch
        (False, "onnx", "cuda", "int8", True, ("torch", "float32")),
    ],
)
def test_path_selection(cpu, bf16, backend, device, precision, cache, expected, tmp_path):
    from models.embedder import pick_path

    cpu(bf16)
    got_backend, got_precision, why = pick_path(backend, precision, device, tmp_path if cache else None)
    assert (got_backend, got_precision) == expected and why


@pytest.mark.parametrize("how", ["env", "call", "settings"])
def test_no_bf16_makes_a_bf16_cpu_take_the_plain_cpu_path(cpu, monkeypatch, tmp_path, how, memo_embedder):
    """NO_BF16 (or disable_bf16) simulates a CPU without native bf16 for every `auto` choice."""
    import models.runtime as runtime
    from models.embedder import pick_path

    cpu(True)
    assert runtime.cpu_has_bf16() and pick_path("auto", "auto", "cpu", tmp_path)[:2] == ("torch", "bfloat16")
    if how == "env":
        monkeypatch.setenv("NO_BF16", "true")
    elif how == "call":
        runtime.disable_bf16()
    else:
        from bot.app import Precis
        from bot.config import Settings

        monkeypatch.setenv("NO_BF16", "1")
        settings = Settings(_env_file=None, data_dir=tmp_path / "data")
        monkeypatch.delenv("NO_BF16")  # from here on only the setting, passed to the app, says so
        assert settings.no_bf16
        Precis(settings, embedder=memo_embedder)
    assert not runtime.cpu_has_bf16()
    assert pick_path("auto", "auto", "cpu", tmp_path)[:2] == ("onnx", "int8")
    assert pick_path("auto", "float32", "cpu", tmp_path)[:2] == ("onnx", "float32")


def test_int8_graph_has_its_own_key(graph_cache, monkeypatch):
    import onnxruntime

    import models.onnx_embed as onnx_embed
    from models.onnx_embed import graph_path, quantized_path
    from models.registry import resolve

    spec = resolve("minilm", "embedder")
    folder = graph_cache / "onnx"
    q = quantized_path(spec, folder)
    assert q != graph_path(spec, folder) and q.parent == folder
    assert q.name.startswith("minilm-int8-") and q.suffix == ".onnx"
    assert quantized_path(spec, folder) == q  # stable
    for attr, value in [("QUANT_VERSION", "999"), ("QUANT_RECIPE", {**onnx_embed.QUANT_RECIPE, "reduce_range": True}),
                        ("EXPORT_VERSION", "999")]:  # the recipe, its version, the float32 graph it came from
        with monkeypatch.context() as m:
            m.setattr(onnx_embed, attr, value)
            assert quantized_path(spec, folder) != q, attr
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.1-other")  # the quantizer
    assert quantized_path(spec, folder) != q


@pytest.fixture(scope="module")
def int8_cache(graph_cache, tmp_path_factory):
    """The cache folder with the int8 graph quantised from the module's float32 graph (once)."""
    from models.embedder import Embedder

    folder = _copy(graph_cache, tmp_path_factory.mktemp("int8") / "cache")
    emb = Embedder("minilm", device="cpu", precision="int8", backend="onnx", cache_dir=folder)
    assert emb.path == "onnx-int8" and emb._onnx.int8_built and not emb._onnx.exported
    return folder


def test_int8_vectors_stay_close_and_get_their_own_cache(int8_cache, torch_fp32, texts):
    from models.embedder import Embedder

    emb = Embedder("minilm", device="cpu", precision="int8", cache_dir=int8_cache)
    assert emb.path == "onnx-int8" and not emb._onnx.int8_built  # read from the cache, not quantised again
    torch_int8 = Embedder("minilm", device="cpu", precision="int8", backend="torch")
    names = {emb.name, torch_int8.name, torch_fp32.name}
    assert len(names) == 3  # int8 vectors differ from float32 and from torch's int8: three caches
    assert emb.name.startswith(torch_fp32.name) and "int8" in emb.name
    a = emb.encode(texts, batch_size=8)
    b = torch_fp32.encode(texts, batch_size=8)
    assert a.shape == b.shape and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = np.sum(a * b, axis=1)
    assert cos.mean() > 0.98 and cos.min() > 0.9, (cos.mean(), cos.min())
    # Closer to float32 than torch's dynamic int8 (the reason ONNX runs int8 here).
    cos_torch = np.sum(torch_int8.encode(texts, batch_size=8) * b, axis=1)
    assert cos.mean() > cos_torch.mean()
    assert len({p.name for p in (int8_cache / "onnx").glob("*.onnx")}) == 2  # float32 + int8, no temp files left


def test_int8_graph_keeps_no_float32_word_table(int8_cache):
    """The word-piece table (vocabulary x hidden) was most of the int8 graph while it stayed float32:
    it is int8 too, so the int8 graph is under a third of the float32 one."""
    import onnx

    graphs = {p.name: p for p in (int8_cache / "onnx").glob("*.onnx")}
    (int8,) = [p for n, p in graphs.items() if "-int8-" in n]
    (fp32,) = [p for n, p in graphs.items() if "-int8-" not in n]
    model = onnx.load(str(int8), load_external_data=False)
    big_float = [(i.name, tuple(i.dims)) for i in model.graph.initializer
                 if i.data_type == onnx.TensorProto.FLOAT and np.prod(i.dims) >= 1_000_000]
    assert big_float == []
    assert int8.stat().st_size < fp32.stat().st_size / 3, (int8.stat().st_size, fp32.stat().st_size)


def test_int8_graph_is_quantised_once(int8_cache, monkeypatch, tmp_path):
    import models.onnx_embed as onnx_embed
    from models.embedder import Embedder

    folder = _copy(int8_cache, tmp_path / "cache")
    (folder / "onnx" / onnx_embed.graph_path(Embedder("minilm", device="cpu", backend="torch").spec,
                                             folder / "onnx").name).unlink()  # the int8 graph alone is enough

    def no_build(*a, **k):
        raise AssertionError("a cached int8 graph must not be built again")

    monkeypatch.setattr(onnx_embed, "quantize", no_build)
    monkeypatch.setattr(onnx_embed, "export", no_build)
    emb = Embedder("minilm", device="cpu", precision="int8", cache_dir=folder)
    assert emb.path == "onnx-int8" and emb.encode(["One sentence."]).shape == (1, emb.dim)


def test_unknown_backend_is_a_clear_error(tmp_path):
    from models.embedder import Embedder

    with pytest.raises(ModelUnavailable, match="backend 'tensorrt'"):
        Embedder("minilm", device="cpu", backend="tensorrt", cache_dir=tmp_path)


def test_missing_onnxruntime_falls_back_to_torch(cpu, monkeypatch, tmp_path, caplog):
    from models.embedder import Embedder

    cpu(False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="models.embedder"):
        emb = Embedder("minilm", device="cpu", precision="auto", cache_dir=tmp_path)
    assert emb.backend == "torch" and emb.path == "torch-float32"  # exact float32, not torch's int8
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
