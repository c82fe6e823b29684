"""The embedder's speed options keep its vectors: precision, parallel batches, order."""

from __future__ import annotations

import numpy as np
import pytest

from bot.corpus.loader import load_corpus
from models.registry import ModelUnavailable
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def texts():
    arts = load_corpus(SAMPLE).articles
    return [s for a in arts for s in a.sentences] + [a.title for a in arts] + ["Short.", "x " * 400]


def test_parallel_batches_keep_order_and_vectors(embedder, texts):
    from models.embedder import Embedder

    two = Embedder("minilm", device="cpu", precision=embedder.precision, workers=2)
    one = Embedder("minilm", device="cpu", precision=embedder.precision, workers=1)
    a = two.encode(texts, batch_size=8)
    b = one.encode(texts, batch_size=8)
    assert a.shape == (len(texts), 384)
    assert np.allclose(a, b, atol=1e-6)
    # Each row is its own text's vector, not a neighbour's after the length sort.
    single = np.stack([one.encode([t])[0] for t in texts[:5]])
    assert np.all(np.sum(single * a[:5], axis=1) > 0.999)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)


def test_reduced_precision_stays_close_to_float32(texts):
    from models.embedder import Embedder

    fp32 = Embedder("minilm", device="cpu", precision="float32")
    auto = Embedder("minilm", device="cpu", precision="auto")
    assert fp32.precision == "float32" and auto.precision in {"float32", "bfloat16"}
    assert auto.name == fp32.name  # same cache: the vectors agree to a cosine of 0.999
    cos = np.sum(fp32.encode(texts) * auto.encode(texts), axis=1)
    assert cos.min() > 0.999
    int8 = Embedder("minilm", device="cpu", precision="int8")
    assert int8.name != fp32.name  # int8 vectors move further: their own cache


def test_unknown_precision_is_a_clear_error():
    from models.embedder import Embedder

    with pytest.raises(ModelUnavailable, match="precision 'fp8'"):
        Embedder("minilm", device="cpu", precision="fp8")
