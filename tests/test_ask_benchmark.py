"""benchmarks/ask_quality.py counts a question as answerable only where the Answerer can read its answer."""

from __future__ import annotations

import sys

import pytest

from bot.corpus.article import Article
from bot.engines.answerer import Answerer
from bot.engines.timeframe import published
from bot.index.cache import EmbeddingCache
from bot.index.sentence_index import SentenceIndex
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import ask_quality as aq  # noqa: E402

ARTICLES = [
    Article.build(
        id="kilauea", title="Kilauea erupts again", date="2024-06-03",
        text="Kilauea began erupting on Monday in a remote area of Hawaii Volcanoes National Park.\n"
             "No homes are threatened, the observatory said.",
    ),
    Article.build(
        id="maunaloa", title="Mauna Loa's eruption creates rare dual eruption", date="2022-11-29",
        text="Mauna Loa erupted for the first time since 1984.\n"
             "Its neighbour Kilauea has been erupting since September 2021.",
    ),
]
Q = "Which volcano erupted in Hawaii this week?"


@pytest.fixture(scope="module")
def visible(tmp_path_factory):
    from models.embedder import Embedder

    emb = Embedder("minilm")
    ix = SentenceIndex(emb, EmbeddingCache(tmp_path_factory.mktemp("emb"), emb.name, emb.dim))
    ix.build(ARTICLES, progress=False)
    return aq.Visible(Answerer(ix))


def test_a_timed_question_is_answerable_only_from_its_own_span(visible):
    pat = aq.answer_pattern(["Kilauea"])
    in_week = published("2024-06-07")
    weeks_later = published("2024-07-30")
    # the week's article holds it: answerable either way
    assert visible.has(pat, in_week, Q) and visible.has(pat, in_week)
    # seven weeks on, only articles older than "this week" name Kilauea: the Answerer reads none of them for
    # this question, so it is not answerable (construction (c)), though the string is in the corpus
    assert visible.has(pat, weeks_later)
    assert not visible.has(pat, weeks_later, Q)
    # a question naming no time reads them all
    assert visible.has(pat, weeks_later, "Which volcano erupted in Hawaii?")
    # before any article was published nothing is answerable
    assert not visible.has(pat, published("2022-01-01"))
