"""Shared fixtures: the real bundled embedder (loaded once), apps pointed at tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def embedder():
    from models.embedder import Embedder

    return Embedder("minilm", device="cpu")


@pytest.fixture
def counting_embedder(embedder):
    return CountingEmbedder(embedder)


@pytest.fixture
def settings_factory(tmp_path, monkeypatch):
    from bot.config import Settings

    # Settings read the environment and .env: keep the developer's own out of tests.
    for key in list(os.environ):
        if key.startswith(("DISCORD_", "CORPUS_", "DATA_DIR", "SUMMARY_", "EMBED_", "MODEL_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)

    def make(**overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("corpus_path", SAMPLE)
        return Settings(_env_file=None, **overrides)

    return make


@pytest.fixture
def app_factory(settings_factory, embedder):
    from bot.app import Precis

    def make(embedder_=None, **overrides):
        app = Precis(settings_factory(**overrides), embedder=embedder_ or embedder)
        app.load(progress=False)
        return app

    return make


@pytest.fixture
def sample_app(app_factory):
    return app_factory()
