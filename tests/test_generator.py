"""models.generator: seq2seq path on a tiny T5 built on the fly, GGUF + cache on the bundled SmolLM2."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from models.generator import CACHE_MARKER, Generator
from models.registry import DEFAULT_GENERATOR, ModelSpec, ModelUnavailable, resolve
from tests.model_fixtures import tiny_t5_dir  # noqa: F401  (pytest fixture)

PROMPT = "The foreign ministry said on Tuesday that the talks would continue."


@pytest.fixture(scope="module")
def t5_gen(tiny_t5_dir: Path) -> Generator:  # noqa: F811
    return Generator(str(tiny_t5_dir), cache_dir=None)


# ---------------------------------------------------------------- seq2seq, no downloads


def test_tiny_t5_loads_as_seq2seq(t5_gen: Generator, tiny_t5_dir: Path) -> None:  # noqa: F811
    assert t5_gen.is_seq2seq
    assert t5_gen.spec.source == "local"
    assert t5_gen.name == str(tiny_t5_dir)
    assert t5_gen.loaded_from == "pretrained"
    assert t5_gen.device == "cpu"
    from models.runtime import cpu_has_bf16

    # auto dtype: bfloat16 where the CPU multiplies it natively, else float32
    assert str(t5_gen.model.dtype) == ("torch.bfloat16" if cpu_has_bf16() else "torch.float32")
    # T5 has relative positions and no max_position_embeddings: the seq2seq fallback.
    assert t5_gen.context_length == 512


def test_tiny_t5_generates_deterministically(t5_gen: Generator) -> None:
    first = t5_gen.generate(PROMPT, max_new_tokens=12)
    second = t5_gen.generate(PROMPT, max_new_tokens=12)
    assert isinstance(first, str) and first.strip()
    assert first == second
    assert t5_gen.last_stats["new_tokens"] <= 12
    assert t5_gen.count_tokens(first) <= 12


def test_tiny_t5_respects_max_and_min_new_tokens(t5_gen: Generator) -> None:
    t5_gen.generate(PROMPT, max_new_tokens=3)
    assert 1 <= t5_gen.last_stats["new_tokens"] <= 3
    t5_gen.generate(PROMPT, max_new_tokens=8, min_new_tokens=8)
    assert t5_gen.last_stats["new_tokens"] == 8


def test_tiny_t5_beam_search_and_options(t5_gen: Generator) -> None:
    out = t5_gen.generate(
        PROMPT,
        system="summarize:",
        max_new_tokens=6,
        num_beams=2,
        no_repeat_ngram_size=2,
        repetition_penalty=1.3,
    )
    assert isinstance(out, str)
    assert out == t5_gen.generate(
        PROMPT, system="summarize:", max_new_tokens=6, num_beams=2, no_repeat_ngram_size=2, repetition_penalty=1.3
    )


def test_tiny_t5_batch_matches_single(t5_gen: Generator) -> None:
    prompts = [PROMPT, "Kazakhs"]
    batch = t5_gen.generate_batch(prompts, max_new_tokens=5)
    assert len(batch) == 2
    assert batch[0] == t5_gen.generate(prompts[0], max_new_tokens=5)
    assert t5_gen.generate_batch([]) == []


def test_count_and_truncate_tokens(t5_gen: Generator) -> None:
    text = "China is allowing more than 2,000 ethnic Kazakhs to give up their citizenship."
    n = t5_gen.count_tokens(text)
    assert n > 5
    assert t5_gen.count_tokens("") == 0
    assert t5_gen.truncate_to_tokens(text, n) == text
    assert t5_gen.truncate_to_tokens(text, n + 10) == text
    assert t5_gen.truncate_to_tokens(text, 0) == ""
    cut = t5_gen.truncate_to_tokens(text, 5)
    assert text.startswith(cut)
    assert 0 < t5_gen.count_tokens(cut) <= 5


def test_overlong_prompt_is_cut_to_the_context(t5_gen: Generator) -> None:
    long = " ".join(["The minister said the talks would continue."] * 200)
    assert t5_gen.count_tokens(long) > t5_gen.context_length
    out = t5_gen.generate(long, max_new_tokens=4)
    assert isinstance(out, str)
    assert t5_gen.last_stats["prompt_tokens"] <= t5_gen.context_length


def test_copy_constrained_generation_keeps_to_the_support(t5_gen: Generator) -> None:
    """The transformers form of the copy constraint (a logits processor): even a random tiny model
    can only write a compression of the sentence that models/decoding.py's word check accepts."""
    from models.decoding import satisfies

    for support in (PROMPT, "Leon Yeaman, 55, was not killed by Mr Smith on Friday, police said."):
        for strict in (False, True):
            out = t5_gen.generate_copy(f"Shorten: {support}", support, strict=strict, max_new_tokens=40)
            assert out == "" or satisfies(out, support, strict=strict), out
            assert t5_gen.last_stats["new_tokens"] <= 40
    assert t5_gen.backend == "transformers" and "transformers" in t5_gen.describe()


