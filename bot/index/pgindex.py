"""/ask's search with the index in PostgreSQL: pgvector for the dense side, BM25 from postings tables.

:class:`PgSearch` serves the same call as :class:`bot.index.search.Retriever` (:class:`SentenceSearch`:
``search_candidates`` and ``article_text``, plus ``in_window``), with the same fusion and features, but
the sentences, their vectors and their terms live in PostgreSQL. A process holds only each article's
few numbers (its publication time, sentence count, body length, title and guild: tens of bytes an
article) and the corpus statistics, not the sentences or their vectors.

How it keeps the in-memory retriever's answers. The retriever scores *every* sentence and z-normalises
each evidence array over the whole corpus (:func:`bot.index.search._zmax`); here:

* BM25 over sentences, article BM25 and title TF-IDF are zero except on rows holding a query term, so
  their mean, standard deviation and maximum over the whole corpus come exactly from the matching
  postings (fetched by term from ``pix_post``: each term's list of sentences, of article bodies and of
  titles, as packed arrays, one row per term and ingest batch).
* The dense cosine's mean and variance over all sentences are ``q·s/n`` and ``qᵀMq/n - mean²`` from
  the sum ``s`` and the second-moment matrix ``M`` of the sentence vectors (kept in ``pix_stats``,
  updated by each ingest); its maximum is the nearest neighbour (HNSW, inner product). Titles alike.
* Candidates: the best :data:`POOL` sentences by BM25 and by cosine within the asker's scope, plus the
  sentences of the best :data:`TOP_ARTICLES` articles by article evidence; each is then scored as the
  retriever scores it (with its neighbours' fused scores), and the best k returned with the
  :class:`Candidate` features.

Where it differs from the in-memory retriever: the candidate set is not every sentence (a sentence
outside it cannot be returned); the corpus-wide best cosine comes from HNSW (approximate); the dense
side is float32 against a float16 query where memory multiplies float16 rows; an article's sentences
past the first :data:`MAX_SENTENCES` are not indexed; pgvector 0.8 or later (iterative index scans).

Vectors are stored rounded to float16, as the in-memory index holds them. Article ids are dense
(0, 1, ...), so a scope is still one bool per article (``visible``); sentence ids are
``article << 12 | position`` (an article's first :data:`MAX_SENTENCES` sentences are indexed).

Measured against the in-memory retriever by ``benchmarks/pg_parity.py``. The bot serves /ask from it when
``INDEX_URL`` is set (:mod:`bot.index.shared`): besides searching, it maps corpus ids to its article ids
(:meth:`PgSearch.row_of`), reads articles back whole (:meth:`PgSearch.load_articles`) and retires them by
tombstone (``pix_gone``: :meth:`PgSearch.retire_older`, :meth:`PgSearch.cap_per_guild`; a retired article's rows and statistics stay, no scope shows it).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import numpy as np

from .search import (
    _CAP, _DATE, _HOW, _NUM, _NUMBER_WORDS, _SENTENCE_END, _WORD, QUESTION_WORDS, Candidate, Support, Weights,
    _ranked, query_words, window_mask,
)
from .sentence_index import BM25_B, BM25_K1, Lexicon, SentenceIndex, aliases

log = logging.getLogger(__name__)

MAX_SENTENCES = 4096  # sentence id = article << 12 | position
SHIFT = 12
POOL = 100  # best sentences by BM25 and by cosine taken as candidates
TOP_ARTICLES = 10  # articles whose every sentence is a candidate
TITLE_POOL = 300  # articles whose title cosine is read (the best by the rest of the article evidence)
EXACT_TITLES = 5_000  # visible articles up to this many: the title cosine of every one (no HNSW)
EXACT_SCAN = 50_000  # visible sentences up to this many: the cosine is computed for all of them (no HNSW)
FRAGMENT, HAS_DATE, HAS_NUM_WORD = 1, 2, 4
REFRESH_S = 1.0  # a search reads what other processes added at most this long ago
REFRESH_BATCH = 20_000  # articles' rows turned into Python objects at once when a process reads the index
MAX_CACHED_DFS = 100_000  # term document frequencies a process keeps between writes (~10 MB at most)
NORM_DRIFT = 0.02  # title norms are computed again when the corpus has grown by this share

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS pix_terms (id serial PRIMARY KEY, term text UNIQUE NOT NULL, "
    "df bigint NOT NULL DEFAULT 0, art_df bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS pix_articles (id bigint PRIMARY KEY, key text UNIQUE NOT NULL, "
    "published double precision, guild bigint NOT NULL DEFAULT 0, title text NOT NULL, n_sent int NOT NULL, "
    "body_len real NOT NULL, title_vec vector({dim}) NOT NULL, title_terms int[] NOT NULL, url text, date text, arrived double precision, ageless boolean NOT NULL "
    "DEFAULT false)",
    # retired articles (a tombstone each, in the order retired): no scope shows them
    "CREATE TABLE IF NOT EXISTS pix_gone (seq bigserial PRIMARY KEY, id bigint UNIQUE NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pix_sentences (id bigint PRIMARY KEY, article bigint NOT NULL, "
    "text text NOT NULL, vec vector({dim}) NOT NULL, terms int[] NOT NULL, caps int[] NOT NULL, "
    "nums int[] NOT NULL, flags smallint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pix_sentences_article ON pix_sentences (article)",
    # postings lists as blobs: one row per (list, term, ingest batch); a list is rows (int64), counts (float32)
    # and, for sentences, their lengths (float32), each array whole, in that order
    "CREATE TABLE IF NOT EXISTS pix_post (list smallint NOT NULL, term int NOT NULL, data bytea NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pix_post_term ON pix_post (list, term)",
    "CREATE TABLE IF NOT EXISTS pix_stats (id int PRIMARY KEY, n_sent bigint NOT NULL, tokens double precision "
    "NOT NULL, n_art bigint NOT NULL, art_len double precision NOT NULL, vec_sum bytea NOT NULL, vec_m2 bytea "
    "NOT NULL, title_sum bytea NOT NULL, title_m2 bytea NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pix_articles_vec ON pix_articles USING hnsw (title_vec vector_ip_ops)",
    # what wrote the index: "terms" = TERMS_REVISION when every article's terms were taken as today
    "CREATE TABLE IF NOT EXISTS pix_meta (key text PRIMARY KEY, value text NOT NULL)",
]
# How articles become terms; written into pix_meta by the process that creates the index. 2: the United
# States' short forms are one term; 3: a phrasal verb is also its news noun ("locked down" + "lockdown"; both
# bot.index.sentence_index.aliases). An index written before keeps its articles' old terms (a question's "US"
# then misses their "US" and "U.S.", its "lockdown" their "locked down"): a warning says so.
TERMS_REVISION = "3"
OLD_TERMS_WARNING = (
    "the index in %s was written by an older Precis (terms revision %s, today %s): its older articles keep "
    "their old terms, so a question misses words written another way there (\"US\" and \"U.S.\", \"lockdown\" "
    "and \"locked down\"); to rebuild it, stop every process, drop the pix_* tables and start again (the "
    "vectors are kept in the shared vector store)")
# columns an index written before them lacks (added when missing: ALTER TABLE takes an exclusive lock, which
# would queue every reader behind another process's ingest, even with IF NOT EXISTS)
ADDED_COLUMNS = {
    "url": "text",  # what a reply shows of an article: its link and date, as the corpus has them
    "date": "text",
    "arrived": "double precision",  # when it reached the bot (retirement by age, the per-server cap)
    "ageless": "boolean NOT NULL DEFAULT false",  # never retired by age (CORPUS_PATH articles)
}
HNSW = "CREATE INDEX IF NOT EXISTS pix_sentences_vec ON pix_sentences USING hnsw (vec vector_ip_ops)"
SENTENCES, BODIES, TITLES = 0, 1, 2  # pix_post's lists
_SCHEMA_LOCK = 0x70697830  # advisory lock: one process at a time creates the tables
_INGEST_LOCK = 0x70697831  # advisory lock: one ingest at a time (ids and statistics)
_GONE_LOCK = 0x70697832  # advisory lock: one tombstone writer at a time (pix_gone's seq in commit order)


def _pack(rows: list[tuple], with_len: bool) -> list[tuple[int, bytes]]:
    """(term, row, count[, length]) entries -> one packed blob per term."""
    if not rows:
        return []
    arr = np.array(rows, dtype=np.float64)
    order = np.lexsort((arr[:, 1], arr[:, 0]))
    arr = arr[order]
    terms, starts = np.unique(arr[:, 0].astype(np.int64), return_index=True)
    ends = np.append(starts[1:], len(arr))
    out = []
    for t, a, b in zip(terms.tolist(), starts.tolist(), ends.tolist()):
        part = arr[a:b]
        blob = part[:, 1].astype(np.int64).tobytes() + part[:, 2].astype(np.float32).tobytes()
        if with_len:
            blob += part[:, 3].astype(np.float32).tobytes()
        out.append((t, blob))
    return out


class _Texts:
    """A column of strings kept as one UTF-8 buffer and offsets (~9 B an entry besides its text, where a
    list of str costs ~57): the titles of every article in the index, which a process keeps."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._off = np.zeros(1, np.int64)

    def __len__(self) -> int:
        return self._off.size - 1

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < self._off.size - 1:
            raise IndexError(i)
        return self._buf[self._off[i]: self._off[i + 1]].decode("utf-8")

    def extend(self, texts) -> None:
        parts = [(t or "").encode("utf-8") for t in texts]
        if parts:
            self._off = np.concatenate([self._off, self._off[-1] + np.cumsum([len(b) for b in parts])])
            self._buf += b"".join(parts)


