"""The index in PostgreSQL (bot/index/pgindex.py) against the in-memory retriever, on a real pgvector
server (tests/pgvector_server.py): the same candidates in the same order, with the same features."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from bot.corpus.article import Article
from bot.corpus.loader import load_corpus
from bot.engines import timeframe
from bot.engines.answerer import Answerer, Retriever, cue_kind
from bot.index.pgindex import PgSearch
from bot.index.sentence_index import SentenceIndex
from tests.conftest import SAMPLE
from tests.pgvector_server import pgvector_url  # noqa: F401 - a fixture

GUILD_A, GUILD_B = 11 << 22, 12 << 22

EXTRA = [
    Article.build(id="rail", title="Coastal rail line to reopen in May", date="2026-11-20",
                  text="The coastal rail line will reopen on May 4 after storm repairs, the operator said. "
                       "Engineers rebuilt 12 kilometres of track washed away in February. "
                       "Tickets go on sale next week."),
    Article.build(id="bridge", title="Harbour bridge reopens", date="2026-12-01",
                  text="The harbour bridge in Quito reopened on Monday. It cost 40 million dollars. "
                       "The mayor called it a turning point for the port."),
    Article.build(id="lib", title="City library extends its hours", date="2020-01-05",
                  text="The city library will stay open until 10 pm on weekdays. The council approved the plan "
                       "on Tuesday. Librarians welcomed the change."),
]
QUESTIONS = ["What did Japan decide about travelers?", "When will the coastal rail line reopen?",
             "How much did the harbour bridge cost?", "Who reported the travel ban?",
             "How many kilometres of track were rebuilt?", "Which city reopened a bridge?", "zzz qqq",
             "What did the council approve?", "Which country banned travelers from the US?"]


@pytest.fixture
def both(pgvector_url, memo_embedder):
    articles = list(load_corpus(SAMPLE).articles) + EXTRA
    index = SentenceIndex(memo_embedder)
    index.build(articles, progress=False)
    pg = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    assert pg.ingest(index) == len(articles)
    yield index, Retriever(index), pg
    pg.close()


def _same(mem, pgc, index, tie=5e-3):
    """The same candidates in the same order (two whose scores are within ``tie`` may swap or trade the
    last place: the dense side is float16 in memory and float32 in PostgreSQL), the same features."""
    assert len(pgc) == len(mem)
    assert [b.score for b in pgc] == pytest.approx([a.score for a in mem], abs=tie)
    scores = [a.score for a in mem]
    for i, (a, b) in enumerate(zip(mem, pgc)):
        if (a.article, a.position) != (b.article, b.position):
            assert any(abs(scores[i] - s) < tie for j, s in enumerate(scores) if j != i) or i == len(mem) - 1
    pairs = {(a.article, a.position): a for a in mem}
    for b in pgc:
        a = pairs.get((b.article, b.position))
        if a is None:
            continue
        assert b.sentence == (b.article << 12 | b.position) and a.text == b.text
        for f in ("coverage", "context", "article_coverage", "dense"):
            assert getattr(b, f) == pytest.approx(getattr(a, f), abs=5e-3), f
        assert (b.title, b.before) == (a.title, a.before)
        assert b.published == pytest.approx(a.published, nan_ok=True)


def test_the_postgresql_index_ranks_as_the_in_memory_one(both):
    index, mem, pg = both
    for q in QUESTIONS:
        _same(mem.search_candidates(q, cue_kind(q), 10), pg.search_candidates(q, cue_kind(q), 10), index)


def test_scope_and_time_window_narrow_it_alike(both):
    index, mem, pg = both
    visible = np.array([a.id != "bridge" for a in index.articles])
    before = timeframe.published("2026-11-25")
    between = (timeframe.published("2026-11-01"), timeframe.published("2026-12-31"))
    for q in QUESTIONS[:5]:
        for kw in ({"visible": visible}, {"published_before": before}, {"published_between": between},
                   {"visible": visible, "published_before": before}):
            m = mem.search_candidates(q, cue_kind(q), 5, **kw)
            p = pg.search_candidates(q, cue_kind(q), 5, **kw)
            _same(m, p, index)
            rows = {c.article for c in p}
            if "visible" in kw:
                assert index.articles.index(EXTRA[1]) not in rows
    assert pg.search_candidates("zzz", "other", 3, visible=np.zeros(len(index.articles), bool)) == []


def test_the_answerer_on_the_postgresql_index_answers_as_on_the_in_memory_one(both):
    index, _, pg = both
    mem, in_pg = Answerer(index), Answerer(index)
    in_pg.retriever = pg
    for q in QUESTIONS:
        a, b = mem.answer(q), in_pg.answer(q)
        assert (a.answer, a.abstained) == (b.answer, b.abstained)
    assert "40 million dollars" in in_pg.answer("How much did the harbour bridge cost?").answer
    art = index.articles.index(EXTRA[0])
    assert pg.article_text(art) == " ".join(index.articles[art].sentences)


def test_a_year_narrows_it_alike(both):
    """Which articles hold a word (their sentences or title), and so a question's year scope, read the same
    from PostgreSQL as in memory."""
    index, mem, pg = both
    for word in ("reopen", "Quito", "library", "Kazakh", "February", "the", "zzzq", "2020"):
        assert pg.articles_holding(word).tolist() == mem.articles_holding(word).tolist(), word
    assert pg.articles_holding("Quito").sum() == 1
    in_mem, in_pg = Answerer(index), Answerer(index)
    in_pg.retriever = pg
    for q in ("What did the council approve in 2020?", "What did the council approve in 2026?",
              "When will the coastal rail line reopen in 2026?", "What did the council approve?"):
        a, b = in_mem.year_scope(q, None), in_pg.year_scope(q, None)
        assert (a is None) == (b is None) and (a is None or a.tolist() == b.tolist()), q
        x, y = in_mem.answer(q), in_pg.answer(q)
        assert (x.answer, x.abstained) == (y.answer, y.abstained), q
    lib = index.articles.index(EXTRA[2])
    assert np.flatnonzero(in_pg.year_scope("What did the council approve in 2020?", None)).tolist() == [lib]
    # "this year" is the year it is asked in, alike in both homes
    in_2020 = datetime(2020, 6, 1, tzinfo=timezone.utc).timestamp()
    q = "What did the council approve this year?"
    assert np.flatnonzero(in_pg.year_scope(q, None, in_2020)).tolist() == [lib]
    assert in_mem.year_scope(q, None, in_2020).tolist() == in_pg.year_scope(q, None, in_2020).tolist()
    x, y = in_mem.answer(q, now=in_2020), in_pg.answer(q, now=in_2020)
    assert (x.answer, x.abstained) == (y.answer, y.abstained)


def test_two_processes_share_one_index_each_server_sees_its_own(pgvector_url, memo_embedder):
    """An article one process writes for server A answers in another process's search at once (it reads
    the index, it does not rebuild anything), in server A only; writing it again adds nothing."""
    one = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    two = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    base = SentenceIndex(memo_embedder)
    base.build(list(load_corpus(SAMPLE).articles), progress=False)
    assert one.ingest(base) == 2 and one.ingest(base) == 0
    local = Article.build(id="quito", title="Harbour bridge reopens", guild_id=GUILD_A,
                          text="The harbour bridge in Quito reopened on Monday. It cost 40 million dollars.")
    ix = SentenceIndex(memo_embedder)
    ix.build([local], progress=False)
    assert one.ingest(ix) == 1
    q = "How much did the Quito harbour bridge cost?"
    in_a = two.search_candidates(q, "number", 3, visible=two.scope(GUILD_A))
    assert in_a[0].title == "Harbour bridge reopens" and "It cost 40 million dollars." in [c.text for c in in_a]
    in_b = two.search_candidates(q, "number", 3, visible=two.scope(GUILD_B))
    assert in_b and all(c.title != "Harbour bridge reopens" for c in in_b)
    one.close(), two.close()


def test_a_search_between_refreshes_ignores_articles_written_since(pgvector_url, memo_embedder, monkeypatch):
    """Another process's articles appear at the next refresh (at most REFRESH_S later), never half-read:
    postings of articles this process has no numbers for yet are left out, not an IndexError."""
    from bot.index import pgindex

    monkeypatch.setattr(pgindex, "REFRESH_S", 3600.0)  # searches read no refresh until the test asks for one
    one = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    two = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    base = SentenceIndex(memo_embedder)
    base.build(list(load_corpus(SAMPLE).articles), progress=False)
    one.ingest(base)
    q = "How much did the harbour bridge in Quito cost?"
    assert two.search_candidates(q, "number", 3) == []  # written after its last refresh: nothing yet
    two.refresh()
    first = two.search_candidates(q, "number", 3)
    assert first and all(c.title != "Harbour bridge reopens" for c in first)
    more = SentenceIndex(memo_embedder)
    more.build(EXTRA, progress=False)
    one.ingest(more)
    stale = two.search_candidates(q, "number", 3)  # within REFRESH_S of the last refresh
    assert stale and all(c.article < 2 for c in stale)
    two.refresh()
    assert two.search_candidates(q, "number", 3)[0].title == "Harbour bridge reopens"
    one.close(), two.close()


def test_a_process_reading_the_index_a_few_rows_at_a_time_maps_every_article(both, pgvector_url, memo_embedder,
                                                                             monkeypatch):
    """Another process reads the articles' rows REFRESH_BATCH at a time (here 2, over five articles): each
    corpus id maps to its own article, with its own title, and it ranks as the writer does."""
    import bot.index.pgindex as pgindex

    index, _, pg = both
    monkeypatch.setattr(pgindex, "REFRESH_BATCH", 2)
    other = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    try:
        for a in index.articles:
            row = other.row_of(a.id)
            assert row == pg.row_of(a.id) and other.has(a.id)
            assert other._titles[row] == a.title
        assert other.row_of("no-such-article") is None
        for q in QUESTIONS:
            assert [(c.article, c.position, c.title) for c in other.search_candidates(q, cue_kind(q), 5)] == \
                [(c.article, c.position, c.title) for c in pg.search_candidates(q, cue_kind(q), 5)]
    finally:
        other.close()


def test_the_median_idf_is_the_in_memory_one(both):
    index, mem, pg = both
    assert pg._median_idf == pytest.approx(mem._median_idf, rel=1e-6)  # noqa: SLF001 - np.median of the idf


def test_the_per_article_columns_a_process_keeps_read_back_what_was_stored():
    """Titles as one UTF-8 buffer, corpus ids looked up by hash and then compared: ids whose hashes
    collide still map to their own articles, and an id never stored to none."""
    from bot.index.pgindex import _Keys, _Texts

    class Colliding(str):  # every one hashes alike
        def __hash__(self):
            return 7

    texts = _Texts()
    texts.extend(["Zürich's vote", None, ""])
    texts.extend(["東京 lockdown"])
    assert [texts[i] for i in range(len(texts))] == ["Zürich's vote", "", "", "東京 lockdown"]

    keys = _Keys()
    keys.extend(["a1", Colliding("b2"), Colliding("c3")])
    assert keys.get("a1") == 0
    keys.extend([Colliding("d4"), "e5"])  # appended after a lookup: sorted again
    assert [keys.get(Colliding(k)) for k in ("b2", "c3", "d4")] == [1, 2, 3]
    assert keys.get("e5") == 4 and keys.get(Colliding("zz")) is None and keys.get("zz") is None
    assert len(keys) == 5


def test_an_index_written_by_an_older_precis_says_its_terms_are_old(pgvector_url, memo_embedder, caplog):
    from bot.index.pgindex import TERMS_REVISION

    index = SentenceIndex(memo_embedder)
    index.build(list(load_corpus(SAMPLE).articles), progress=False)
    pg = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    assert pg.terms_revision == TERMS_REVISION
    pg.ingest(index)
    # the article's "United States" is written with the one term its short forms share
    assert pg.conn.execute("SELECT df FROM pix_terms WHERE term = 'usa'").fetchone()[0] > 0
    pg.conn.execute("DELETE FROM pix_meta")  # as an index written before pix_meta existed
    pg.close()
    with caplog.at_level("WARNING", logger="bot.index.pgindex"):
        old = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    try:
        assert old.terms_revision == "1"
        assert any("older Precis" in r.getMessage() for r in caplog.records)
    finally:
        old.close()
    caplog.clear()
    with caplog.at_level("WARNING", logger="bot.index.pgindex"):
        again = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)  # still old: warns again
    again.close()
    assert any("older Precis" in r.getMessage() for r in caplog.records)