def test_backend_choice(tiny_t5_dir: Path) -> None:  # noqa: F811
    from models.generator import open_generator, pick_backend

    assert pick_backend(str(tiny_t5_dir)) == "transformers"  # safetensors: transformers
    assert pick_backend("http://127.0.0.1:8080/v1") == "openai"
    assert pick_backend(str(tiny_t5_dir), "llama-cpp") == "llamacpp"
    assert pick_backend("no/such-model-here") == "transformers"  # its loader says why it is missing
    with pytest.raises(ModelUnavailable, match="unknown generator backend"):
        pick_backend(DEFAULT_GENERATOR, "tensorflow")
    assert isinstance(open_generator(str(tiny_t5_dir)), Generator)


def test_spec_is_accepted_directly(tiny_t5_dir: Path) -> None:  # noqa: F811
    spec = resolve(str(tiny_t5_dir), "generator")
    gen = Generator(spec, threads=None, dtype="float32")
    assert gen.spec is spec
    assert gen.generate(PROMPT, max_new_tokens=3) == Generator(str(tiny_t5_dir)).generate(PROMPT, max_new_tokens=3)


# ---------------------------------------------------------------- failures


def test_missing_folder_raises(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelUnavailable, match="no-such-model") as info:
        Generator(str(missing))
    assert "no model folder" in str(info.value)
    # A spec that skipped resolve() gets the same treatment.
    with pytest.raises(ModelUnavailable, match="does not exist") as info:
        Generator(ModelSpec("my-model", "generator", "local", str(missing)))
    assert "my-model" in str(info.value)


def test_folder_without_config_raises(tmp_path: Path) -> None:
    folder = tmp_path / "empty-model"
    folder.mkdir()
    (folder / "README.md").write_text("not a model")
    with pytest.raises(ModelUnavailable, match="empty-model") as info:
        Generator(str(folder))
    assert "config.json" in str(info.value)
    with pytest.raises(ModelUnavailable, match="config.json") as info:
        Generator(ModelSpec("bare", "generator", "local", str(folder)))
    assert "'bare'" in str(info.value)


