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


def test_the_abstention_tradeoff_only_hides_answers_above_the_folds_thresholds():
    import abstain_tradeoff as at

    fold = {"thresholds": {"false": 0.5, "true": 0.3},
            "live_items": [
                {"question": "Who won?", "confidence": 0.9, "judged": "correct"},
                {"question": "Who won?", "confidence": 0.55, "judged": "wrong"},
                {"question": "Who won this week?", "confidence": 0.4, "judged": "correct"},  # timed: 0.3
                {"question": "Who lost?", "confidence": 0.45, "judged": "abstained"},
            ],
            "archive_items": [],
            "un_a_items": [{"question": "Who won?", "abstained": False, "confidence": 0.6},
                           {"question": "Who won?", "abstained": True, "confidence": 0.2}],
            "un_b_items": [{"question": "Who won this week?", "abstained": False, "confidence": 0.35}]}
    c = at.count([fold], 0.0)
    assert (c["live_right"], c["live_wrong"], c["live_abst"]) == (50.0, 25.0, 25.0)
    assert (c["a_abst"], c["b_abst"]) == (50.0, 0.0)
    c = at.count([fold], 0.11)  # untimed 0.61: the wrong answer and (a)'s 0.6 go; timed 0.41: 0.4 and 0.35 go
    assert (c["live_right"], c["live_wrong"], c["live_abst"]) == (25.0, 0.0, 75.0)
    assert (c["a_abst"], c["b_abst"]) == (100.0, 100.0)
    # as ask_quality reports them: the mean of each fold's percentage, not the pooled count
    other = {"thresholds": {"false": 0.5, "true": 0.3}, "live_items": [], "archive_items": [],
             "un_a_items": [{"question": "Who won?", "abstained": True, "confidence": 0.1}], "un_b_items": []}
    c = at.count([fold, other], 0.0)
    assert c["a_abst"] == 75.0 and c["a"] == 3 and c["live_right"] == 50.0 and c["b_abst"] == 0.0
    # delta 0 is the run itself: an answer shown at a confidence rounded below its threshold stays shown
    edge = {"thresholds": {"false": 0.500041, "true": 0.3}, "archive_items": [], "un_a_items": [], "un_b_items": [],
            "live_items": [{"question": "Who won?", "confidence": 0.5, "judged": "correct"}]}
    assert at.count([edge], 0.0)["live_right"] == 100.0