class _Keys:
    """Each article's corpus id (Article.id) -> its dense id here, for every article in the index: the ids
    as :class:`_Texts` and their ``hash()`` sorted beside the rows (~24 B an article besides its text,
    where a dict of str to int costs ~120). Lookups compare the id itself, so a hash collision cannot
    map one article to another. Safe to use from several threads (a refresh extends it while another
    thread's scope looks ids up)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = _Texts()
        self._hashes: list[np.ndarray] = []  # per appended batch, in row order
        self._sorted = np.zeros(0, np.int64)
        self._rows = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def extend(self, keys: list[str]) -> None:
        """Append ``keys`` as the next rows (dense ids ``len(self)``, ``len(self) + 1``, ...)."""
        if keys:
            hashes = np.fromiter((hash(k) for k in keys), np.int64, len(keys))
            with self._lock:
                self._ids.extend(keys)
                self._hashes.append(hashes)

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._hashes:  # new rows since the last lookup: sort once (a search's lookups come in bursts)
                h = np.concatenate([self._sorted, *self._hashes])
                rows = np.concatenate([self._rows, np.arange(self._rows.size, h.size, dtype=np.int64)])
                order = np.argsort(h, kind="stable")
                self._sorted, self._rows, self._hashes = h[order], rows[order], []
            return self._sorted, self._rows

    def get(self, key: str) -> int | None:
        if not isinstance(key, str):
            return None
        hs, rows = self._index()
        h = hash(key)
        i = int(np.searchsorted(hs, h))
        while i < hs.size and hs[i] == h:
            if self._ids[int(rows[i])] == key:
                return int(rows[i])
            i += 1
        return None

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None


def _unpack(rows) -> tuple[np.ndarray, ...]:
    """Blobs of (term, data) -> (terms, rows, counts), one entry per posting (the article and title lists;
    the sentence list is read block by block, :meth:`PgSearch._sentence_bm25`)."""
    terms, ids, tfs = [], [], []
    for term, data in rows:
        data = bytes(data)
        n = len(data) // 12
        ids.append(np.frombuffer(data, np.int64, n, 0))
        tfs.append(np.frombuffer(data, np.float32, n, 8 * n))
        terms.append(np.full(n, term, np.int64))
    if not ids:
        z = np.zeros(0)
        return z, z, z
    return np.concatenate(terms), np.concatenate(ids), np.concatenate(tfs).astype(np.float64)


def _sum_by(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct keys, ascending; each one's sum of ``weights``): ``np.unique(..., return_inverse=True)``
    then ``np.bincount``, the same sums in the same order of addition, but cheaper here: the postings of
    each term come sorted, so ``keys`` are a few sorted runs, which a stable sort (timsort) merges in
    near-linear time where unique's quicksort sorts from scratch (half of a search's time at 2M sentences)."""
    return _sum_parts([keys], [weights])