def test_corrupt_weights_raise(tiny_t5_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    broken = tmp_path / "broken-t5"
    shutil.copytree(tiny_t5_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated mid-file
    with pytest.raises(ModelUnavailable, match="broken-t5") as info:
        Generator(str(broken))
    assert "weights could not be loaded" in str(info.value)

    weights.write_bytes(b"\x00garbage, not a safetensors file")
    with pytest.raises(ModelUnavailable, match="weights could not be loaded"):
        Generator(str(broken))


def test_missing_weights_file_raises(tiny_t5_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    broken = tmp_path / "no-weights"
    shutil.copytree(tiny_t5_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailable, match="no weights file") as info:
        Generator(str(broken))
    assert "no-weights" in str(info.value)


def test_missing_gguf_file_raises(tmp_path: Path) -> None:
    spec = ModelSpec("ghost", "generator", "local", str(tmp_path), gguf_file="ghost.Q4_0.gguf")
    with pytest.raises(ModelUnavailable, match="'ghost'.*ghost.Q4_0.gguf does not exist"):
        Generator(spec)


def test_corrupt_gguf_raises(tmp_path: Path) -> None:
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelUnavailable, match="'bad'.*could not be read"):
        Generator(ModelSpec("bad", "generator", "local", str(tmp_path), gguf_file="bad.gguf"), cache_dir=tmp_path / "c")
    assert not any((tmp_path / "c").glob("*")) if (tmp_path / "c").exists() else True


def test_hub_model_not_cached_raises_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelUnavailable, match="precis-test/not-a-model.*downloads are off"):
        Generator("precis-test/not-a-model")


def test_unknown_name_raises() -> None:
    with pytest.raises(ModelUnavailable, match="unknown model 'no such model'"):
        Generator("no such model")
    with pytest.raises(ModelUnavailable, match="embedder"):
        Generator("minilm")


def test_bad_dtype_raises(tiny_t5_dir: Path) -> None:  # noqa: F811
    with pytest.raises(ModelUnavailable, match="dtype"):
        Generator(str(tiny_t5_dir), dtype="int3")


# ---------------------------------------------------------------- bundled GGUF + HF cache


@pytest.mark.slow
def test_bundled_smollm2_gguf_and_cache(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    t0 = time.perf_counter()
    first = Generator(DEFAULT_GENERATOR, cache_dir=cache_dir)
    first_load = time.perf_counter() - t0
    assert first.loaded_from == "gguf"
    assert not first.is_seq2seq
    assert first.has_chat_template
    assert first.context_length == 8192
    answer = first.generate("What is the capital of France? Answer in one word.", max_new_tokens=12)
    assert answer.strip()
    assert "Paris" in answer

    cached = cache_dir / first.spec.cache_key
    assert (cached / "config.json").is_file()
    assert (cached / "model.safetensors").is_file()
    assert (cached / "tokenizer.json").is_file()
    assert json.loads((cached / CACHE_MARKER).read_text())["model"] == DEFAULT_GENERATOR
    assert not list(cache_dir.glob(".*tmp*")), "the temporary folder was renamed into place"

    t0 = time.perf_counter()
    second = Generator(DEFAULT_GENERATOR, cache_dir=cache_dir)
    second_load = time.perf_counter() - t0
    assert second.loaded_from == "cache"
    assert second_load < first_load
    assert second.generate("What is the capital of France? Answer in one word.", max_new_tokens=12) == answer


# ---------------------------------------------------------------- cache logic, fast
# The GGUF cache is exercised without a real (slow) de-quantisation: the step that
# reads the .gguf file is replaced by loading the tiny T5, so each "first start"
# costs milliseconds. The real path is covered by the slow test above.


@pytest.fixture
def fake_gguf(tiny_t5_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = tmp_path / "ggufs"
    folder.mkdir()
    (folder / "tiny.Q8_0.gguf").write_bytes(b"GGUF fake")
    calls: list[str] = []

    def dequantise(self: Generator, where: Path, gguf_file: str) -> None:
        calls.append(gguf_file)
        self.tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir)

    monkeypatch.setattr(Generator, "_dequantise_gguf", dequantise)
    spec = ModelSpec("tiny", "generator", "local", str(folder), gguf_file="tiny.Q8_0.gguf")
    return spec, tmp_path / "cache", calls


def test_gguf_cache_written_atomically_and_reused(fake_gguf) -> None:
    spec, cache_dir, calls = fake_gguf
    first = Generator(spec, cache_dir=cache_dir)
    assert first.loaded_from == "gguf" and calls == ["tiny.Q8_0.gguf"]
    cached = cache_dir / spec.cache_key
    assert spec.cache_key == "ggufs-tiny.Q8_0"
    assert {"config.json", "model.safetensors", "tokenizer.json", CACHE_MARKER} <= {p.name for p in cached.iterdir()}
    assert [p.name for p in cache_dir.iterdir()] == [cached.name]  # no temp folder left behind

    second = Generator(spec, cache_dir=cache_dir)
    assert second.loaded_from == "cache" and len(calls) == 1
    assert second.generate(PROMPT, max_new_tokens=5) == first.generate(PROMPT, max_new_tokens=5)

    # No cache_dir: de-quantise every time, write nothing.
    assert Generator(spec, cache_dir=None).loaded_from == "gguf" and len(calls) == 2


def test_gguf_cache_without_marker_is_rebuilt(fake_gguf) -> None:
    spec, cache_dir, calls = fake_gguf
    Generator(spec, cache_dir=cache_dir)
    cached = cache_dir / spec.cache_key
    (cached / CACHE_MARKER).unlink()  # as if the save was interrupted before the marker
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "gguf"
    assert (cached / CACHE_MARKER).is_file()
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "cache" and len(calls) == 2


def test_gguf_cache_truncated_weights_are_rebuilt(fake_gguf) -> None:
    spec, cache_dir, calls = fake_gguf
    Generator(spec, cache_dir=cache_dir)
    weights = cache_dir / spec.cache_key / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as fh:
        fh.truncate(100)
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "gguf"
    assert weights.stat().st_size == size
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "cache" and len(calls) == 2


def test_gguf_cache_corrupt_weights_are_detected_on_load(fake_gguf) -> None:
    spec, cache_dir, calls = fake_gguf
    Generator(spec, cache_dir=cache_dir)
    weights = cache_dir / spec.cache_key / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as fh:  # same size, so the marker check passes; the header is garbage
        fh.write(b"\xff" * 16)
    assert weights.stat().st_size == size
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "gguf"
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "cache" and len(calls) == 2


def test_gguf_cache_is_stale_when_the_gguf_changes(fake_gguf) -> None:
    spec, cache_dir, calls = fake_gguf
    Generator(spec, cache_dir=cache_dir)
    (Path(spec.path) / spec.gguf_file).write_bytes(b"GGUF a different, longer file")
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "gguf"
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "cache" and len(calls) == 2


def test_gguf_cache_ignores_and_cleans_temp_leftovers(fake_gguf) -> None:
    import os

    spec, cache_dir, calls = fake_gguf
    cache_dir.mkdir()
    leftover = cache_dir / f".{spec.cache_key}.tmp-1-deadbeef"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "gguf"
    assert not leftover.exists()
    assert Generator(spec, cache_dir=cache_dir).loaded_from == "cache"


def test_gguf_cache_write_failure_still_loads(fake_gguf) -> None:
    spec, cache_dir, calls = fake_gguf
    cache_dir.write_text("a file where the cache folder should be")
    gen = Generator(spec, cache_dir=cache_dir)
    assert gen.loaded_from == "gguf"
    assert isinstance(gen.generate(PROMPT, max_new_tokens=3), str)
