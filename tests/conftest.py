"""Shared fixtures: the real bundled embedder (loaded once), apps pointed at tmp_path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "bot" / "data" / "sample_corpus.txt"


class CountingEmbedder:
    """Wraps the real embedder and counts what it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.calls: list[int] = []

    def encode(self, texts, batch_size=64, progress=False):
        self.calls.append(len(texts))
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)

    @property
    def embedded(self) -> int:
        return sum(self.calls)


class MemoEmbedder:
    """The real embedder, remembering every text it encoded: a test's fresh DATA_DIR
    (empty embedding cache) does not pay for the same sentences again."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, texts, batch_size=64, progress=False):
        texts = list(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            vecs = self.inner.encode(missing, batch_size=batch_size, progress=progress)
            with self._lock:
                self._memo.update(zip(missing, np.asarray(vecs)))
        with self._lock:
            if not texts:
                return np.zeros((0, self.dim), np.float32)
            return np.stack([self._memo[t] for t in texts]).astype(np.float32)


@pytest.fixture(scope="session")
def embedder():
    from models.embedder import Embedder

    return Embedder("minilm", device="cpu")


@pytest.fixture(scope="session")
def memo_embedder(embedder):
    """One memo for the whole run (same model, same vectors, each text embedded once)."""
    return MemoEmbedder(embedder)


@pytest.fixture
def counting_embedder(embedder):
    return CountingEmbedder(embedder)


@pytest.fixture
def settings_factory(tmp_path, monkeypatch):
    from bot.config import Settings

    # Settings read the environment and .env: keep the developer's own out of tests.
    for key in list(os.environ):
        if key.startswith(("DISCORD_", "CORPUS_", "DATA_DIR", "SUMMARY_", "EMBED_", "MODEL_", "NO_BF16", "DATABASE_", "INDEX_", "ASK_",
                           "SHARD_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)

    def make(**overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("corpus_path", SAMPLE)
        return Settings(_env_file=None, **overrides)

    return make


@pytest.fixture
def app_factory(settings_factory, memo_embedder):
    from bot.app import Precis

    def make(embedder_=None, **overrides):
        app = Precis(settings_factory(**overrides), embedder=embedder_ or memo_embedder)
        app.load(progress=False)
        return app

    return make


@pytest.fixture
def fast_app_factory(app_factory):
    """Kept for the tests that name it: app_factory already uses the memoising embedder."""
    return app_factory


@pytest.fixture
def sample_app(app_factory):
    return app_factory()