def _sum_parts(keys: list[np.ndarray], weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_sum_by` of the concatenated parts, emptying both lists as it goes (the caller holds no other
    reference), so that no more than about four arrays of every entry are alive at once where six were
    (the postings of a question's terms run to a million entries at 2M sentences): the same sort, the same
    sums."""
    k = (keys[0] if len(keys) == 1 else np.concatenate(keys)).astype(np.int64, copy=False)
    keys.clear()
    order = np.argsort(k, kind="stable")
    k = k[order]
    if k.size == 0:
        weights.clear()
        return k, np.zeros(0, np.float64)
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    k = k[starts]
    w = (weights[0] if len(weights) == 1 else np.concatenate(weights)).astype(np.float64, copy=False)
    weights.clear()
    w = w[order]
    del order
    return k, np.add.reduceat(w, starts)


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the stable sort's order, ``keys`` sorted, where each distinct key starts) for keys made of a few
    sorted runs (:func:`_sum_by`)."""
    keys = np.asarray(keys, np.int64)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    return order, k, np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1]))) if k.size else np.zeros(0, np.int64)


def _f16(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float16).astype(np.float32)


def _sparse_zmax(values: np.ndarray, n: int) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`bot.index.search._zmax` of an array of ``n`` entries that is zero except on ``values``:
    returns the map from raw values (0 for the rows not in ``values``) to their normalised ones."""
    v = np.asarray(values, dtype=np.float64)
    if n <= 0:
        return lambda x: np.zeros_like(np.asarray(x, np.float32))
    s1, s2 = float(v.sum()), float((v * v).sum())
    mean = s1 / n
    sd = math.sqrt(max(s2 / n - mean * mean, 0.0))
    top = float(v.max()) if v.size else 0.0
    if v.size < n:
        top = max(top, 0.0)
    return _affine(mean, sd, top)


def _affine(mean: float, sd: float, top: float) -> Callable[[np.ndarray], np.ndarray]:
    if sd < 1e-9:
        return lambda x: np.zeros_like(np.asarray(x, np.float32))
    ztop = (top - mean) / sd

    def f(x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float64) - mean) / sd)
        return (z / ztop if ztop > 1e-9 else z).astype(np.float32)

    return f


class PgSearch:
    """The index in PostgreSQL (see the module docstring): write with :meth:`ingest`, search with
    :meth:`search_candidates`."""

    def __init__(self, url: str, embedder, *, published: Callable[[str | None], float],
                 weights: Weights | None = None, hnsw: bool = True) -> None:
        """``hnsw=False``: no HNSW index on the sentence vectors yet (a bulk load builds it after, with
        :meth:`build_hnsw`; until then the nearest sentences are found by a scan)."""
        from .pgvectors import prepare

        self.embedder = embedder
        self.dim = int(embedder.dim)
        self.weights = weights or Weights()
        self._published_time = published
        self.lexicon = Lexicon()
        self._lock = threading.RLock()  # the search connection (and what a process keeps of the index)
        self._wlock = threading.Lock()  # the write connection: a search does not wait for an ingest here
        self._url = url
        self._wconn = None
        self.conn = prepare(url)
        with self.conn.transaction():  # processes starting together take turns creating the tables
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for stmt in SCHEMA + ([HNSW] if hnsw else []):
                self.conn.execute(stmt.format(dim=self.dim))
            have = {r[0] for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'pix_articles' "
                "AND table_schema = current_schema()")}
            for col, kind in ADDED_COLUMNS.items():
                if col not in have:
                    self.conn.execute(f"ALTER TABLE pix_articles ADD COLUMN IF NOT EXISTS {col} {kind}")
            if self.conn.execute("SELECT NOT EXISTS (SELECT 1 FROM pix_articles)").fetchone()[0]:
                self.conn.execute("INSERT INTO pix_meta VALUES ('terms', %s) ON CONFLICT (key) DO UPDATE "
                                  "SET value = EXCLUDED.value", (TERMS_REVISION,))
            row = self.conn.execute("SELECT value FROM pix_meta WHERE key = 'terms'").fetchone()
            self.terms_revision = row[0] if row else "1"
            self.conn.execute(
                "INSERT INTO pix_stats VALUES (1, 0, 0, 0, 0, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (np.zeros(self.dim).tobytes(), np.zeros((self.dim, self.dim)).tobytes(),
                 np.zeros(self.dim).tobytes(), np.zeros((self.dim, self.dim)).tobytes()))
        if self.terms_revision != TERMS_REVISION:
            from ..store.db import redact_url

            log.warning(OLD_TERMS_WARNING, redact_url(url), self.terms_revision, TERMS_REVISION)
        # per article (dense ids): what a process keeps
        self._pub = np.zeros(0, np.float64)
        self._n_sent = np.zeros(0, np.int32)
        self._body_len = np.zeros(0, np.float32)
        self._guild = np.zeros(0, np.int64)
        self._titles = _Texts()
        self._row_of = _Keys()  # each article's corpus id (Article.id) -> its id here
        self._gone = np.zeros(0, bool)  # retired (pix_gone): no scope shows them
        self._gone_seq = 0
        self._gone_ids: set[int] = set()
        self._dfs: dict[int, int] = {}  # term id -> df, as of the last refresh (cleared when the index grows)
        self._stats_n = -1
        self._hnsw: dict[str, bool] = {}
        self._refreshed = 0.0
        self._norms = np.ones(0, np.float64)  # title TF-IDF norms, per article id
        self._norm_n = 0  # the sentence count they were computed at
        self.refresh()

    # ------------------------------------------------------------ ingest
    def ingest(self, index: SentenceIndex, rows=None, ageless=frozenset()) -> int:
        """Write articles of a built in-memory ``index`` (its rows ``rows``; default all): their
        sentences, vectors (as the index holds them) and terms. Returns how many were new (an article
        whose id is stored already is skipped). ``ageless``: corpus ids that never age out."""
        rows = rows if rows is not None else range(len(index.articles))
        term_of = {i: t for t, i in index._ids.items()}
        stems = index.lexicon.stems
        conn = self._writer()
        with self._wlock, conn.transaction():
            # READ COMMITTED whatever the server's default: after the lock, each statement sees what the
            # ingest before it committed (its ids, its articles)
            conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INGEST_LOCK,))
            have = {r[0] for r in conn.execute(
                "SELECT key FROM pix_articles WHERE key = ANY(%s)", ([index.articles[r].id for r in rows],))}
            todo = [r for r in rows if index.articles[r].id not in have]
            if not todo:
                return 0
            next_id = conn.execute("SELECT coalesce(max(id) + 1, 0) FROM pix_articles").fetchone()[0]
            # every term the new rows hold (sentences, titles, names and numbers), registered
            sent_terms: dict[int, list[tuple[str, int]]] = {}  # sentence row -> (term, count)
            title_terms: dict[int, list[tuple[str, int]]] = {}
            caps_nums: dict[int, tuple[list[str], list[str]]] = {}
            words: set[str] = set()

            def counted(view, row: int) -> list[tuple[str, int]]:
                a, b = int(view.indptr[row]), int(view.indptr[row + 1])
                return [(term_of[int(i)], int(c)) for i, c in zip(view.indices[a:b], view.data[a:b])]

            for r in todo:
                sl = index.rows(r)
                for s in range(sl.start, min(sl.stop, sl.start + MAX_SENTENCES)):
                    sent_terms[s] = counted(index._sent, s)
                    text = index.texts[s]
                    nums = [w.replace(",", "") for w in _WORD.findall(text) if _NUM.search(w)]
                    caps = [m.group(0) for m in _CAP.finditer(aliases(text)) if m.start() > 0]
                    caps_nums[s] = (sorted(set(stems(caps))), sorted(set(stems(nums))))
                    words.update(t for t, _ in sent_terms[s])
                    words.update(caps_nums[s][0])
                    words.update(caps_nums[s][1])
                title_terms[r] = counted(index._title, r)
                words.update(t for t, _ in title_terms[r])
            ids = self._term_ids(sorted(words), conn)
            df: dict[int, int] = {}
            art_df: dict[int, int] = {}
            n_new = tokens = art_len = 0.0
            svecs: list[np.ndarray] = []  # the new rows' vectors: their moments are added once, below
            tvecs: list[np.ndarray] = []
            with conn.cursor() as cur:
                with cur.copy("COPY pix_sentences (id, article, text, vec, terms, caps, nums, flags) FROM STDIN "
                              "WITH (FORMAT BINARY)") as cp:
                    cp.set_types(["int8", "int8", "text", "vector", "int4[]", "int4[]", "int4[]", "int2"])
                    post, body, titles, arts = [], [], [], []
                    for j, r in enumerate(todo):
                        aid = next_id + j
                        sl = index.rows(r)
                        n_s = min(sl.stop - sl.start, MAX_SENTENCES)
                        in_body: dict[int, int] = {}
                        for p in range(n_s):
                            s = sl.start + p
                            counts = {ids[t]: c for t, c in sent_terms[s]}
                            length = float(sum(counts.values()))
                            tids = sorted(counts)
                            for t, c in counts.items():
                                post.append((t, (aid << SHIFT) | p, float(c), length))
                                df[t] = df.get(t, 0) + 1
                                in_body[t] = in_body.get(t, 0) + 1
                            text = index.texts[s]
                            flags = ((FRAGMENT if not _SENTENCE_END.search(text) else 0)
                                     | (HAS_DATE if _DATE.search(text) else 0)
                                     | (HAS_NUM_WORD if _NUMBER_WORDS.search(text) else 0))
                            vec = np.asarray(index.emb[s], dtype=np.float32)
                            svecs.append(vec)
                            caps, nums = caps_nums[s]
                            cp.write_row(((aid << SHIFT) | p, aid, text, vec, tids, [ids[t] for t in caps],
                                          [ids[t] for t in nums], flags))
                            tokens += length
                            n_new += 1
                        for t, c in in_body.items():
                            body.append((t, aid, float(c)))
                            art_df[t] = art_df.get(t, 0) + 1
                        tc = {ids[t]: c for t, c in title_terms[r]}
                        tt = [t for t, c in tc.items() for _ in range(c)]
                        titles.extend((t, aid, float(c)) for t, c in tc.items())
                        a = index.articles[r]
                        tvec = np.asarray(index.title_emb[r], dtype=np.float32)
                        tvecs.append(tvec)
                        blen = float(sum(in_body.values()))
                        art_len += blen
                        arts.append((aid, a.id, self._published_time(a.date), int(a.guild_id or 0), a.title or "",
                                     n_s, blen, tvec, tt, a.url or None, a.date or None,
                                     float(a.arrived) if a.arrived else None, a.id in ageless))
                with cur.copy("COPY pix_post (list, term, data) FROM STDIN WITH (FORMAT BINARY)") as cp:
                    cp.set_types(["int2", "int4", "bytea"])
                    for lst, rows_ in ((SENTENCES, post), (BODIES, body), (TITLES, titles)):
                        for term, blob in _pack(rows_, with_len=lst == SENTENCES):
                            cp.write_row((lst, term, blob))
                with cur.copy("COPY pix_articles (id, key, published, guild, title, n_sent, body_len, title_vec, "
                              "title_terms, url, date, arrived, ageless) FROM STDIN WITH (FORMAT BINARY)") as cp:
                    cp.set_types(["int8", "text", "float8", "int8", "text", "int4", "float4", "vector", "int4[]",
                                  "text", "text", "float8", "bool"])
                    for row in arts:
                        pub = row[2]
                        cp.write_row(row[:2] + (None if pub != pub else pub,) + row[3:])
            for name, counts in (("df", df), ("art_df", art_df)):
                if counts:
                    keys = list(counts)
                    conn.execute(
                        f"UPDATE pix_terms t SET {name} = t.{name} + u.c FROM unnest(%s::int[], %s::bigint[]) "
                        "AS u(id, c) WHERE t.id = u.id", (keys, [counts[k] for k in keys]))
            sv = np.asarray(svecs, np.float64).reshape(-1, self.dim)
            tv = np.asarray(tvecs, np.float64).reshape(-1, self.dim)
            vs, vm, ts_, tm = sv.sum(axis=0), sv.T @ sv, tv.sum(axis=0), tv.T @ tv
            st = conn.execute("SELECT vec_sum, vec_m2, title_sum, title_m2 FROM pix_stats WHERE id = 1 "
                              "FOR UPDATE").fetchone()
            mats = [np.frombuffer(b, dtype=np.float64) for b in st]
            conn.execute(
                "UPDATE pix_stats SET n_sent = n_sent + %s, tokens = tokens + %s, n_art = n_art + %s, "
                "art_len = art_len + %s, vec_sum = %s, vec_m2 = %s, title_sum = %s, title_m2 = %s WHERE id = 1",
                (int(n_new), tokens, len(todo), art_len, (mats[0] + vs).tobytes(), (mats[1] + vm.ravel()).tobytes(),
                 (mats[2] + ts_).tobytes(), (mats[3] + tm.ravel()).tobytes()))
        self.refresh()
        return len(todo)

    def build_hnsw(self, memory: str = "2GB") -> float:
        """Build the sentence vectors' HNSW index now (after a bulk load); returns the seconds it took."""
        import time

        t = time.perf_counter()
        with self._lock, self.conn.transaction():
            self.conn.execute(f"SET LOCAL maintenance_work_mem = '{memory}'")
            self.conn.execute(HNSW)
        self._hnsw.clear()
        return time.perf_counter() - t

    def _term_ids(self, terms: list[str], conn) -> dict[str, int]:
        if not terms:
            return {}
        conn.execute("INSERT INTO pix_terms (term) SELECT unnest(%s::text[]) ON CONFLICT (term) DO NOTHING",
                     (terms,))
        return {t: i for i, t in conn.execute("SELECT id, term FROM pix_terms WHERE term = ANY(%s)", (terms,))}

    # ------------------------------------------------------------ what a process keeps
    def refresh(self, max_age: float = 0.0) -> None:
        """Read the statistics and the articles added since the last refresh (by any process); ``max_age``:
        not again within that many seconds of the last read."""
        import time

        if max_age and time.monotonic() - self._refreshed < max_age:
            return
        with self._lock, self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # the statistics and the articles agree
            self._refreshed = time.monotonic()
            gone = self.conn.execute("SELECT seq, id FROM pix_gone WHERE seq > %s ORDER BY seq",
                                     (self._gone_seq,)).fetchall()
            if gone:
                self._gone_seq = int(gone[-1][0])
                self._gone_ids.update(int(g[1]) for g in gone)
            # the moments (2 x 1.2 MB) are read only when something was written since
            if self.conn.execute("SELECT n_sent FROM pix_stats WHERE id = 1").fetchone()[0] == self._stats_n:
                self._mark_gone()
                return
            st = self.conn.execute("SELECT n_sent, tokens, n_art, art_len, vec_sum, vec_m2, title_sum, title_m2 "
                                   "FROM pix_stats WHERE id = 1").fetchone()
            self._dfs.clear()
            self.n, self._tokens, self.n_articles, self._art_len_sum = int(st[0]), float(st[1]), int(st[2]), float(st[3])
            d = self.dim
            self._vec_sum = np.frombuffer(st[4], np.float64)
            self._vec_m2 = np.frombuffer(st[5], np.float64).reshape(d, d)
            self._title_sum = np.frombuffer(st[6], np.float64)
            self._title_m2 = np.frombuffer(st[7], np.float64).reshape(d, d)
            cur = self.conn.execute("SELECT id, published, n_sent, body_len, guild, title, key FROM pix_articles "
                                    "WHERE id >= %s ORDER BY id", (len(self._titles),))
            # the result is in libpq's memory whole; it becomes Python objects REFRESH_BATCH rows at a time
            while rows := cur.fetchmany(REFRESH_BATCH):
                self._pub = np.concatenate([self._pub, [np.nan if r[1] is None else r[1] for r in rows]])
                self._n_sent = np.concatenate([self._n_sent, np.array([r[2] for r in rows], np.int32)])
                self._body_len = np.concatenate([self._body_len, np.array([r[3] for r in rows], np.float32)])
                self._guild = np.concatenate([self._guild, np.array([r[4] for r in rows], np.int64)])
                self._titles.extend([r[5] for r in rows])
                self._row_of.extend([r[6] for r in rows])  # last: ids are positions, so every column must agree
            cur.close()
            # np.median of the known terms' idf, as the in-memory index computes it (the two middle values averaged)
            med = self.conn.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ln((%s + 1.0) / (df + 1)) + 1) FROM pix_terms "
                "WHERE df > 0", (self.n,)).fetchone()[0]
            self._median_idf = float(med) if med is not None else 1.0
            self._max_idf = float(np.log(self.n + 1) + 1.0) if self.n else 1.0
            self._stats_n = int(st[0])
            self._mark_gone()

    def _mark_gone(self) -> None:
        if self._gone.size != len(self._titles) or len(self._gone_ids) != int(self._gone.sum()):
            gone = np.zeros(len(self._titles), bool)
            ids = np.fromiter((i for i in self._gone_ids if i < gone.size), np.int64)
            gone[ids] = True
            self._gone = gone

    def sync(self) -> None:
        """Read what other processes wrote, as a search would (at most :data:`REFRESH_S` old)."""
        self.refresh(REFRESH_S)

    def scope(self, guild_id: int | None, shared=(), fresh: bool = True) -> np.ndarray:
        """One bool per article id: what a member of ``guild_id`` may read (the articles of no server, and
        its own; None: the articles of no server only), without retired ones. ``shared``: the corpus ids
        another guild's feed or link brought that this guild may also read
        (:meth:`bot.corpus.scope.Scopes.shared_to`). ``fresh=False``: as of the last refresh, without waiting
        for the connection (/about)."""
        if fresh:
            self.refresh()
        guild, gone = self._guild, self._gone  # replaced whole by a refresh, never changed in place
        g = int(guild_id or 0)
        mask = (guild == 0) | (guild == g)
        rows = [r for r in map(self._row_of.get, shared) if r is not None and r < mask.size]
        if rows:
            mask[np.asarray(rows, np.int64)] = True
        n = min(mask.size, gone.size)
        return mask[:n] & ~gone[:n]

    def row_of(self, key: str) -> int | None:
        """The article id of the corpus article ``key`` (None: not indexed, as far as this process knows)."""
        return self._row_of.get(key)

    def has(self, key: str) -> bool:
        row = self._row_of.get(key)
        return row is not None and row < self._gone.size and not self._gone[row]

    def _tombstone(self, select: str, args: tuple) -> list:
        """INSERT INTO pix_gone the ids ``select`` gives, under an advisory lock: tombstones commit in the order
        of their ``seq``, so a reader that has seen ``seq`` N has seen every one before it."""
        conn = self._writer()
        with self._wlock, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_GONE_LOCK,))
            return conn.execute(f"INSERT INTO pix_gone (id) {select} ON CONFLICT (id) DO NOTHING RETURNING id",
                                args).fetchall()

    def retire_older(self, cutoff: float) -> int:
        """Tombstone the articles that arrived before ``cutoff`` (epoch s; those without an arrival never
        age); returns how many were new."""
        got = self._tombstone("SELECT id FROM pix_articles a WHERE arrived < %s AND NOT ageless AND NOT EXISTS "
                              "(SELECT 1 FROM pix_gone g WHERE g.id = a.id)", (float(cutoff),))
        if got:
            self.refresh()
        return len(got)

    def cap_per_guild(self, limit: int) -> int:
        """Tombstone each guild's oldest articles past ``limit`` (by arrival; those without one first; the
        articles of no server count as guild 0). Returns how many were new."""
        self.refresh()
        with self._lock:
            live = ~self._gone[: self._guild.size]
            _, n = np.unique(self._guild[live], return_counts=True)
        if not n.size or int(n.max()) <= limit:
            return 0
        got = self._tombstone(
            "SELECT id FROM (SELECT a.id, row_number() OVER (PARTITION BY a.guild ORDER BY a.arrived DESC NULLS "
            "LAST, a.id DESC) AS rn FROM pix_articles a WHERE NOT EXISTS (SELECT 1 FROM pix_gone g "
            "WHERE g.id = a.id)) x WHERE rn > %s", (int(limit),))
        self.refresh()
        return len(got)

    def counts(self, visible: np.ndarray | None = None) -> tuple[int, int]:
        """(articles, sentences) in ``visible`` (None: every article not retired)."""
        gone, n_sent = self._gone, self._n_sent  # no lock: /about must not wait for an ingest (arrays are replaced, not changed)
        n = min(gone.size, n_sent.size, gone.size if visible is None else len(visible))
        ok = ~gone[:n] if visible is None else np.asarray(visible, bool)[:n] & ~gone[:n]
        return int(ok.sum()), int(n_sent[:n][ok].sum())

    def article_info(self, ids: list[int]) -> dict[int, tuple[str, str, str | None, str | None]]:
        """id -> (corpus id, title, date, url) of these articles, as a reply shows them."""
        if not ids:
            return {}
        with self._lock:
            rows = self.conn.execute("SELECT id, key, title, date, url FROM pix_articles WHERE id = ANY(%s)",
                                     (list({int(i) for i in ids}),)).fetchall()
        return {int(r[0]): (r[1], r[2], r[3], r[4]) for r in rows}

    def load_articles(self, ids: list[int]) -> dict[int, tuple[str, str, str | None, str | None, int, list[str]]]:
        """id -> (corpus id, title, date, url, guild, sentences) of these articles."""
        if not ids:
            return {}
        ids = list(dict.fromkeys(int(i) for i in ids))
        with self._lock:
            heads = self.conn.execute("SELECT id, key, title, date, url, guild FROM pix_articles WHERE id = ANY(%s)",
                                      (ids,)).fetchall()
            texts = self.conn.execute("SELECT article, text FROM pix_sentences WHERE article = ANY(%s) ORDER BY id",
                                      (ids,)).fetchall()
        body: dict[int, list[str]] = {}
        for a, t in texts:
            body.setdefault(int(a), []).append(t)
        return {int(r[0]): (r[1], r[2], r[3], r[4], int(r[5]), body.get(int(r[0]), [])) for r in heads}

    def article_sentences(self, article: int) -> list[str]:
        """An article's indexed sentences, in order."""
        with self._lock:
            rows = self.conn.execute("SELECT text FROM pix_sentences WHERE article = %s ORDER BY id",
                                     (article,)).fetchall()
        return [r[0] for r in rows]

    @property
    def published(self) -> np.ndarray:
        return self._pub

    def in_window(self, visible: np.ndarray | None = None, published_before: float | None = None,
                  published_between: tuple[float, float] | None = None) -> np.ndarray | None:
        """As :meth:`bot.index.search.Retriever.in_window` (one bool per article id)."""
        if published_before is None and published_between is None:
            return visible
        pub = self._pub
        if visible is not None and len(visible) != pub.size:  # a scope built before the last refresh
            v = np.zeros(pub.size, bool)
            n = min(pub.size, len(visible))
            v[:n] = np.asarray(visible, bool)[:n]
            visible = v
        return window_mask(pub, visible, published_before, published_between)

    # ------------------------------------------------------------ search
    def query_words(self, question: str) -> list[str]:
        return query_words(question)

    def _terms(self, terms: list[str]) -> dict[str, tuple[int, float, float]]:
        """term -> (id, df, art_df) for the terms some sentence holds."""
        if not terms:
            return {}
        rows = self.conn.execute("SELECT term, id, df, art_df FROM pix_terms WHERE term = ANY(%s) AND df > 0",
                                 (sorted(set(terms)),)).fetchall()
        return {t: (i, float(df), float(adf)) for t, i, df, adf in rows}

    def _idf(self, df):
        return (np.log((self.n + 1) / (np.asarray(df, np.float64) + 1)) + 1.0)

    def search_candidates(self, question: str, kind: str, k: int, visible: np.ndarray | None = None,
                          published_before: float | None = None,
                          published_between: tuple[float, float] | None = None) -> list[Candidate]:
        if k < 1:
            raise ValueError("k must be at least 1")
        with self._lock:
            self.refresh(REFRESH_S)
            return self._search(question, kind, k, self.in_window(visible, published_before, published_between))

    def _search(self, question: str, kind: str, k: int, visible: np.ndarray | None) -> list[Candidate]:
        n, n_art, w = self.n, self.n_articles, self.weights
        if n == 0 or not question.strip():
            return []
        # Another process may have written articles since the last refresh: rows of articles not known here
        # yet are not read (postings, nearest rows), and a scope shorter than the articles known reads none
        # of the rest.
        ok = np.zeros(n_art, bool)
        if visible is None:
            ok[:] = True
        else:
            v = np.asarray(visible, bool)[:n_art]
            ok[: v.size] = v
        if not ok.any():
            return []
        conn = self.conn
        words = self.query_words(question)
        qtext = " ".join(words) or question
        lex = self.lexicon
        bm_terms = lex.terms([qtext])[0]
        content_raw = list(dict.fromkeys(lex.terms([" ".join(words)])[0]))
        keys_raw = [m.group(0) for m in _CAP.finditer(aliases(question))
                    if m.start() > 0 and m.group(0).lower() not in QUESTION_WORDS]
        keys_raw += [x for x in _WORD.findall(question) if _NUM.search(x)]
        keys_terms = list(dict.fromkeys(lex.terms([" ".join(keys_raw)])[0])) if keys_raw else []
        info = self._terms(bm_terms + content_raw + keys_terms)
        content = [(t, info[t][0] if t in info else -1) for t in content_raw]
        keys = [(t, info[t][0] if t in info else -1) for t in keys_terms]
        df_of = {i: d for i, d, _ in info.values()}

        # BM25 over sentences (bm25s' Lucene variant; a repeated query term counts again)
        q_ids = [info[t][0] for t in bm_terms if t in info]
        uniq, mult = np.unique(np.asarray(q_ids, np.int64), return_counts=True) if q_ids else (np.zeros(0, np.int64),) * 2
        bm_rows = np.zeros(0, np.int64)
        bm_vals = np.zeros(0, np.float64)
        if uniq.size:
            bm_rows, bm_vals = self._sentence_bm25(uniq, mult, df_of, n)
        zb = _sparse_zmax(bm_vals.astype(np.float32), n)

        # article BM25 (tf = the article's sentences holding the term) and title TF-IDF, over the known content terms
        known = list(dict.fromkeys(i for _, i in content if i >= 0))
        art_rows = np.zeros(0, np.int64)
        art_vals = np.zeros(0, np.float64)
        tl_rows = np.zeros(0, np.int64)
        tl_vals = np.zeros(0, np.float64)
        if known:
            kn = np.asarray(sorted(known), np.int64)
            t_, a_, tf_ = self._known_rows(self._postings(BODIES, kn.tolist()), 1, 0)
            if a_.size:
                adf = {info[t][0]: info[t][2] for t in info}
                df = np.array([adf[int(t)] for t in kn])
                idf = np.log(1.0 + (n_art - df + 0.5) / (df + 0.5))
                which = np.searchsorted(kn, t_.astype(np.int64))
                a64 = a_.astype(np.int64)
                avg = (self._art_len_sum / n_art) or 1.0
                k1, b = 1.2, 0.75
                wts = idf[which] * tf_ * (k1 + 1.0) / (tf_ + k1 * (1.0 - b + b * self._body_len[a64] / avg))
                art_rows, art_vals = _sum_by(a64, wts)
            # title TF-IDF cosine: the query's known terms (counts) against each title holding one
            qc: dict[int, int] = {}
            for t in lex.terms([qtext])[0]:
                if t in info:
                    qc[info[t][0]] = qc.get(info[t][0], 0) + 1
            qw = {i: (1.0 + math.log(c)) * float(self._idf(df_of[i])) for i, c in qc.items()}
            qn = math.sqrt(sum(v * v for v in qw.values())) or 1.0
            qids = sorted(qw)
            t_, a_, tf_ = self._known_rows(self._postings(TITLES, qids), 1, 0)
            if a_.size:  # sum over the query's terms in each title of both weights, over both norms
                per_term = {t: qw[t] * float(self._idf(df_of[t])) for t in qids}
                uniq_t, inv_t = np.unique(t_.astype(np.int64), return_inverse=True)
                qv = np.array([per_term[int(t)] for t in uniq_t], np.float64)[inv_t]
                a64 = a_.astype(np.int64)
                tl_rows, dots = _sum_by(a64, (1.0 + np.log(tf_)) * qv)
                norms = self._title_norms(tl_rows)
                tl_vals = dots / (norms * qn)
        za = _sparse_zmax(art_vals.astype(np.float32), n_art)
        ztl = _sparse_zmax(tl_vals.astype(np.float32), n_art)

        # dense: the corpus-wide mean and spread from the vectors' moments, the maximum from the nearest one
        qvec = _f16(self.embedder.encode([question])[0])
        q64 = qvec.astype(np.float64)
        top_s, top_t = conn.execute(
            "SELECT (SELECT -(vec <#> %(q)s) FROM pix_sentences ORDER BY vec <#> %(q)s LIMIT 1), "
            "(SELECT -(title_vec <#> %(q)s) FROM pix_articles ORDER BY title_vec <#> %(q)s LIMIT 1)", {"q": qvec}).fetchone()
        zd = self._dense_z(q64, self._vec_sum, self._vec_m2, n, top_s)
        ztd = self._dense_z(q64, self._title_sum, self._title_m2, n_art, top_t)

        # candidates: the best by BM25 and by cosine in scope, and every sentence of the best articles
        seen_bm = ok[bm_rows >> SHIFT] if bm_rows.size else np.zeros(0, bool)
        cand: set[int] = set(bm_rows[seen_bm][_ranked(bm_vals[seen_bm], POOL)].tolist()) if seen_bm.any() else set()
        cand.update(self._nearest(qvec, ok, POOL))
        # article evidence without the title's cosine, for every article a query term reaches (vectorised;
        # both are sorted and distinct: a stable sort merges the two runs, cheaper than union1d's hashing)
        _, both, starts = _runs(np.concatenate((art_rows, tl_rows)))
        lex_arts = both[starts]
        lex_arts = lex_arts[ok[lex_arts]] if lex_arts.size else lex_arts
        partial = np.zeros(lex_arts.size, np.float64)
        if lex_arts.size:
            if w.article:
                a_bm = np.zeros(lex_arts.size, np.float32)
                a_bm[np.searchsorted(lex_arts, art_rows[ok[art_rows]])] = art_vals[ok[art_rows]]
                partial += w.article * za(a_bm)
            if w.title:
                t_l = np.zeros(lex_arts.size, np.float32)
                t_l[np.searchsorted(lex_arts, tl_rows[ok[tl_rows]])] = tl_vals[ok[tl_rows]]
                partial += w.title * 0.5 * ztl(t_l)
        # the title's cosine is read for the articles that can still be among the best: the best by the rest,
        # the titles nearest the question, and the candidates' own
        arts = set(lex_arts[_ranked(partial, TITLE_POOL)].tolist()) if lex_arts.size else set()
        arts |= set(self._nearest_titles(qvec, ok, TOP_ARTICLES))
        arts |= {s >> SHIFT for s in cand}
        arts_l = np.asarray(sorted(a for a in arts if ok[a]), np.int64)
        tdot = self._title_dots(arts_l.tolist(), qvec)
        a_bm = np.zeros(arts_l.size, np.float32)
        t_l = np.zeros(arts_l.size, np.float32)
        if arts_l.size:
            where = np.searchsorted(art_rows, arts_l)
            hit = (where < art_rows.size) & (art_rows[np.minimum(where, max(art_rows.size - 1, 0))] == arts_l) \
                if art_rows.size else np.zeros(arts_l.size, bool)
            a_bm[hit] = art_vals[where[hit]]
            where = np.searchsorted(tl_rows, arts_l)
            hit = (where < tl_rows.size) & (tl_rows[np.minimum(where, max(tl_rows.size - 1, 0))] == arts_l) \
                if tl_rows.size else np.zeros(arts_l.size, bool)
            t_l[hit] = tl_vals[where[hit]]
        sc = np.zeros(arts_l.size, np.float64)
        if w.article:
            sc += w.article * za(a_bm)
        if w.title:
            td = np.array([tdot.get(int(a), 0.0) for a in arts_l], np.float32)
            sc += w.title * 0.5 * (ztd(td) + ztl(t_l))
        art_score = dict(zip(arts_l.tolist(), sc.astype(np.float32).astype(np.float64).tolist()))
        best_arts = sorted(art_score, key=lambda a: -art_score[a])[:TOP_ARTICLES]
        for a in best_arts:
            cand.update(((a << SHIFT) | p) for p in range(int(self._n_sent[a])))
        # neighbours too: each candidate's score reads its neighbours' fused scores
        need = set(cand)
        for s in cand:
            a, p = s >> SHIFT, s & (MAX_SENTENCES - 1)
            if p > 0:
                need.add(s - 1)
            if p + 1 < self._n_sent[a]:
                need.add(s + 1)
        rows = self._sentences(sorted(need), qvec)
        ids = list(rows)
        # each needed row's BM25 (0 where no query term reaches it), looked up in the sorted rows: no dict of
        # every row a common term reaches (hundreds of thousands at 2M sentences)
        bm_r = np.zeros(len(ids), np.float32)
        if bm_rows.size and ids:
            want = np.asarray(ids, np.int64)
            at = np.minimum(np.searchsorted(bm_rows, want), bm_rows.size - 1)
            hit = bm_rows[at] == want
            bm_r[hit] = bm_vals[at[hit]]
        dn_r = np.array([rows[i][0] for i in ids], np.float32)
        fused = dict(zip(ids, (zb(bm_r) + w.dense * zd(dn_r)).astype(np.float64).tolist()))
        known_keys = {i for _, i in keys if i >= 0}
        scored = []
        for s in cand:
            if s not in rows:
                continue
            a, p = s >> SHIFT, s & (MAX_SENTENCES - 1)
            dot, caps, nums, flags = rows[s]
            sc = fused[s]
            if w.neighbour:
                nb = max(fused.get(s - 1, 0.0) if p > 0 else 0.0,
                         fused.get(s + 1, 0.0) if p + 1 < self._n_sent[a] else 0.0)
                sc += w.neighbour * max(nb, 0.0)
            if a not in art_score:
                continue
            sc += art_score[a]
            if w.cue:
                if kind == "number":
                    sc += w.cue * float((len(nums) - len(known_keys & set(nums)) > 0) or bool(flags & HAS_NUM_WORD))
                elif kind == "date":
                    sc += w.cue * float(bool(flags & HAS_DATE))
                elif kind == "name":
                    sc += w.cue * float(len(caps) - len(known_keys & set(caps)) > 0)
            if w.fragment and flags & FRAGMENT:
                sc -= w.fragment
            scored.append((np.float32(sc), -s, s))
        scored.sort(reverse=True)
        top = [s for _, _, s in scored[:k]]
        score_of = {s: float(sc) for sc, _, s in scored[:k]}
        return self._candidates(top, score_of, rows, qvec, content, keys, df_of)

    def _candidates(self, top, score_of, rows, qvec, content, keys, df_of) -> list[Candidate]:
        if not top:
            return []
        arts = sorted({s >> SHIFT for s in top})
        body = {}
        texts = {}
        wanted = sorted(set(top) | {s - 1 for s in top if s & (MAX_SENTENCES - 1)})
        for a, p, terms, text in self.conn.execute(
                "SELECT article, id, terms, CASE WHEN id = ANY(%s) THEN text END FROM pix_sentences "
                "WHERE article = ANY(%s)", (wanted, arts)):
            body.setdefault(a, {})[p & (MAX_SENTENCES - 1)] = set(terms)
            if text is not None:
                texts[p] = text
        titles = {a: set(t) for a, t in self.conn.execute(
            "SELECT id, title_terms FROM pix_articles WHERE id = ANY(%s)", (arts,))}
        all_ids = {i for a in arts for ts in body.get(a, {}).values() for i in ts} | {i for t in titles.values() for i in t}
        all_ids |= {i for _, i in content + keys if i >= 0}
        known = self._dfs
        todo = sorted(i for i in all_ids if i not in known)
        if todo:
            if len(known) > MAX_CACHED_DFS:
                known.clear()
                todo = sorted(all_ids)
            known.update(self.conn.execute("SELECT id, df FROM pix_terms WHERE id = ANY(%s)", (todo,)).fetchall())
        dfs = {i: known[i] for i in all_ids if i in known}
        idf = {i: float(self._idf(d)) for i, d in dfs.items() if d > 0}

        def share(terms, have, unseen_content, with_keys=False):
            total = got = 0.0
            groups = ((terms, unseen_content),) if not with_keys else ((terms, unseen_content), (keys, self._max_idf))
            for ts, unseen in groups:
                for _, t in ts:
                    wt = idf.get(t, unseen) if t >= 0 else unseen
                    total += wt
                    if t >= 0 and t in have:
                        got += wt
            return got / total if total else 0.0

        out = []
        for s in top:
            a, p = s >> SHIFT, s & (MAX_SENTENCES - 1)
            sents = body.get(a, {})
            lo = p - 1 if p > 0 else p
            hi = p + 1 if p + 1 < self._n_sent[a] else p
            window = set().union(*(sents.get(i, set()) for i in range(lo, hi + 1))) | titles.get(a, set())
            article_terms = set().union(*sents.values()) | titles.get(a, set()) if sents else titles.get(a, set())
            dense = max(float(rows[i][0]) for i in range((a << SHIFT) | lo, ((a << SHIFT) | hi) + 1) if i in rows)
            text = texts[s]
            out.append(Candidate(
                article=a, position=p, sentence=s, text=text, score=score_of[s],
                coverage=share(content, sents.get(p, set()), self._median_idf) if content else 0.0,
                context=share(content, window, self._median_idf, with_keys=True) if (content or keys) else 0.0,
                article_coverage=share(content, article_terms, self._median_idf) if content else 0.0,
                dense=float(np.clip(dense, 0.0, 1.0)),
                published=float(self._pub[a]) if a < len(self._pub) else float("nan"),
                title=self._titles[a] or "",
                before=texts.get(s - 1, "") if p > 0 else "",
            ))
        return out

    def search(self, question: str, k: int = 3, kind: str = "other") -> list[Support]:
        return list(self.search_candidates(question, kind, k))

    def articles_holding(self, word: str) -> np.ndarray:
        """One bool per article id known here: its sentences or title hold ``word`` (stemmed as the index's
        terms), as :meth:`bot.index.search.Retriever.articles_holding`."""
        stem = self.lexicon.stems([word])
        with self._lock:
            self.refresh(REFRESH_S)
            out = np.zeros(self.n_articles, dtype=bool)
            row = self.conn.execute("SELECT id FROM pix_terms WHERE term = %s", (stem[0],)).fetchone() \
                if stem else None
            if row is None:
                return out
            for which in (BODIES, TITLES):
                arts = self._known_rows(self._postings(which, [int(row[0])]), 1, 0)[1].astype(np.int64)
                out[arts[arts < out.size]] = True
        return out

    def article_text(self, article: int) -> str:
        return " ".join(self.article_sentences(article))

    # ------------------------------------------------------------ helpers
    def _sentence_bm25(self, uniq: np.ndarray, mult: np.ndarray, df_of: dict[int, int], n: int
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, BM25) of every sentence holding one of the query's terms ``uniq`` (``mult``: how often each
        is in the query). Each fetched block of postings is weighted as it is read, so only the rows and
        weights of all of them are held at once, not their terms, counts and lengths as well (the postings
        of a question's common terms run to millions of entries at 2M sentences), and the blocks are
        streamed; the weights, the order of addition and so the sums are those of weighting them all at once."""
        df = np.array([df_of[int(t)] for t in uniq])
        term_w = mult * np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        at = {int(t): i for i, t in enumerate(uniq)}
        avg = self._tokens / n if self._tokens else 1.0
        rows, wts = [], []
        # streamed (libpq's single-row mode): one block in client memory at a time, not the whole result
        blocks = self.conn.cursor(binary=True).stream(
            "SELECT term, data FROM pix_post WHERE list = %s AND term = ANY(%s)", (SENTENCES, uniq.tolist()))
        for term, data in blocks:  # one block per term per ingest batch
            m = len(data) // 16
            ids = np.frombuffer(data, np.int64, m, 0)
            tf = np.frombuffer(data, np.float32, m, 8 * m).astype(np.float64)
            ln = np.frombuffer(data, np.float32, m, 12 * m).astype(np.float64)
            ids, tf, ln = self._known_rows((ids, tf, ln), 0, SHIFT)
            rows.append(ids.copy())
            wts.append(term_w[at[int(term)]] * tf / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * ln / avg)))
            del data, ids, tf, ln
        if not rows or not sum(r.size for r in rows):
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        return _sum_parts(rows, wts)

    def _known_rows(self, cols: tuple[np.ndarray, ...], at: int, shift: int) -> tuple[np.ndarray, ...]:
        """``cols`` without the entries whose row (column ``at``; its article: ``row >> shift``) belongs to an
        article written since the last refresh."""
        if not cols[at].size:
            return cols
        keep = (cols[at].astype(np.int64) >> shift) < self.n_articles
        return cols if keep.all() else tuple(c[keep] for c in cols)

    def _postings(self, which: int, terms: list[int]) -> tuple[np.ndarray, ...]:
        """Every posting of ``terms`` in list ``which`` (BODIES or TITLES): (terms, rows, counts)."""
        if which == SENTENCES:
            raise ValueError("sentence postings are read block by block: _sentence_bm25")
        rows = self.conn.execute("SELECT term, data FROM pix_post WHERE list = %s AND term = ANY(%s)",
                                 (which, terms), binary=True).fetchall() if terms else []
        return _unpack(rows)

    def _title_norms(self, articles: np.ndarray) -> np.ndarray:
        """Each title's TF-IDF norm (1 + log count, the current idf, terms some sentence holds), computed in
        PostgreSQL for every title when the corpus has grown by :data:`NORM_DRIFT` since, else for the new
        ones only (an idf moves by about that share meanwhile)."""
        need = int(articles.max()) + 1 if articles.size else 0
        stale = self._norm_n <= 0 or abs(self.n - self._norm_n) > NORM_DRIFT * self._norm_n
        if stale or need > self._norms.size:
            lo = 0 if stale else self._norms.size
            rows = self.conn.execute(
                "SELECT c.id, sqrt(sum(((1 + ln(c.cnt)) * (ln((%s + 1.0) / (t.df + 1)) + 1)) ^ 2)) "
                "FROM (SELECT a.id, u.term, count(*) AS cnt FROM pix_articles a, unnest(a.title_terms) AS u(term) "
                "WHERE a.id >= %s GROUP BY a.id, u.term) c JOIN pix_terms t ON t.id = c.term AND t.df > 0 "
                "GROUP BY c.id", (self.n, lo)).fetchall()
            size = max(need, len(self._titles))
            norms = np.ones(size, np.float64)
            if not stale:
                norms[: self._norms.size] = self._norms
            for a, v in rows:
                if a < size:
                    norms[a] = float(v) or 1.0
            self._norms = norms
            if stale:
                self._norm_n = self.n
        return self._norms[articles]

    def _dense_z(self, q: np.ndarray, s: np.ndarray, m2: np.ndarray, n: int, top: float | None):
        if n <= 0:
            return _affine(0.0, 0.0, 0.0)
        mean = float(q @ s) / n
        var = float(q @ m2 @ q) / n - mean * mean
        return _affine(mean, math.sqrt(max(var, 0.0)), float(top) if top is not None else 0.0)

    def _nearest(self, qvec: np.ndarray, ok: np.ndarray, k: int) -> list[int]:
        """The ``k`` sentences closest to ``qvec`` among the visible articles' (exact for a small scope, else
        HNSW with pgvector's iterative scan)."""
        return self._nearest_in("pix_sentences", "article", "vec", qvec, ok, k, int(self._n_sent[ok].sum()),
                                EXACT_SCAN, lambda i: i >> SHIFT)

    def _nearest_titles(self, qvec: np.ndarray, ok: np.ndarray, k: int) -> list[int]:
        return self._nearest_in("pix_articles", "id", "title_vec", qvec, ok, k, int(ok.sum()), EXACT_TITLES,
                                lambda i: i)

    def _nearest_in(self, table, article_col, vec_col, qvec, ok, k, n_visible, exact_up_to, article_of) -> list[int]:
        if n_visible > exact_up_to and self._has_hnsw(table):
            # HNSW over everything, the scope applied after; widened while it leaves too few
            for limit in (k * 4, k * 16, k * 64):
                with self.conn.transaction():
                    self.conn.execute(f"SET LOCAL hnsw.ef_search = {max(100, min(limit, 1000))}")
                    self.conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                    rows = self.conn.execute(f"SELECT id FROM {table} ORDER BY {vec_col} <#> %s LIMIT %s",
                                             (qvec, limit)).fetchall()
                out = [r[0] for r in rows if article_of(r[0]) < ok.size and ok[article_of(r[0])]]
                if len(out) >= k or len(rows) < limit:
                    return out[:k]
        # exact: the inner product with every visible row ("+ 0": not the HNSW index, which would filter after)
        if ok.all():
            rows = self.conn.execute(f"SELECT id FROM {table} ORDER BY ({vec_col} <#> %s) + 0, id LIMIT %s",
                                     (qvec, k)).fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT id FROM {table} WHERE {article_col} = ANY(%s) ORDER BY ({vec_col} <#> %s) + 0, id LIMIT %s",
                (np.flatnonzero(ok).tolist(), qvec, k)).fetchall()
        return [r[0] for r in rows if article_of(r[0]) < ok.size]

    def _has_hnsw(self, table: str) -> bool:
        if table not in self._hnsw:
            self._hnsw[table] = self.conn.execute(
                "SELECT 1 FROM pg_indexes WHERE tablename = %s AND indexdef ILIKE '%%hnsw%%'", (table,)
            ).fetchone() is not None
        return self._hnsw[table]

    def _title_dots(self, articles: list[int], qvec: np.ndarray) -> dict[int, float]:
        if not articles:
            return {}
        return dict(self.conn.execute("SELECT id, -(title_vec <#> %s) FROM pix_articles WHERE id = ANY(%s)",
                                      (qvec, articles)).fetchall())

    def _sentences(self, ids: list[int], qvec: np.ndarray) -> dict[int, tuple]:
        """id -> (its vector's inner product with ``qvec``, names, numbers, flags)."""
        out = {}
        for i in range(0, len(ids), 5000):
            for s, dot, caps, nums, flags in self.conn.execute(
                    "SELECT id, -(vec <#> %s), caps, nums, flags FROM pix_sentences WHERE id = ANY(%s)",
                    (qvec, ids[i: i + 5000])):
                out[s] = (dot, caps, nums, flags)
        return out

    def _writer(self):
        """The connection writes go through (opened on the first write): searches keep theirs meanwhile."""
        if self._wconn is None or self._wconn.closed:
            from .pgvectors import prepare

            self._wconn = prepare(self._url)
        return self._wconn

    def close(self) -> None:
        self.conn.close()
        if self._wconn is not None:
            self._wconn.close()
