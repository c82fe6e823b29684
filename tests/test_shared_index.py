"""INDEX_URL: bot processes answer /ask from one index in PostgreSQL (bot/index/shared.py), hold only a cache
of recent articles, and fall back to that cache when the index fails; on a real pgvector server
(tests/pgvector_server.py)."""

from __future__ import annotations

import logging
import time

import pytest

from bot.app import Precis
from bot.corpus.article import Article
from bot.handlers.core import Handlers
from tests.conftest import CountingEmbedder
from tests.pg_fixtures import pg_url  # noqa: F401 - a fixture
from tests.pgvector_server import pgvector_url  # noqa: F401 - a fixture

GUILD_A, GUILD_B = 11 << 22, 12 << 22
BRIDGE_Q = "How much did the harbour bridge in Quito cost?"


def bridge(guild: int | None = GUILD_A, key: str = "quito") -> Article:
    return Article.build(id=key, title="Harbour bridge reopens", guild_id=guild, date="2026-12-01",
                         url="https://news.example/quito-bridge", arrived=time.time(),
                         text="The harbour bridge in Quito reopened on Monday. It cost 40 million dollars. "
                              "The mayor called it a turning point for the port.")


def filler(i: int) -> Article:
    topics = ["orchard", "glacier", "violin", "lighthouse", "marathon", "volcano", "museum", "ferry"]
    t = topics[i % len(topics)]
    return Article.build(id=f"filler{i}", title=f"Notes on the {t} {i}", arrived=time.time() + i,
                         text=f"The {t} number {i} drew visitors on Sunday. Officials said the {t} would stay "
                              f"open through the winter. Attendance rose by {i + 3} percent.")


def titles(reply) -> set[str]:
    return {s.title for s in reply.supporting}


def said(reply) -> str:
    """What a member reads: the lines, then the supporting sentences."""
    return " ".join([ln.text for ln in reply.lines] + [s.text for s in reply.supporting]) or reply.text


@pytest.fixture
def two_processes(pgvector_url, settings_factory, memo_embedder):  # noqa: F811
    apps = []
    for _ in range(2):
        e = CountingEmbedder(memo_embedder)
        app = Precis(settings_factory(index_url=pgvector_url), embedder=e)
        app.load(progress=False)
        apps.append(app)
    yield apps
    for app in apps:
        app.close_models()


def test_an_article_one_process_adds_answers_in_the_other_in_its_own_server_only(two_processes):
    one, two = two_processes
    assert one.shared_index.written == 2 and two.shared_index.written == 0  # the sample corpus: written once
    h = Handlers(two)
    assert "Harbour bridge reopens" not in titles(h.ask(BRIDGE_Q, guild_id=GUILD_A))  # (its models load here)
    before = len(two.embedder.calls)
    one.add_articles([bridge()])
    assert "quito" not in {a.id for a in two.corpus.articles}  # the other process never loaded it
    t0 = time.monotonic()
    while True:
        ans = h.ask(BRIDGE_Q, guild_id=GUILD_A)
        if "Harbour bridge reopens" in titles(ans) or time.monotonic() - t0 > 2.0:
            break
        time.sleep(0.1)
    assert time.monotonic() - t0 <= 2.0, said(ans)
    assert ans.ok and "40 million dollars" in said(ans), said(ans)
    item = next(s for s in ans.supporting if s.title == "Harbour bridge reopens")
    assert item.article_id == "quito" and item.url == "https://news.example/quito-bridge" and item.date == "2026-12-01"
    assert "Harbour bridge reopens" not in titles(h.ask(BRIDGE_Q, guild_id=GUILD_B))
    assert "Harbour bridge reopens" not in titles(h.ask(BRIDGE_Q))  # a DM / the console: no server's articles
    # the other process embedded the questions only (one text a call), never the article
    assert all(n == 1 for n in two.embedder.calls[before:])
    assert h.summary(article="quito", guild_id=GUILD_A).ok  # read back from the index: not in this process
    assert not h.summary(article="quito", guild_id=GUILD_B).ok
    # another server whose feed brought the same article sees it too (a share, as the store records them)
    two.scopes.share("quito", GUILD_B)
    assert "Harbour bridge reopens" in titles(h.ask(BRIDGE_Q, guild_id=GUILD_B))
    about = h.about(GUILD_A).text
    assert "/ask index:" in about and "3 articles" in about and "this process wrote 0" in about


