"""A growing index: additions cost what they add and score exactly as a build from scratch."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from bot.corpus.article import Article
from bot.corpus.loader import load_corpus
from bot.index.postings import Postings, PostingsView, Rows
from bot.index.sentence_index import SentenceIndex
from tests.conftest import SAMPLE

WORDS = (
    "minister election storm flood market shares bank rate inflation court judge police protest vaccine "
    "hospital virus border troops rebels ceasefire oil prices energy climate summit trade tariff strike union "
    "school teachers students river bridge rail airport flights airline budget tax deficit council mayor city "
    "village farmers harvest drought fire wildfire coast ship port navy sanctions talks treaty museum art"
).split()
NAMES = "Kumano Tokyo Almaty Reuters Kazakhstan Japan China Biden Merkel Lagos Nairobi Lima".split()


def _article(rng: random.Random, i: int, tag: str = "a") -> Article:
    sents = []
    for _ in range(rng.randint(1, 7)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.5:
            words.insert(rng.randrange(1, len(words) + 1), rng.choice(NAMES))
        if rng.random() < 0.4:
            words.append(str(rng.randint(2, 5000)))
        sents.append(" ".join(words).capitalize() + ".")
    title = f"{rng.choice(NAMES)} {rng.choice(WORDS)} {rng.choice(WORDS)} {tag}{i}"
    return Article(id=f"{tag}-{i}", title=title, sentences=tuple(sents))


class HashEmbedder:
    """Deterministic unit vectors from the text (fast; these tests are about the lexical side)."""

    name, dim = "hash-test", 16

    def encode(self, texts, batch_size=64, progress=False):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            v = np.random.default_rng(sum(map(ord, t)) + len(t)).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


QUERIES = ["storm flood coast", "Kumano Tokyo market", "bank rate inflation 2020", "wildfire village farmers",
           "Japan China talks treaty", "zzzz unknown", "tax tax deficit", "Nairobi airport flights"]


def _grown(embedder, articles, steps, merge_between: bool) -> SentenceIndex:
    ix = SentenceIndex(embedder)
    ix.build(articles[: steps[0]], progress=False)
    for k in steps[1:]:
        nxt = SentenceIndex(embedder)
        nxt.build(articles[:k], progress=False, previous=ix)
        assert nxt.last_build["incremental"] == 1.0 and nxt.last_build["added_sentences"] > 0
        if merge_between:
            nxt.merge(wait=True)
        ix = nxt
    return ix


def _assert_same_scores(a: SentenceIndex, b: SentenceIndex) -> None:
    assert a.texts == b.texts and len(a.articles) == len(b.articles)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.sent_article, b.sent_article)
    for q in QUERIES:
        assert np.allclose(a.bm25_scores(q), b.bm25_scores(q), rtol=1e-5, atol=1e-6), q
        assert np.allclose(a.term_coverage(q), b.term_coverage(q)), q
        ta = (a.title_lex @ a.query_lex(q).T).toarray().ravel()
        tb = (b.title_lex @ b.query_lex(q).T).toarray().ravel()
        assert np.allclose(ta, tb, atol=1e-6), q
        ids_a = [a.vocab.get(t) for t in a.query_terms(q)]
        ids_b = [b.vocab.get(t) for t in b.query_terms(q)]
        assert [i is None for i in ids_a] == [i is None for i in ids_b]
        ka, kb = [i for i in ids_a if i is not None], [i for i in ids_b if i is not None]
        assert np.allclose(a.article_bm25(ka), b.article_bm25(kb), rtol=1e-5, atol=1e-6), q
    for r in range(len(a.articles)):
        la, lb = a.lex[a.rows(r)], b.lex[b.rows(r)]
        # term ids differ between the two builds (order of first sight): compare the similarity structure
        assert np.allclose((la @ la.T).toarray(), (lb @ lb.T).toarray(), atol=1e-6)
    assert a.median_idf() == pytest.approx(b.median_idf())


@pytest.mark.parametrize("merge_between", [False, True])
def test_a_grown_index_scores_exactly_as_one_built_from_scratch(merge_between):
    rng = random.Random(5)
    arts = [_article(rng, i) for i in range(60)]
    emb = HashEmbedder()
    grown = _grown(emb, arts, [10, 11, 25, 26, 40, 60], merge_between)
    scratch = SentenceIndex(emb)
    scratch.build(arts, progress=False)
    assert scratch.last_build["incremental"] == 0.0
    _assert_same_scores(grown, scratch)
    assert np.array_equal(grown.emb, scratch.emb) and np.array_equal(grown.title_emb, scratch.title_emb)


def test_bm25_is_bm25s_lucene():
    """Our query-time BM25 (over raw counts) is the library's: same scores as bm25s on the same terms."""
    import bm25s

    rng = random.Random(9)
    arts = load_corpus(SAMPLE).articles + [_article(rng, i) for i in range(40)]
    ix = SentenceIndex(HashEmbedder())
    ix.build(arts, progress=False)
    ref = bm25s.BM25()  # defaults: method="lucene", k1=1.5, b=0.75
    ref.index(ix.lexicon.terms(ix.texts), show_progress=False)
    for q in QUERIES + ["Kazakh citizenship released", "lockdown Tokyo economy cost"]:
        terms = [t for t in ix.query_terms(q) if t in ix.vocab]
        ours = ix.bm25_scores(q)
        want = np.asarray(ref.get_scores(terms), dtype=np.float32) if terms else np.zeros(len(ix))
        assert np.allclose(ours, want, rtol=1e-4, atol=1e-5), q


