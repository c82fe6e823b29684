"""/ask's reranker: loading a cross-encoder, the fusion with the reader, its fallbacks, support that supports.

No trained weights are shipped (the one trained here measured no better than the reader on held-out
years: docs/models.md "The reranker"), so a tiny randomly initialised BERT cross-encoder is built in a fixture
from the bundled MiniLM's tokenizer; no network, no ../shared data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from bot.corpus.article import Article
from bot.engines.answerer import Answerer
from bot.index.cache import EmbeddingCache
from bot.index.sentence_index import SentenceIndex
from models import registry
from models.registry import ModelUnavailable, resolve
from models.reranker import Reranker, is_off, open_reranker, pair

pytestmark = pytest.mark.slow

RAIL = Article.build(
    id="rail-local",
    title="Coastal rail line to reopen after storm repairs",
    date="2019-01-20",
    text=(
        "Engineers have finished rebuilding the sea wall that carries the coastal rail line past Dawlish.\n"
        "The coastal rail line will reopen on March 4, Network Rail said on Sunday.\n"
        "Storms in January washed away 80 metres of track and left the line hanging over the sea.\n"
        "Buses will replace trains until the reopening."
    ),
)
KAZAKH_Q = "How many Kazakh citizens had China detained?"


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A 2-layer BERT with one output logit, random weights, the bundled MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-reranker")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve("minilm", "embedder").path).save_pretrained(folder)
    return folder


def test_a_cross_encoder_folder_loads_offline_and_scores(tiny_cross_encoder):
    r = Reranker(str(tiny_cross_encoder), precision="float32")
    items = [("The coastal rail line will reopen on March 4.", RAIL.title, ""), ("Buses will replace trains.", "", "")]
    s = r.score("When will the coastal rail line reopen?", items)
    assert s.shape == (2,) and s.dtype == np.float32 and np.isfinite(s).all()
    assert np.array_equal(s, r.score("When will the coastal rail line reopen?", items))  # deterministic
    assert r.score("q", []).shape == (0,)
    assert r.path == "torch-float32" and "tiny-reranker" in r.describe()
    # the paths the embedder takes: bf16 where native, else int8; both give finite scores
    assert np.isfinite(Reranker(str(tiny_cross_encoder), precision="int8").score("q?", items)).all()
    assert Reranker(str(tiny_cross_encoder)).path in ("torch-bfloat16", "torch-int8")
    assert open_reranker(str(tiny_cross_encoder)) is open_reranker(str(tiny_cross_encoder))  # once per process


def test_the_input_keeps_the_sentence_and_cuts_the_context(tiny_cross_encoder):
    a, b = pair(" When? ", "It reopens on March 4.", "Rail line", "x " * 400)
    assert a == "When?" and b.startswith("It reopens on March 4. || Rail line | x")
    assert pair("q", "S.") == ("q", "S.")
    r = Reranker(str(tiny_cross_encoder), precision="float32")
    enc = r.tokenizer(*pair("When will it reopen?", "The line will reopen on March 4.", "T", "word " * 300),
                      truncation="only_second", max_length=r.max_length)
    text = r.tokenizer.decode(enc["input_ids"])
    assert len(enc["input_ids"]) == r.max_length and "march 4" in text  # the context was cut, not the sentence


def test_a_classifier_with_several_labels_is_refused(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=3)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(resolve("minilm", "embedder").path).save_pretrained(tmp_path)
    with pytest.raises(ModelUnavailable, match="3 output labels"):
        Reranker(str(tmp_path))


def test_names_off_and_unbuilt_weights(tmp_path, monkeypatch):
    assert is_off("off") and is_off("") and is_off(" OFF ") and not is_off("precis-reranker")
    with pytest.raises(ModelUnavailable):
        resolve("precis-reranker", "embedder")  # a reranker, not an embedder
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelUnavailable, match="training/reranker.py"):
        resolve("precis-reranker", "reranker")
    with pytest.raises(ModelUnavailable):
        Reranker(str(tmp_path / "nonexistent"))


def _index(embedder, tmp_path, articles):
    ix = SentenceIndex(embedder, EmbeddingCache(tmp_path / "cache", embedder.name, embedder.dim))
    ix.build(articles, progress=False)
    return ix


@pytest.fixture
def sample_articles():
    from bot.corpus.loader import load_corpus

    root = Path(__file__).resolve().parents[1]
    return list(load_corpus(root / "bot" / "data" / "sample_corpus.txt").articles)


class Prefers:
    """A reranker that is sure of one sentence (holding ``needle``) and doubts the rest."""

    def __init__(self, needle: str) -> None:
        self.needle, self.calls, self.seen = needle, 0, []

    def score(self, question, items):
        self.calls += 1
        self.seen.append(items)
        return np.array([6.0 if self.needle in s else -6.0 for s, _, _ in items], dtype=np.float32)


def test_the_rerankers_score_moves_a_sentence_to_the_top(memo_embedder, tmp_path, sample_articles):
    ix = _index(memo_embedder, tmp_path, [*sample_articles, RAIL])
    today = Answerer(ix).answer(KAZAKH_Q)
    assert "29 Kazakh citizens" in today.support[0].text
    # a sentence among the retriever's best 10 that today's reader does not put first: the reranker's conviction
    # brings it up
    pool = Answerer(ix).retriever.search(KAZAKH_Q, Answerer.RERANK_POOL)
    target = next(c.text for c in pool[3:] if c.sentence != today.support[0].sentence)
    pick = Prefers(target)
    reranked = Answerer(ix, reranker=pick).answer(KAZAKH_Q)
    assert target in reranked.support[0].text
    assert pick.calls == 1 and len(pick.seen[0]) == Answerer.RERANK_POOL  # the retriever's best 10, scored once
    title, before = pick.seen[0][0][1], pick.seen[0][0][2]
    assert title and isinstance(before, str)  # each sentence is read with its title and the sentence before


def test_support_that_does_not_bear_on_the_question_is_not_shown(memo_embedder, tmp_path, sample_articles):
    ix = _index(memo_embedder, tmp_path, [*sample_articles, RAIL])
    ans = Answerer(ix).answer("When will the coastal rail line reopen?", k=3)
    assert not ans.abstained and "March 4" in ans.support[0].text
    titles = {ix.articles[s.article].title for s in ans.support}
    assert titles == {RAIL.title}, [s.text for s in ans.support]  # nothing about Japan's travel ban
    assert all(s.score - ans.support[0].score >= np.log(Answerer.SUPPORT_MIN_ODDS) for s in ans.support)


class Broken:
    def __init__(self, exc: Exception | None = None, scores=None) -> None:
        self.exc, self.scores, self.calls = exc, scores, 0

    def score(self, question, items):
        self.calls += 1
        if self.exc is not None:
            raise self.exc
        return self.scores[: len(items)]


@pytest.mark.parametrize(
    "broken",
    (Broken(RuntimeError("weights corrupted")), Broken(scores=np.array([np.nan] * 40)), Broken(scores=np.zeros(1))),
)
def test_a_failing_reranker_leaves_todays_ranking(memo_embedder, tmp_path, sample_articles, broken, caplog):
    ix = _index(memo_embedder, tmp_path, [*sample_articles, RAIL])
    today = Answerer(ix).answer(KAZAKH_Q)
    failing = Answerer(ix, reranker=broken)
    with caplog.at_level(logging.WARNING):
        first = failing.answer(KAZAKH_Q)
        second = failing.answer(KAZAKH_Q)
    assert broken.calls >= 1
    assert first.answer == second.answer == today.answer
    assert [s.sentence for s in first.support] == [s.sentence for s in today.support]
    assert first.confidence == today.confidence
    assert sum("reranker failed" in r.getMessage() for r in caplog.records) == 1  # one log line, not one per question


def test_off_by_default_and_about_says_which_ranking_runs(app_factory):
    from bot.handlers.core import Handlers

    app = app_factory()
    assert app.reranker is None
    assert "/ask reranker: off" in Handlers(app).about().text
    app.preload_reranker()  # nothing to load: no error


def test_missing_weights_fall_back_with_one_log_line_and_about_says_so(app_factory, tmp_path, caplog):
    from bot.handlers.core import Handlers

    off = app_factory(ask_reranker="off")
    with caplog.at_level(logging.WARNING):
        missing = app_factory(ask_reranker=str(tmp_path / "no-such-weights"))
        a = missing.answerer.answer(KAZAKH_Q)
        b = missing.answerer.answer(KAZAKH_Q)
    want = off.answerer.answer(KAZAKH_Q)
    assert a.answer == b.answer == want.answer and a.confidence == want.confidence
    assert sum(r.levelno >= logging.WARNING for r in caplog.records) == 1, [r.getMessage() for r in caplog.records]
    assert "/ask reranker: unavailable" in Handlers(missing).about().text


def test_broken_weights_folder_falls_back(app_factory, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    app = app_factory(ask_reranker=str(folder))
    want = app_factory(ask_reranker="off").answerer.answer("What did Japan decide about travelers?")
    got = app.answerer.answer("What did Japan decide about travelers?")
    assert got.answer == want.answer
    assert app.reranker.error and "unavailable" in app.reranker_state()


def test_an_app_with_a_reranker_loads_it_at_start_and_uses_it(app_factory, tiny_cross_encoder):
    from bot.handlers.core import Handlers

    app = app_factory(ask_reranker=str(tiny_cross_encoder))
    app.preload_reranker()
    assert app.reranker.loaded and app.reranker.error is None
    assert "tiny-reranker" in Handlers(app).about().text
    ans = app.answerer.answer(KAZAKH_Q)
    assert app.answerer.reranker is not None and ans.support  # ranked with it (random weights: no claim on order)