def test_the_cache_holds_the_newest_articles_and_the_index_the_rest(pgvector_url, settings_factory, memo_embedder):  # noqa: F811
    app = Precis(settings_factory(index_url=pgvector_url, cache_articles=4), embedder=memo_embedder)
    app.load(progress=False)
    app.add_articles([bridge(None)])
    app.add_articles([filler(i) for i in range(8)])
    held = {a.id for a in app.corpus.articles}
    assert len(held) <= 4 and "quito" not in held  # the oldest arrivals left this process's memory
    more = [filler(i) for i in range(8, 20)]  # more at once than the cache holds: all reach the index
    app.add_articles(more)
    assert len(app.corpus) <= 4 and all(app.shared_index.search().has(a.id) for a in more)
    h = Handlers(app)
    ans = h.ask(BRIDGE_Q)
    assert ans.ok and "40 million dollars" in said(ans) and "Harbour bridge reopens" in titles(ans), said(ans)
    # /summary of an article that left memory: read back from the index (its vectors too: nothing embedded)
    for which in ("quito", "harbour bridge"):
        s = h.summary(article=which)
        assert s.ok and s.title == "Harbour bridge reopens", s.text
        assert "The harbour bridge in Quito reopened on Monday." in [ln.text for ln in s.lines]
        assert s.supporting[0].article_id == "quito" and s.supporting[0].url == "https://news.example/quito-bridge"
    assert not h.summary(article="zeppelin hangar").ok
    app.close_models()


def test_retired_and_over_the_cap_articles_leave_the_index_for_every_process(two_processes):
    one, two = two_processes
    one.add_articles([bridge(GUILD_A)])
    h = Handlers(two)
    assert "Harbour bridge reopens" in titles(h.ask(BRIDGE_Q, guild_id=GUILD_A))
    assert one.retire_shared(now=time.time() + 29 * 86400) == 0
    assert one.retire_shared(now=time.time() + 31 * 86400) == 1  # past MAX_ARTICLE_AGE_DAYS (30)
    time.sleep(1.1)  # another process reads tombstones within a second
    assert "Harbour bridge reopens" not in titles(h.ask(BRIDGE_Q, guild_id=GUILD_A))
    # CORPUS_PATH articles never age; a server's oldest go past MAX_ARTICLES (per server, not bot-wide)
    one.settings = one.settings.model_copy(update={"max_articles": 2})
    arts = [Article(**{**filler(i).__dict__, "guild_id": GUILD_B}) for i in range(4)]
    one.add_articles(arts)
    assert one.retire_shared() == 2 + 0  # server B's two oldest; the two sample articles (no server) stay
    pg = two.shared_index.search()
    pg.refresh()
    assert not pg.has("filler0") and not pg.has("filler1") and pg.has("filler3")
    assert sum(pg.has(a.id) for a in two.corpus.articles if a.guild_id is None) == 2
    # "oldest" is by arrival, not by when it was indexed: an older article written later goes first
    late = Article(**{**filler(7).__dict__, "guild_id": GUILD_B, "arrived": time.time() - 3600})
    one.add_articles([late])
    assert one.retire_shared() == 1
    pg.refresh()
    assert not pg.has("filler7") and pg.has("filler2") and pg.has("filler3")
    # a scope built before another process wrote more still reads a time window (no shape error)
    short = pg.scope(GUILD_B)[:-1]
    assert pg.in_window(short, published_between=(0.0, 2e9)).shape == pg.published.shape


def test_an_unreachable_index_leaves_ask_on_the_cache_and_says_so(settings_factory, memo_embedder, caplog):
    with caplog.at_level(logging.ERROR, logger="bot.index.shared"):
        app = Precis(settings_factory(index_url="postgresql://postgres:s3cret@127.0.0.1:1/none"),
                     embedder=memo_embedder)
        app.load(progress=False)
        h = Handlers(app)
        ans = h.ask("What did Japan decide about travelers?")
        again = h.ask("What did Japan decide about travelers?")
    assert ans.ok and not ans.abstained and said(again) == said(ans)
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.index.shared"]
    assert len(lines) == 1 and "unavailable" in lines[0] and "s3cret" not in lines[0]
    about = h.about().text
    assert "unavailable" in about and "s3cret" not in about
    # articles past CACHE_ARTICLES are not dropped while the index cannot take them: they stay in memory
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        app.settings = app.settings.model_copy(update={"cache_articles": 3})
        app.add_articles([filler(i) for i in range(6)])
    assert len(app.corpus) == 8 and any("stay in memory" in r.getMessage() for r in caplog.records)