def test_the_version_still_answering_never_sees_the_next_ones_rows():
    rng = random.Random(2)
    arts = [_article(rng, i) for i in range(30)]
    emb = HashEmbedder()
    old = SentenceIndex(emb)
    old.build(arts[:20], progress=False)
    before = {q: old.bm25_scores(q) for q in QUERIES}
    cov = old.term_coverage("storm flood coast")
    new = SentenceIndex(emb)
    new.build(arts, progress=False, previous=old)
    new.merge(wait=True)
    assert np.shares_memory(new.emb, old.emb)  # one copy of the vectors
    for q in QUERIES:
        assert np.array_equal(old.bm25_scores(q), before[q]), q
    assert np.array_equal(old.term_coverage("storm flood coast"), cov)
    assert len(old) < len(new) and old.sent_article.max() == 19

    # Growing the *old* version again (not the newest) branches off: the newest one is not touched.
    other_arts = arts[:20] + [_article(rng, i, "b") for i in range(5)]
    branch = SentenceIndex(emb)
    branch.build(other_arts, progress=False, previous=old)
    scratch = SentenceIndex(emb)
    scratch.build(arts, progress=False)
    _assert_same_scores(new, scratch)
    scratch_b = SentenceIndex(emb)
    scratch_b.build(other_arts, progress=False)
    _assert_same_scores(branch, scratch_b)
    assert not branch.grew_from(new) and not new.grew_from(branch)  # the branch has its own lineage


def test_not_a_continuation_builds_from_scratch():
    rng = random.Random(3)
    arts = [_article(rng, i) for i in range(12)]
    emb = HashEmbedder()
    old = SentenceIndex(emb)
    old.build(arts[:8], progress=False)
    new = SentenceIndex(emb)
    new.build(arts[1:], progress=False, previous=old)  # the first article was retired
    assert new.last_build["incremental"] == 0.0 and not new.grew_from(old)
    scratch = SentenceIndex(emb)
    scratch.build(arts[1:], progress=False)
    _assert_same_scores(new, scratch)


# ------------------------------------------------------------------ stores
def _random_rows(rng: random.Random, k: int, vocab: int) -> list[list[int]]:
    return [[rng.randrange(vocab) for _ in range(rng.randint(0, 9))] for _ in range(k)]


def _dense(rows: list[list[int]], width: int) -> np.ndarray:
    m = np.zeros((len(rows), width), dtype=np.float32)
    for i, r in enumerate(rows):
        for t in r:
            m[i, t] += 1
    return m


def test_postings_columns_rows_and_merge_agree_with_a_dense_matrix():
    rng = random.Random(11)
    store = Postings()
    view: PostingsView | None = None
    all_rows: list[list[int]] = []
    for step in range(6):
        batch = _random_rows(rng, rng.randint(1, 40), 30 + 5 * step)
        view = store.append(view, batch)
        all_rows += batch
        if step == 2:
            assert store.merge(view)  # rows 0..m in the CSC, later ones scanned
    assert view is not None and view.n == len(all_rows)
    width = 60
    want = _dense(all_rows, width)
    assert np.array_equal(view.csr(width).toarray(), want)
    assert np.array_equal(view.csr(width, slice(3, 17)).toarray(), want[3:17])
    assert np.array_equal(view.csr(width, np.array([0, 5, 9])).toarray(), want[[0, 5, 9]])
    for ids in ([0], [3, 7, 59], list(range(0, 60, 4))):
        rows, which, vals = view.columns(ids)
        got = np.zeros_like(want)
        got[rows, np.asarray(ids)[which]] = vals
        mask = np.zeros(width, bool)
        mask[ids] = True
        assert np.array_equal(got, want * mask), ids
        assert np.array_equal(view.column_sum(ids), want[:, ids].sum(axis=1))
        assert np.array_equal(view.column_sum(ids, binary=True), (want[:, ids] > 0).sum(axis=1))
    with pytest.raises(ValueError):
        view.columns([3, 3])
    assert view.row_ids(4).tolist() == sorted(set(all_rows[4]))


