"""A question's own time words ("this week") narrow it to the articles of that span."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from bot.corpus.article import Article
from bot.engines import timeframe
from bot.engines.answerer import ABSTAIN_MESSAGE, Answerer
from bot.index.cache import EmbeddingCache
from bot.index.sentence_index import SentenceIndex

DAY = 86400.0
NOW = datetime(2024, 3, 15, 12, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "question, days",
    [
        ("Which coach was fired this week?", 9),
        ("What did the Fed decide on Wednesday?", 9),
        ("Who won the race last weekend?", 16),
        ("What happened yesterday in Paris?", 3),
        ("How much did prices rise this month?", 35),
        ("Who was fired this week, a month after last month's vote?", 65),  # the longest span wins
        ("What did shoppers buy on Black Friday?", None),
        ("Who won Super Tuesday?", None),
        ("Who is the prime minister of Japan?", None),
        ("Which weekly magazine closed?", None),
        ("Which currency recently plummeted to a record low?", 35),
        ("According to a recent ranking, which is the most expensive city?", 35),
        ("Which nation has become the latest to legalise same-sex marriage?", 35),
        ("Which island nation plunged into chaos in recent days?", 9),
    ],
)
def test_window(question, days):
    got = timeframe.window(question)
    assert (got is None) if days is None else got == days * DAY


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2022/06/10", datetime(2022, 6, 10, tzinfo=timezone.utc)),
        ("09 January 2019", datetime(2019, 1, 9, tzinfo=timezone.utc)),
        ("Tue, 10 Jun 2003 04:00:00 GMT", datetime(2003, 6, 10, 4, tzinfo=timezone.utc)),
        ("2022-06-10T12:00:00+02:00", datetime(2022, 6, 10, 10, tzinfo=timezone.utc)),
    ],
)
def test_published_parses_the_dates_articles_carry(text, expected):
    assert timeframe.published(text) == expected.timestamp()


@pytest.mark.parametrize("text", [None, "", "   ", "not a date at all", "Updated 5 min ago", "March 5", "10:30",
                                  "Tuesday"])
def test_published_is_nan_when_unknown(text):
    assert math.isnan(timeframe.published(text))


def _day(days_before: float) -> str:
    return datetime.fromtimestamp(NOW - days_before * DAY, tz=timezone.utc).strftime("%Y-%m-%d")


OLD = Article.build(id="old", title="Lions fire head coach Dan Miller", date=_day(200),
                    text="The Lions fired head coach Dan Miller on Monday after a losing season.\n"
                         "Miller had coached the team for three years.")
NEW = Article.build(id="new", title="Bears fire head coach Tom Ortega", date=_day(2),
                    text="The Bears fired head coach Tom Ortega on Monday, the team said.\n"
                         "Ortega is the first coach fired this season.")
UNDATED = Article.build(id="undated", title="Harbour ferry timetable changes",
                        text="The harbour ferry will run every twenty minutes from April, the operator said.")


def _built(tmp_path_factory, articles) -> Answerer:
    from models.embedder import Embedder

    embedder = Embedder("minilm")
    ix = SentenceIndex(embedder, EmbeddingCache(tmp_path_factory.mktemp("emb"), embedder.name, embedder.dim))
    ix.build(articles, progress=False)
    return Answerer(ix)


@pytest.fixture(scope="module")
def answerer(tmp_path_factory):
    return _built(tmp_path_factory, [OLD, NEW, UNDATED])


def _cited(answer) -> set[str]:
    return {answer_article for answer_article in (s.article for s in answer.support)}


@pytest.mark.slow
def test_this_week_is_answered_from_this_weeks_article(answerer):
    a = answerer.answer("Which head coach was fired this week?", now=NOW)
    assert not a.abstained
    assert {answerer.index.articles[r].id for r in _cited(a)} == {"new"}
    assert "Ortega" in a.answer.splitlines()[0]


@pytest.mark.slow
def test_without_time_words_every_article_may_answer(answerer):
    a = answerer.answer("Which head coach did the Lions fire?", now=NOW)
    assert not a.abstained and answerer.index.articles[a.support[0].article].id == "old"


@pytest.mark.slow
def test_nothing_in_the_span_abstains_and_says_which_span(answerer):
    later = NOW + 60 * DAY  # both coaching articles are old by then
    a = answerer.answer("Which head coach did the Lions fire this week?", now=later)
    assert a.abstained and a.support == ()
    assert a.answer == "I couldn't find that in the articles I have from the last 9 days."
    assert a.answer != ABSTAIN_MESSAGE


@pytest.mark.slow
def test_an_undated_article_is_left_out_of_the_span_where_articles_carry_dates(answerer):
    """Nothing shows an undated article is from this week: where the scope holds dated articles, a
    question naming its time reads the dated ones of its span only."""
    visible, span = answerer.in_time("What changes this week for the ferry?", now=NOW + 400 * DAY)
    ids = [a.id for a, ok in zip(answerer.index.articles, visible) if ok]
    assert span == 9 * DAY and ids == []
    a = answerer.answer("What changes this week for the ferry?", now=NOW + 400 * DAY)
    assert a.abstained and "last 9 days" in a.answer
    undated_only = np.array([x.id == "undated" for x in answerer.index.articles])
    visible, _ = answerer.in_time("What changes this week for the ferry?", visible=undated_only, now=NOW + 400 * DAY)
    assert [x.id for x, ok in zip(answerer.index.articles, visible) if ok] == ["undated"]  # undated only: read


@pytest.mark.slow
def test_the_span_narrows_the_guilds_scope_not_widens_it(answerer):
    scope = [True, False, True]  # the guild cannot see "new"
    visible, _ = answerer.in_time("Which head coach was fired this week?", scope, now=NOW)
    assert list(visible) == [False, False, False]  # "old" is out of the span; "undated" out, as "old" is dated


@pytest.mark.slow
def test_the_span_follows_an_index_rebuilt_in_place(tmp_path):
    from models.embedder import Embedder

    embedder = Embedder("minilm")
    ix = SentenceIndex(embedder, EmbeddingCache(tmp_path, embedder.name, embedder.dim))
    ix.build([OLD], progress=False)
    a = Answerer(ix)
    ix.build([OLD, NEW, UNDATED], progress=False)  # in place: the answerer's arrays are one article long
    visible, _ = a.in_time("Which head coach was fired this week?", now=NOW)
    assert list(visible) == [False, True, False]  # "undated" out: two of the three carry dates


@pytest.mark.slow
def test_the_reader_prefers_the_latest_report(answerer):
    # No time words: both firings answer "which head coach was fired"; the newer report leads, and the
    # same question asked 200 days earlier leads with the report of that time.
    from bot.engines.answerer import READER_FEATURES

    q = "Which head coach was fired on Monday?"
    cands, X, _ = answerer.candidates(q, now=NOW)
    rec = {answerer.index.articles[c.article].id: X[i, READER_FEATURES.index("recency")] for i, c in enumerate(cands)}
    assert rec["new"] > 0.6 and rec["old"] < 1e-6 and rec["undated"] == 0.0
    assert answerer.index.articles[answerer.answer(q, now=NOW).support[0].article].id == "new"
    assert answerer.index.articles[answerer.answer(q, now=NOW - 198 * DAY).support[0].article].id == "old"


@pytest.mark.slow
def test_a_replayed_timed_question_answers_from_the_week_before_asked_at(answerer):
    # Replayed 198 days ago, "this week" is the week before then: the Lions' firing (200 days ago) answers,
    # and the Bears' (2 days ago, so after asked_at) is not read at all.
    asked = NOW - 198 * DAY
    a = answerer.answer("Which head coach was fired this week?", asked_at=asked)
    assert not a.abstained
    assert {answerer.index.articles[r].id for r in _cited(a)} == {"old"}
    assert "Miller" in a.answer.splitlines()[0]
    visible, span = answerer.in_time("Which head coach was fired this week?", asked_at=asked)
    assert span == 9 * DAY and list(visible) == [True, False, False]


@pytest.mark.slow
def test_a_replay_hides_later_articles_even_without_time_words(answerer):
    asked = NOW - 100 * DAY  # after the Lions' firing, before the Bears'
    a = answerer.answer("Which head coach did the Bears fire?", asked_at=asked)
    assert "new" not in {answerer.index.articles[r].id for r in _cited(a)}
    b = answerer.answer("Which head coach did the Bears fire?", asked_at=NOW)
    assert not b.abstained and answerer.index.articles[b.support[0].article].id == "new"


@pytest.mark.slow
def test_live_questions_keep_a_little_slack_for_date_stamps_ahead_of_the_clock(answerer):
    # Asked live, an article stamped a day ahead (a time zone east of UTC, a date-only stamp) is this week's;
    # replayed at the same instant, it had not been published yet.
    live, _ = answerer.in_time("Which head coach was fired this week?", now=NOW - 3 * DAY)
    replay, _ = answerer.in_time("Which head coach was fired this week?", asked_at=NOW - 3 * DAY)
    assert live[1] and not replay[1]


@pytest.mark.slow
def test_the_dated_share_is_read_after_an_index_rebuilt_in_place(answerer):
    """The index rebuilt in place with one more article: the undated rule reads the new dates (was a
    broadcast error: the dates of the build before)."""
    index = answerer.index
    extra = Article.build(id="extra", title="Ferry fares rise", text="Ferry fares rise by 5 percent on Monday.",
                          date=time.strftime("%Y-%m-%d", time.gmtime(NOW - DAY)))
    index.build(list(index.articles) + [extra], progress=False)
    try:
        visible, _ = answerer.in_time("What changes this week for the ferry?", now=NOW)
        assert len(visible) == len(index.articles)
        assert [a.id for a, ok in zip(index.articles, visible) if ok] == ["new", "extra"]
        a = answerer.answer("How much will ferry fares rise this week?", now=NOW)
        assert not a.abstained and "5 percent" in a.answer
    finally:
        index.build([a for a in index.articles if a.id != "extra"], progress=False)


# ------------------------------------------------------------------ a year the question names
@pytest.mark.parametrize(
    "question, expected",
    [
        ("Which film won five awards at the 2024 Golden Globes?", {2024}),
        ("Which state plans its first nuclear plant since 1989?", {1989}),
        ("Did prices rise between 1999 and 2001?", {1999, 2001}),
        ("Who won Euro 2024?", {2024}),
        ("Who paid $2024 for the ticket?", set()),  # a sum
        ("Did 2,024 people attend?", set()),  # a count
        ("Did support fall to 2024% or 2024.5 or 12024?", set()),  # a share, a decimal, a longer number
        ("What happened in 1850 or 2150?", set()),  # outside 1900-2099
        ("Who led the league in the 2024-25 season?", {2024, 2025}),
        ("Who won in 2019/20?", {2019, 2020}),
        ("What opens at 2000 GMT or at 1930 hours?", set()),  # clock times
        ("Which films of the 1990s won, before COVID-19?", set()),
        ("Which head coach was fired this week?", set()),
    ],
)
def test_years_are_the_years_a_question_names(question, expected):
    assert timeframe.years(question) == expected


def _utc(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "question, asked, expected",
    [
        ("Which movie won best picture at this year's Academy Awards?", "2025-03-05", {2025}),
        ("Which singer will launch a Las Vegas residency later this year?", "2022-01-02", {2022}),
        ("Which country elected its first female president THIS YEAR?", "2024-12-31T23:00:00", {2024}),
        ("What did this year's 2024 budget cut?", "2024-06-01", {2024}),
        ("Roughly how many babies were born in the US last year?", "2025-04-01", set()),  # this year's reports
        ("Where is the climate summit to be held next year?", "2022-11-20", set()),  # this year's plans
        ("Which of these coaches was fired this season?", "2022-10-01", set()),
    ],
)
def test_this_year_is_the_year_the_question_is_asked(question, asked, expected):
    assert timeframe.years(question, _utc(asked)) == expected
    assert timeframe.years(question) == ({2024} if "2024" in question else set())  # no clock, no "this year"
    assert timeframe.names_time(question) == ("this year" in question.lower())
    assert timeframe.years(question, 1e13) == ({2024} if "2024" in question else set())  # past year 9999


GLOBES_2023 = Article.build(
    id="globes23", title="Golden Globes: 'The Fabelmans' wins best drama", date="2023-01-11",
    text="'The Fabelmans' won best drama film at the Golden Globes on Tuesday, the ceremony's organisers said.")
GLOBES_2024 = Article.build(
    id="globes24", title="Golden Globes: 'Oppenheimer' wins best drama", date="2024-01-08",
    text="'Oppenheimer' won best drama film at the Golden Globes on Sunday, the ceremony's organisers said.")
PREVIEW_2025 = Article.build(
    id="preview25", title="Who will host next year's show",
    text="Nikki Glaser will host the 2025 Golden Globes, the organisers said.")


@pytest.fixture(scope="module")
def globes(tmp_path_factory):
    return _built(tmp_path_factory, [GLOBES_2023, GLOBES_2024, PREVIEW_2025])


def _scope_ids(answerer, question, visible=None, now=None):
    scope = answerer.year_scope(question, visible, now)
    return None if scope is None else [a.id for a, ok in zip(answerer.index.articles, scope) if ok]


@pytest.mark.slow
def test_a_question_naming_a_year_reads_that_years_articles(globes):
    """Published in the year, or naming it (an undated preview counts only by naming it)."""
    assert _scope_ids(globes, "Which film won best drama at the Golden Globes?") is None
    assert _scope_ids(globes, "Which film won best drama at the 2024 Golden Globes?") == ["globes24"]
    assert _scope_ids(globes, "Which film won best drama at the 2023 Golden Globes?") == ["globes23"]
    assert _scope_ids(globes, "Who hosts the 2025 Golden Globes?") == ["preview25"]
    assert _scope_ids(globes, "Which film won in 2023 or 2024?") == ["globes23", "globes24"]
    assert _scope_ids(globes, "Which film won best drama at the 2024 Golden Globes?",
                      np.array([True, False, True])) == []  # it narrows a guild's scope, never widens it


@pytest.mark.slow
def test_last_years_article_does_not_answer_for_this_year(globes):
    a = globes.answer("Which film won best drama at the 2024 Golden Globes?")
    assert not a.abstained and "Oppenheimer" in a.answer.splitlines()[0]
    assert {globes.index.articles[s.article].id for s in a.support} == {"globes24"}
    a = globes.answer("Which film won best drama at the 2023 Golden Globes?")
    assert not a.abstained and "Fabelmans" in a.answer.splitlines()[0]
    a = globes.answer("Which film won best drama at the 2022 Golden Globes?")
    assert a.abstained and a.support == ()
    assert a.answer == "I couldn't find that in the articles I have from or about 2022."
    visible, _ = globes.in_time("Which film won best drama at the 2022 Golden Globes?")
    assert not np.asarray(visible).any()  # what the benchmarks count as readable is what the answer reads


@pytest.mark.slow
def test_this_years_ceremony_is_read_from_the_year_it_is_asked_in(globes):
    """Asked in January 2024, "this year's" Golden Globes are 2024's; asked in 2023, 2023's (a member asking
    in March reads the year's articles, not last year's ceremony that matches word for word)."""
    q = "Which film won best drama at this year's Golden Globes?"
    assert _scope_ids(globes, q, now=_utc("2024-01-20")) == ["globes24"]
    a = globes.answer(q, now=_utc("2024-01-20"))
    assert not a.abstained and "Oppenheimer" in a.answer.splitlines()[0]
    a = globes.answer(q, asked_at=_utc("2023-02-01"))  # a replay: 2023's ceremony, the 2024 article unseen
    assert not a.abstained and "Fabelmans" in a.answer.splitlines()[0]
    a = globes.answer(q, now=_utc("2026-03-01"))
    assert a.abstained and a.answer == "I couldn't find that in the articles I have from or about 2026."
    assert not np.asarray(globes.in_time(q, now=_utc("2026-03-01"))[0]).any()
    # without a date of its own, "this year" is the clock's
    assert _scope_ids(globes, q) == _scope_ids(globes, q, now=time.time())


@pytest.mark.slow
def test_the_year_scope_follows_an_index_rebuilt_in_place(tmp_path_factory):
    grown = _built(tmp_path_factory, [GLOBES_2023])
    grown.index.build([GLOBES_2023, GLOBES_2024, PREVIEW_2025], progress=False)  # in place: it grew
    assert _scope_ids(grown, "Which film won best drama at the 2024 Golden Globes?") == ["globes24"]
    assert "Oppenheimer" in grown.answer("Which film won best drama at the 2024 Golden Globes?").answer
    shrunk = _built(tmp_path_factory, [GLOBES_2024, GLOBES_2023, PREVIEW_2025])
    shrunk.index.build([GLOBES_2023, PREVIEW_2025], progress=False)  # in place: the 2024 article is gone
    assert _scope_ids(shrunk, "Which film won best drama at the 2024 Golden Globes?") == []
    assert _scope_ids(shrunk, "Which film won best drama at the 2023 Golden Globes?") == ["globes23"]


@pytest.mark.slow
def test_without_time_words_the_year_is_only_a_word(globes, monkeypatch):
    monkeypatch.setattr(globes, "timeframes", False)
    assert _scope_ids(globes, "Which film won best drama at the 2022 Golden Globes?") is None