def test_an_index_lost_mid_question_answers_from_the_cache_and_comes_back(pgvector_url, settings_factory,  # noqa: F811
                                                                          memo_embedder, monkeypatch):
    import psycopg

    from bot.index import shared

    app = Precis(settings_factory(index_url=pgvector_url), embedder=memo_embedder)
    app.load(progress=False)
    h = Handlers(app)
    first = h.ask("What did Japan decide about travelers?")
    pg = app.shared_index.search()
    with psycopg.connect(pgvector_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pg.conn.info.backend_pid,))
    lost = h.ask("What did Japan decide about travelers?")
    assert lost.ok and said(lost) == said(first)  # answered from this process's corpus
    assert app.shared_index.error is not None and app.shared_index.search() is None
    monkeypatch.setattr(shared, "RETRY_S", 0.0)
    app.add_articles([bridge(None)])  # written when the index is back
    assert app.shared_index.error is None and app.shared_index.search().has("quito")
    app.close_models()


def test_a_bot_that_turns_on_index_url_writes_its_older_articles_to_the_index(pgvector_url, pg_url,  # noqa: F811
                                                                               settings_factory, memo_embedder):
    """Articles the database kept before INDEX_URL (or before this process's cache) are written to the index
    in the background at start, held in memory only up to CACHE_ARTICLES, and answer /ask."""
    from bot.sources.service import Sources
    from bot.store import Store

    store = Store(pg_url)
    arts = [bridge(None)] + [filler(i) for i in range(5)]
    store.add_fetched([{"id": a.id, "title": a.title, "text": "\n".join(a.sentences), "date": a.date,
                        "url": a.url, "arrived": a.arrived} for a in arts])
    app = Precis(settings_factory(database_url=pg_url, index_url=pgvector_url, cache_articles=2),
                 embedder=memo_embedder)
    app.load(progress=False)
    sources = Sources(app.settings, store, app=app)
    sources.sync_fetched()
    held = {a.id for a in app.corpus.articles}
    assert held >= {"filler3", "filler4"} and "quito" not in held  # only the newest two were read
    assert not app.shared_index.search().has("quito")
    assert sources.backfill_index() == 4 and sources.backfill_index() == 0  # the rest, once
    assert "quito" not in {a.id for a in app.corpus.articles}
    ans = Handlers(app).ask(BRIDGE_Q)
    assert "Harbour bridge reopens" in titles(ans) and "40 million dollars" in said(ans), said(ans)
    store.close()
    app.close_models()


def test_a_digest_reads_back_articles_that_left_memory(pgvector_url, settings_factory, memo_embedder):  # noqa: F811
    from bot.engines.digest import compose_digest

    app = Precis(settings_factory(index_url=pgvector_url, cache_articles=3), embedder=memo_embedder)
    app.load(progress=False)
    app.add_articles([bridge(GUILD_A)])
    app.add_articles([filler(i) for i in range(6)])
    assert "quito" not in {a.id for a in app.corpus.articles}
    ids = ["quito", "filler5"]
    d = compose_digest(app, ids, guild_id=GUILD_A)
    assert d.article_count == 2 and d.missing == 0
    told = {a.title for st in d.stories for a in st.articles} | {a.title for a in d.more}
    assert "Harbour bridge reopens" in told
    assert any("40 million dollars" in x.text or "Quito" in x.text for st in d.stories for x in st.sentences)
    other = compose_digest(app, ids, guild_id=GUILD_B)  # not server B's
    assert other.article_count == 1 and other.missing == 1
    app.close_models()