def test_postings_merge_in_a_thread_while_reading():
    rng = random.Random(4)
    store = Postings()
    rows = _random_rows(rng, 3000, 500)
    view = store.append(None, rows)
    want = sp.csr_matrix(_dense(rows, 500))
    ids = [1, 2, 3, 50, 400]
    expected = np.asarray(want[:, ids].sum(axis=1)).ravel()
    worker = threading.Thread(target=store.merge, args=(view,))
    worker.start()
    for _ in range(20):
        assert np.array_equal(view.column_sum(ids), expected)
    worker.join()
    assert store._main[1] == view.n  # merged
    assert np.array_equal(view.column_sum(ids), expected)
    assert not view.needs_merge()


def test_rows_store_appends_in_place_and_forks_an_old_version():
    store = Rows((2,), np.float32)
    s1, v1 = store.append(0, np.ones((3, 2)))
    s2, v2 = s1.append(3, 2 * np.ones((2, 2)))
    assert s2 is s1 and np.shares_memory(v1, v2) and v2.shape == (5, 2)
    s3, v3 = s1.append(3, 5 * np.ones((1, 2)))  # from the old version: its own copy
    assert s3 is not s1 and not np.shares_memory(v3, v2)
    assert v2[3:].tolist() == [[2, 2], [2, 2]] and v3[3:].tolist() == [[5, 5]]


# ---------------------------------------------------------------- the app
def test_app_grows_its_index_and_answers_as_a_fresh_start(settings_factory, memo_embedder):
    from bot.app import Precis
    from bot.handlers.core import Handlers

    rng = random.Random(8)
    extra = [_article(rng, i, "feed") for i in range(12)]
    app = Precis(settings_factory(), embedder=memo_embedder)
    app.load(progress=False)
    for k in range(0, 12, 4):
        app.add_articles(extra[k : k + 4])
        assert app.index.last_build["incremental"] == 1.0
    fresh = Precis(settings_factory(), embedder=memo_embedder)
    fresh.load(progress=False)
    fresh.add_articles(extra)  # one addition, from the sample corpus's index
    scratch = SentenceIndex(memo_embedder)
    scratch.build(app.index.articles, progress=False)
    _assert_same_scores(app.index, scratch)
    h1, h2 = Handlers(app), Handlers(fresh)
    for q in ("What did Hideo Kumano estimate a Tokyo lockdown would cost?", "Which bank raised its rate?",
              "What happened to the farmers in the drought?", "Who confirmed that ethnic Kazakhs were released?"):
        a, b = h1.ask(q), h2.ask(q)
        assert a.ok == b.ok
        assert [(s.article_id, s.text) for s in a.supporting] == [(s.article_id, s.text) for s in b.supporting], q


def test_a_reload_reads_only_the_files_that_changed(tmp_path, monkeypatch):
    import os

    from bot.corpus import loader

    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"Headline {i}\nThe body of story {i} has one sentence.\n")
    (folder / "bad.jsonl").write_text("{not json\n")
    reads = []
    real = loader.load_file
    monkeypatch.setattr(loader, "load_file", lambda p: reads.append(p.name) or real(p))
    memo: dict = {}
    first = loader.load_corpus(folder, memo=memo)
    assert sorted(reads) == ["bad.jsonl", "f0.txt", "f1.txt", "f2.txt"] and len(first.articles) == 3
    reads.clear()
    again = loader.load_corpus(folder, memo=memo)
    assert reads == [] and [a.id for a in again.articles] == [a.id for a in first.articles]
    assert [str(i) for i in again.issues] == [str(i) for i in first.issues]  # the broken file is still reported
    (folder / "f1.txt").write_text("Headline 1\nThe body of story 1 changed, and it is longer now.\n")
    st = (folder / "f1.txt").stat()
    os.utime(folder / "f1.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    (folder / "f3.txt").write_text("Headline 3\nA new file arrived.\n")
    (folder / "f0.txt").unlink()
    third = loader.load_corpus(folder, memo=memo)
    assert sorted(reads) == ["f1.txt", "f3.txt"]
    assert sorted(a.title for a in third.articles) == ["Headline 1", "Headline 2", "Headline 3"]
    assert folder / "f0.txt" not in memo