def test_the_batch_cli_never_writes_its_corpus_to_the_bots_index(pgvector_url, tmp_path):  # noqa: F811
    """`python -m bot ask --corpus …` answers from its own corpus in memory, even where INDEX_URL is set."""
    import json
    import os
    import subprocess
    import sys

    import psycopg

    from tests.conftest import REPO, SAMPLE

    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "1", "question": "What did Japan decide about travelers?"}) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "CORPUS_", "INDEX_", "DATABASE_"))}
    proc = subprocess.run([sys.executable, "-m", "bot", "ask", "--corpus", str(SAMPLE), "--questions", str(q)],
                          cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO), "DATA_DIR": str(tmp_path / "data"),
                                             "INDEX_URL": pgvector_url},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["answer"], proc.stdout
    with psycopg.connect(pgvector_url, autocommit=True) as c:
        assert c.execute("SELECT to_regclass('pix_articles')").fetchone()[0] is None


_WRITER = """
import json, sys, time
sys.path.insert(0, {repo!r})
from bot.app import Precis
from bot.config import Settings
from bot.corpus.article import Article
s = Settings(_env_file=None, index_url={url!r}, data_dir={data!r}, corpus_path={sample!r}, ask_phrase="rules")
app = Precis(s)
app.load(progress=False)
app.add_articles([Article.build(id="quito", title="Harbour bridge reopens", guild_id={guild}, date="2026-12-01",
                                arrived=time.time(), text={text!r})])
print(json.dumps({{"written": app.shared_index.written, "done": time.time()}}), flush=True)
sys.stdin.read()  # the parent closes it when it is done asking
app.close_models()
"""


def test_an_article_another_os_process_ingests_answers_here_within_two_seconds(pgvector_url, settings_factory,  # noqa: F811
                                                                               memo_embedder, tmp_path):
    """Two real processes on one index: a child process ingests an article for server A; this process, which
    never loads it, answers from it within 2 s of the child's write, in server A only."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO, SAMPLE

    here = Precis(settings_factory(index_url=pgvector_url), embedder=memo_embedder)
    here.load(progress=False)
    h = Handlers(here)
    assert "Harbour bridge reopens" not in titles(h.ask(BRIDGE_Q, guild_id=GUILD_A))  # warm: models loaded
    text = " ".join(bridge().sentences)
    code = _WRITER.format(repo=str(REPO), url=pgvector_url, data=str(tmp_path / "child"), sample=str(SAMPLE),
                          guild=GUILD_A, text=text)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-2000:]
        out = json.loads(line)
        assert out["written"] == 1  # the sample corpus was written here first; the child wrote its new article
        while True:
            ans = h.ask(BRIDGE_Q, guild_id=GUILD_A)
            if "Harbour bridge reopens" in titles(ans) or time.time() - out["done"] > 2.0:
                break
            time.sleep(0.1)
        assert time.time() - out["done"] <= 2.0 and "40 million dollars" in said(ans), said(ans)
        assert "quito" not in {a.id for a in here.corpus.articles}
        assert "Harbour bridge reopens" not in titles(h.ask(BRIDGE_Q, guild_id=GUILD_B))
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
        here.close_models()


def test_a_search_does_not_wait_for_this_process_writing_to_the_index(pgvector_url, memo_embedder):  # noqa: F811
    """An ingest that waits (here: another process holds the ingest lock) keeps its own connection: /ask's
    search in the same process answers meanwhile."""
    import threading

    import psycopg

    from bot.corpus.loader import load_corpus
    from bot.engines import timeframe
    from bot.index import pgindex
    from bot.index.pgindex import PgSearch
    from bot.index.sentence_index import SentenceIndex
    from tests.conftest import SAMPLE

    pg = PgSearch(pgvector_url, memo_embedder, published=timeframe.published)
    base = SentenceIndex(memo_embedder)
    base.build(list(load_corpus(SAMPLE).articles), progress=False)
    pg.ingest(base)
    extra = SentenceIndex(memo_embedder)
    extra.build([bridge(None)], progress=False)
    with psycopg.connect(pgvector_url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", (pgindex._INGEST_LOCK,))  # another process writing
        writer = threading.Thread(target=pg.ingest, args=(extra,), daemon=True)
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive()  # waiting for the other process
        found = []
        search = threading.Thread(target=lambda: found.extend(
            pg.search_candidates("What did Japan decide about travelers?", "other", 3)), daemon=True)
        search.start()
        search.join(timeout=3.0)
        answered = not search.is_alive()
        other.execute("COMMIT")  # (on failure: lets the stuck search finish)
        assert answered and found
    writer.join(timeout=30)
    assert not writer.is_alive() and pg.has("quito")
    pg.close()
