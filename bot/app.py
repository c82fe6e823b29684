"""The services one Precis process shares: corpus, index, engines, models.

Plain synchronous Python (no Discord). Every front door — console, batch CLI,
Discord — builds one :class:`Precis` and calls the same handlers on it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Settings
from .corpus.article import Article
from .corpus.loader import LoadIssue, load_corpus
from .corpus.scope import Scopes
from .corpus.segment import split_cache, splitter_version
from .corpus.store import Corpus
from .engines.extractive import ExtractiveSummarizer
from .index.cache import EmbeddingCache, SplitCache
from .index.sentence_index import SentenceIndex
from .memory import release as release_memory
from .memory import trim as trim_memory

log = logging.getLogger(__name__)

ARCHIVE_BATCH = 500  # articles written to the index (INDEX_URL) per in-memory index built for them


@dataclass
class LoadReport:
    files: int = 0
    articles: int = 0
    added: int = 0
    duplicates: int = 0
    issues: list[LoadIssue] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"{self.articles} articles from {self.files} file(s)"]
        if self.added:
            parts.append(f"{self.added} new")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate(s) skipped")
        if self.issues:
            parts.append(f"{len(self.issues)} problem(s) skipped")
        return ", ".join(parts) + f" in {self.seconds:.1f}s"


class _SlotReranker:
    """What an :class:`~bot.engines.answerer.Answerer` scores with: the ASK_RERANKER slot's model, loaded on
    first use. A model that cannot load raises here, and the answerer ranks without it (logged once)."""

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot

    def score(self, question, items):
        return self.slot.get().score(question, items)


class _SlotSpanReader:
    """What an :class:`~bot.engines.answerer.Answerer` reads the short answer with: the ASK_PHRASE slot's
    model, loaded on first use. A model that cannot load raises here, and the answerer keeps to the rules."""

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot

    def read(self, question, sentence, title="", before="", always=False):
        return self.slot.get().read(question, sentence, title, before, always=always)


def _slot_state(slot, off: str, fallback: str) -> str:
    """/about's line for an optional /ask model: ``off`` without one, the fallback when it failed to load,
    else what runs (or that it loads with the first question)."""
    if slot is None:
        return off
    if slot.error:
        return f"unavailable, {fallback} - {slot.error}"
    model = slot.peek()
    return f"{model.describe()}" if model is not None else f"{slot.name} (loads with the first question)"


class ModelSlot:
    """Loads a model once, on first use; remembers a failure and its reason."""

    def __init__(self, name: str, factory) -> None:
        self.name = name
        self._factory = factory
        self._model = None
        self.error: str | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def peek(self):
        """The model if it is loaded, else None (never loads it)."""
        return self._model

    def get(self):
        from models.registry import ModelUnavailable

        with self._lock:
            if self._model is None and self.error is None:
                t = time.perf_counter()
                try:
                    self._model = self._factory()
                    log.info("model %s loaded in %.1fs", self.name, time.perf_counter() - t)
                except ModelUnavailable as exc:
                    self.error = str(exc)
                except Exception as exc:  # noqa: BLE001 - any failure leaves the rest of the bot working
                    self.error = f"{self.name!r} failed to load: {exc.__class__.__name__}: {exc}"
                if self.error:
                    log.error("model unavailable: %s", self.error)
            if self._model is None:
                raise ModelUnavailable(self.error or f"{self.name} is not loaded")
            return self._model


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of the corpus: an index and the engines built on it.

    A reload builds a new snapshot and swaps it in whole; a request takes the
    snapshot once and works on it, so readers never lock and never see a
    half-built index."""

    index: SentenceIndex
    summarizer: ExtractiveSummarizer


def _arrived_with_file_times(articles: list[Article]) -> list[Article]:
    """CORPUS_PATH articles arrive when their file was last written (stable across restarts)."""
    from dataclasses import replace

    mtimes: dict[str, float] = {}
    out = []
    for a in articles:
        head = a.source.rsplit(":", 1)[0]  # "file:line" for several articles per file
        path = head if head in mtimes else a.source
        if path not in mtimes:
            path = a.source if Path(a.source).is_file() else head
            try:
                mtimes[path] = Path(path).stat().st_mtime
            except OSError:
                mtimes[path] = time.time()
        out.append(replace(a, arrived=mtimes[path]))
    return out


class Precis:
    def __init__(self, settings: Settings, *, embedder=None, generator_factory=None) -> None:
        self.settings = settings
        self.started_at = time.time()
        self._lock = threading.RLock()
        if settings.no_bf16:
            from models.runtime import disable_bf16

            disable_bf16()
        if embedder is None:
            from models.embedder import Embedder

            embedder = Embedder(
                settings.embed_model,
                device=settings.model_device,
                threads=settings.model_threads or None,
                allow_download=settings.allow_downloads,
                precision=settings.embed_precision,
                backend=settings.embed_backend,
                cache_dir=settings.cache_dir,
            )
        self.embedder = embedder
        if settings.index_url is not None:  # several processes: one vector store, each article embedded once
            from .index.pgvectors import PgVectorStore

            self.cache = PgVectorStore(settings.index_url.get_secret_value(), embedder.name, embedder.dim)
        else:
            self.cache = EmbeddingCache(settings.cache_dir, embedder.name, embedder.dim)
        # INDEX_URL: /ask reads one index in PostgreSQL that every process writes to (bot/index/shared.py);
        # this process then holds the newest CACHE_ARTICLES in memory, not the archive
        self.shared_index = None
        if settings.index_url is not None:
            from .engines import timeframe
            from .index.shared import SharedIndex

            self.shared_index = SharedIndex(settings.index_url.get_secret_value(), embedder, timeframe.published)
        self.split_cache = SplitCache(settings.cache_dir, splitter_version())
        self.corpus = Corpus()
        self.scopes = Scopes()  # which guild may see which article
        self._from_files: set[str] = set()  # ids loaded from CORPUS_PATH: never retired by age
        self._file_memo: dict = {}  # corpus file -> ((mtime, size), what it held) for reloads
        self._arrival_rows = None  # (articles of a snapshot, their arrival times, may age out)
        self.clock = time.time  # what "now" is for hiding overdue articles (tests set it)
        self._snap = self._snapshot_of(SentenceIndex(embedder, self.cache))
        self.last_load = LoadReport()
        self.corpus_loaded = False  # True once load() has run (/readyz: the corpus is there to answer from)
        self._answerers: dict[int, object] = {}
        self.generate_lock = threading.Lock()  # one generation at a time: the model is not thread-safe
        if generator_factory is None:
            generator_factory = self._default_generator
        self.generator = ModelSlot(settings.summary_model, generator_factory)
        # VERIFY_MODEL's classifier, loaded on first use; None: the lexical checker alone
        from .grounding.model_checker import is_lexical

        self.checker = None if is_lexical(settings.verify_model) else ModelSlot(
            settings.verify_model, self._default_checker)
        self._checker_fallback_logged = False
        # ASK_RERANKER's cross-encoder, loaded with the first /ask (or preload_reranker); None: off
        from models.reranker import is_off

        self.reranker = None if is_off(settings.ask_reranker) else ModelSlot(
            settings.ask_reranker, self._default_reranker)
        self._rerank_source = _SlotReranker(self.reranker) if self.reranker else None
        # ASK_PHRASE's span reader, loaded with the first /ask (or preload_reranker); None: the phrase rules
        from models.span_reader import is_rules

        self.span_reader = None if is_rules(settings.ask_phrase) else ModelSlot(
            settings.ask_phrase, self._default_span_reader)
        self._span_source = _SlotSpanReader(self.span_reader) if self.span_reader else None

    def _default_span_reader(self):
        from models.span_reader import norm_backend, open_span_reader

        s = self.settings
        # The span reader runs where the embedder runs: PyTorch bf16 where the CPU has it, else ONNX Runtime
        # (int8 unless EMBED_PRECISION says float32); EMBED_BACKEND=onnx puts both there (no torch loaded).
        runtime = {}
        if getattr(self.embedder, "backend", None) == "onnx" or norm_backend(s.embed_backend) == "onnx":
            precision = getattr(self.embedder, "precision", s.embed_precision)
            runtime = {"backend": "onnx", "precision": precision if precision in ("float32", "int8") else
                       s.embed_precision, "cache_dir": s.cache_dir}
        reader = open_span_reader(s.ask_phrase, threads=s.model_threads or None, allow_download=s.allow_downloads,
                                  **runtime)
        reader.read("Who warms up?", "The model warms up.")
        # loading passes through float32 to int8 (or bf16): hand that scratch back (measured: +163 MB -> +76 MB)
        release_memory(collect=True)
        return reader

    def span_reader_state(self) -> str:
        """Which /ask short answer runs, for /about."""
        return _slot_state(self.span_reader, "the phrase rules (ASK_PHRASE=rules)", "the phrase rules instead")

    def _default_reranker(self):
        from models.reranker import open_reranker

        s = self.settings
        return open_reranker(s.ask_reranker, threads=s.model_threads or None, allow_download=s.allow_downloads)

    def reranker_state(self) -> str:
        """Which /ask ranking runs, for /about."""
        return _slot_state(self.reranker, "off (ASK_RERANKER=off): the reader's ranking", "ranking without it")

    def _default_checker(self):
        from .grounding.model_checker import checker_from_settings

        return checker_from_settings(self.settings)

    def verifier(self):
        """The verifier summary lines must pass: the lexical checks, plus VERIFY_MODEL's classifier when it
        loads. One that fails to load leaves the lexical checker in charge (logged once; /about says so)."""
        from models.registry import ModelUnavailable

        from .grounding.verifier import Verifier

        checker = None
        if self.checker is not None:
            try:
                checker = self.checker.get()
            except ModelUnavailable as exc:
                if not self._checker_fallback_logged:
                    self._checker_fallback_logged = True
                    log.warning("VERIFY_MODEL %r is unavailable (%s): checking with the lexical verifier",
                                self.settings.verify_model, exc)
        return Verifier(checker=checker)

    def checker_state(self) -> str:
        """Which checker runs, for /about."""
        slot = self.checker
        if slot is None:
            return "lexical (bundled: word overlap and structural checks)"
        if slot.error:
            return f"lexical - VERIFY_MODEL {slot.name} is unavailable: {slot.error}"
        state = "loaded" if slot.loaded else "loads on first use"
        return f"{slot.name} + the lexical checks ({state})"

    def _default_generator(self):
        from models.generator import open_generator

        s = self.settings
        key = s.summary_api_key.get_secret_value() if s.summary_api_key is not None else None
        return open_generator(
            s.summary_model,
            backend=s.summary_backend,
            cache_dir=s.data_dir / "models",
            device=s.model_device,
            threads=s.model_threads or None,
            allow_download=s.allow_downloads,
            dtype=s.summary_dtype,
            model_name=s.summary_model_name,
            api_key=key,
            connect_timeout=s.summary_connect_timeout,
            read_timeout=s.summary_read_timeout,
            max_concurrency=s.summary_max_concurrency,
            retries=s.summary_retries,
        )

    def preload_reranker(self) -> None:
        """Load ASK_RERANKER and ASK_PHRASE's span reader now (about a second each), so the first /ask does
        not wait for them; a failure is logged and /ask goes on without it, as on first use."""
        if self.reranker is not None:
            try:
                self.reranker.get().score("warm up", [("Warm up.", "", "")])
            except Exception:  # noqa: BLE001 - ModelSlot logged it; /about says why
                pass
        if self.span_reader is not None:
            try:
                self.span_reader.get().read("Who warms up?", "The model warms up.")
            except Exception:  # noqa: BLE001 - ModelSlot logged it; /about says why
                pass

    @property
    def shares_vectors(self) -> bool:
        """Whether sentence vectors live in a store other processes share (INDEX_URL)."""
        return hasattr(self.cache, "claim")

    def vectors_state(self) -> str:
        """Where sentence vectors are cached, for /about: this process's cache, or the shared store (INDEX_URL)
        with what this process wrote to it and read from it."""
        if not self.shares_vectors:
            return "cached in DATA_DIR by this process"
        from .store.db import redact_url

        c = self.cache
        state = "reachable" if c.available else f"unreachable, embedding here meanwhile ({c.down_reason})"
        return (f"shared in {redact_url(c.url)} ({state}); this process embedded {c.written:,}, read "
                f"{c.read:,} embedded elsewhere or before")

    def close_models(self) -> None:
        """Stop what a loaded model runs beside the bot (llama.cpp's in-process server and its workers,
        a model server's connection pool); called once, by the clean stop."""
        model = self.generator.peek()
        close = getattr(model, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                log.warning("closing the summary model: %s", exc)
        if self.shares_vectors:
            self.cache.close()
        if self.shared_index is not None:
            self.shared_index.close()

    def preload_generator(self) -> threading.Thread | None:
        """Load SUMMARY_MODEL in the background now, when it is cheap: a GGUF on llama.cpp in-process
        (under a second, the weights memory-mapped), then one short rewrite on each worker, so the first
        ``/summary mode:abstractive`` waits for neither. A transformers model (de-quantising a GGUF takes
        minutes and a GB on a small box) and a server URL still load on first use. The thread, or None."""
        from models.generator import pick_backend
        from models.registry import ModelUnavailable

        s = self.settings
        try:
            if self.generator.loaded or pick_backend(s.summary_model, s.summary_backend) != "llamacpp":
                return None
        except ModelUnavailable:
            return None  # the first use says why, as ever

        def run() -> None:
            from .engines.abstractive import warm_up

            try:
                gen = self.generator.get()
            except Exception:  # noqa: BLE001 - ModelSlot logged it; /about and the first use say why
                return
            t = time.perf_counter()
            try:
                warm_up(gen)
                log.info("generator warmed up in %.2fs", time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 - a warm-up is only an optimisation
                log.warning("generator warm-up failed: %s", exc)

        thread = threading.Thread(target=run, name="precis-preload", daemon=True)
        thread.start()
        return thread

    # ---------------------------------------------------------- snapshots
    @staticmethod
    def _snapshot_of(index: SentenceIndex) -> Snapshot:
        return Snapshot(index, ExtractiveSummarizer(index))

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    @property
    def index(self) -> SentenceIndex:
        return self._snap.index

    @property
    def summarizer(self) -> ExtractiveSummarizer:
        return self._snap.summarizer

    def _rebuild(self, progress: bool) -> None:
        from .engines.answerer import Answerer

        old = self._snap.index
        release_memory(collect=False)  # what queries freed goes back first: the addition's peak is lower
        index = SentenceIndex(self.embedder, self.cache)
        # A corpus that only grew is added to the old index (its rows shared, only the new ones built).
        index.build(self.corpus.articles, progress=progress, previous=old)
        snap = self._snapshot_of(index)
        # The /ask features are built here, by the loader, not in the first
        # user's /ask after a reload: for the new sentences only when it grew.
        answerer = Answerer(index, generator=None, previous=self._answerers.get(id(old)),
                            reranker=self._rerank_source, span_reader=self._span_source)
        self._snap = snap
        self._answerers = {id(index): answerer}
        if self.shared_index is not None:  # what the index lacks of this corpus, written (once across processes)
            self.shared_index.add(index, ageless=self._from_files)
        b = index.last_build
        # a big build frees much scratch memory; a small addition little (the embedder's batches), so no gc
        release_memory(collect=not b.get("incremental") or b.get("added_sentences", 0) > 0.1 * len(index))

    # ------------------------------------------------------------ corpus
    def load(self, path: Path | None = None, progress: bool = True) -> LoadReport:
        """(Re)load the corpus from CORPUS_PATH; new articles are added, the index rebuilt."""
        t = time.perf_counter()
        with split_cache(self.split_cache):  # a restart does not run the sentence splitter again
            # files unchanged since the last load are not read again (a watched folder of many files)
            result = load_corpus(path or self.settings.corpus_path, memo=self._file_memo)
            result.articles[:] = _arrived_with_file_times(result.articles)
            n_files = len(result.articles)
            fetched = self.settings.fetched_path  # what feeds and pasted links added before a restart
            if fetched.is_file():
                more = load_corpus(fetched, memo=self._file_memo)
                result.articles.extend(more.articles)
                result.issues.extend(more.issues)
        with self._lock:
            self._from_files.update(a.id for a in result.articles[:n_files])
            before = self.corpus.duplicates
            added = self.corpus.add(result.articles)
            retired = self._retire_locked(time.time(), batched=True)
            if added or retired or len(self.index.articles) != len(self.corpus):
                self._rebuild(progress)
            report = LoadReport(
                files=result.files,
                articles=len(self.corpus),
                added=len(added),
                duplicates=self.corpus.duplicates - before,
                issues=result.issues,
                seconds=time.perf_counter() - t,
            )
            self.last_load = report
            self.corpus_loaded = True
        log.info("corpus: %s", report.summary())
        return report

    def add_articles(self, articles: list[Article], on_added=None) -> list[Article]:
        """Add articles (feeds, pasted links); ``on_added(new)`` runs under the corpus lock,
        before the index is rebuilt (the feeds record there how digests treat them)."""
        with self._lock:
            added = self.corpus.add(articles)
            if added and on_added is not None:
                if self.shares_vectors and self.cache.available:
                    # their vectors first: on_added records them in the store, which tells the other
                    # processes, and they then read these vectors instead of embedding them again
                    try:
                        self.index.embed([s for a in added for s in a.sentences] + [a.title for a in added])
                    except Exception as exc:  # noqa: BLE001 - the rebuild embeds them; recording them matters more
                        log.warning("embedding %d new article(s) before recording them failed (%s: %s)",
                                    len(added), type(exc).__name__, exc)
                on_added(added)
            retired = self._retire_locked(time.time(), batched=True) if added else []
            if added or retired:
                self._rebuild(progress=False)
            return added

    # ------------------------------------------------------------ retention
    def retire(self, now: float | None = None, batched: bool = False) -> list[Article]:
        """Retire what retention says must go (the bot calls this every minute, ``batched``); the index
        is rebuilt only when something went. Returns the retired articles (with INDEX_URL: those that left
        this process's cache; the index's own are tombstoned there, see :meth:`retire_shared`)."""
        now = time.time() if now is None else now
        with self._lock:
            gone = self._retire_locked(now, batched)
            if gone:
                self._rebuild(progress=False)
        self.retire_shared(now)
        # what the minute's questions freed goes back to the OS (a search at 2M sentences frees tens of MB
        # that the heap keeps); once a minute, not after each search, whose next one would fault it all in
        trim_memory()
        return gone

    def retire_shared(self, now: float | None = None) -> int:
        """INDEX_URL: tombstone the index's feed and link articles past MAX_ARTICLE_AGE_DAYS (by arrival) and
        each server's oldest past MAX_ARTICLES; returns how many went (0 without INDEX_URL)."""
        si = self.shared_index
        if si is None:
            return 0
        s = self.settings
        n = 0
        if s.max_article_age_days > 0:
            n += si.retire_older((time.time() if now is None else now) - s.max_article_age_days * 86400.0)
        n += si.cap_per_guild(s.max_articles)
        if n:
            log.info("retention: %d article(s) retired from the index (past %g days or over MAX_ARTICLES=%d in "
                     "their server)", n, s.max_article_age_days, s.max_articles)
        return n

    def _retire_locked(self, now: float, batched: bool = False) -> list[Article]:
        """Feed and link articles older than MAX_ARTICLE_AGE_DAYS by arrival, then the oldest arrivals
        past MAX_ARTICLES (CORPUS_PATH articles included, but never by age). Files are left alone.

        Retiring rebuilds the index (a grown index only grows), so it goes in batches: over the cap,
        1 % of MAX_ARTICLES more than the excess goes; by age (``batched``), articles wait until
        they are 1 % of the corpus or the oldest is an hour overdue - hidden from every answer,
        list and digest meanwhile (:meth:`visible`)."""
        s = self.settings
        arts = self.corpus.articles
        old: list[str] = []
        if s.max_article_age_days > 0:
            cutoff = now - s.max_article_age_days * 86400.0
            overdue = [a for a in arts if a.id not in self._from_files and (a.arrived or now) < cutoff]
            wait = (
                batched and overdue and len(overdue) < max(1, len(arts) // 100)
                and min(a.arrived or now for a in overdue) >= cutoff - 3600.0
            )
            old = [] if wait else [a.id for a in overdue]
        n_age = len(old)
        # with INDEX_URL this corpus is a cache of the newest CACHE_ARTICLES (the index holds the rest)
        cap = s.max_articles if self.shared_index is None else s.cache_articles
        excess = len(arts) - len(old) - cap
        if excess > 0:
            excess += cap // 100
            dropping = set(old)
            rest = sorted((a for a in arts if a.id not in dropping), key=lambda a: (a.arrived or 0.0, a.order))
            old += [a.id for a in rest[:excess]]
        if not old:
            return []
        if self.shared_index is not None and len(old) > n_age:
            # what leaves the cache before it was written to the index is written now; what cannot be (the
            # index is unavailable) stays in memory until it can
            leaving = set(old[n_age:])
            todo = self.shared_index.missing([a for a in arts if a.id in leaving])
            if todo:
                self.index_archived(todo)
                todo = self.shared_index.missing(todo)
            keep = leaving if todo is None else {a.id for a in todo}
            if keep:
                log.warning("cache: %d article(s) stay in memory past CACHE_ARTICLES until the index in PostgreSQL "
                            "can take them", len(keep))
                old = old[:n_age] + [i for i in old[n_age:] if i not in keep]
            if not old:
                return []
        # a CORPUS_PATH article capped away must not come back with the next reload of its file
        files = [i for i in old if i in self._from_files]
        gone = self.corpus.remove([i for i in old if i not in self._from_files])
        gone += self.corpus.remove(files, remember=True)
        if self.shared_index is None:
            log.info("retention: %d article(s) retired (%d past %g days, the rest over MAX_ARTICLES=%d); %d left",
                     len(gone), n_age, s.max_article_age_days, s.max_articles, len(self.corpus))
        else:
            log.info("cache: %d article(s) left this process's memory (%d past %g days, the rest over "
                     "CACHE_ARTICLES=%d; the index in PostgreSQL keeps these for /ask); %d held", len(gone), n_age,
                     s.max_article_age_days, cap, len(self.corpus))
        return gone

    def article_row(self, article_id: str) -> int | None:
        for i, a in enumerate(self.index.articles):
            if a.id == article_id:
                return i
        return None

    # ------------------------------------------------------------ scoping
    def visible(self, snap: Snapshot, guild_id: int | None):
        """Bool per article row of ``snap`` that ``guild_id`` may see (None: all of them); an article past
        MAX_ARTICLE_AGE_DAYS that waits for the next retirement batch is seen by no one."""
        mask = self.scopes.mask(snap.index.articles, guild_id)
        over = self._overdue(snap)
        if over is None:
            return mask
        return ~over if mask is None else mask & ~over

    def _overdue(self, snap: Snapshot, now: float | None = None) -> np.ndarray | None:
        """Bool per article row: past its age, not yet retired (None when there is none)."""
        age = self.settings.max_article_age_days
        if age <= 0 or not snap.index.articles:
            return None
        arts = snap.index.articles
        found = self._arrival_rows
        if found is None or found[0] is not arts:
            arrived = np.fromiter((a.arrived if a.arrived else np.inf for a in arts), dtype=np.float64, count=len(arts))
            ages = np.fromiter((a.id not in self._from_files for a in arts), dtype=bool, count=len(arts))
            found = self._arrival_rows = (arts, arrived, ages)
        over = found[2] & (found[1] < (self.clock() if now is None else now) - age * 86400.0)
        return over if over.any() else None

    def visible_rows(self, snap: Snapshot, guild_id: int | None) -> list[int]:
        mask = self.visible(snap, guild_id)
        n = len(snap.index.articles)
        return list(range(n)) if mask is None else [int(i) for i in np.flatnonzero(mask)]

    def answerer_for(self, snap: Snapshot):
        """The /ask engine for a snapshot (built on first use; its arrays are precomputed)."""
        from .engines.answerer import Answerer

        key = id(snap.index)
        found = self._answerers.get(key)
        if found is None:
            with self._lock:
                found = self._answerers.get(key)
                if found is None:
                    found = Answerer(snap.index, generator=None, reranker=self._rerank_source,
                                     span_reader=self._span_source)
                    if snap is self._snap:
                        self._answerers[key] = found
        return found

    @property
    def answerer(self):
        return self.answerer_for(self._snap)

    def index_archived(self, articles: list[Article]) -> int:
        """INDEX_URL: write ``articles`` to the index without holding them (older articles: see
        :meth:`bot.sources.service.Sources.backfill_index`); those past MAX_ARTICLE_AGE_DAYS are left out.
        Returns how many this process wrote."""
        si = self.shared_index
        age = self.settings.max_article_age_days
        cutoff = time.time() - age * 86400.0 if age > 0 else -float("inf")
        arts = [a for a in articles if a.id in self._from_files or not (a.arrived and a.arrived < cutoff)]
        written = 0
        for i in range(0, len(arts) if si is not None else 0, ARCHIVE_BATCH):  # a bounded index at a time
            written += si.add(self._index_of(arts[i:i + ARCHIVE_BATCH]), ageless=self._from_files)
        return written

    def _index_of(self, articles: list[Article]) -> SentenceIndex:
        """An in-memory index of just these articles (vectors from this process's cache or the shared store)."""
        index = SentenceIndex(self.embedder, self.cache)
        index.build(articles, progress=False)
        return index

    def articles_snapshot(self, ids: list[str], guild_id: int | None) -> Snapshot:
        """A snapshot of exactly these articles that ``guild_id`` may see (digests): those this process holds,
        and with INDEX_URL those only the index still has (their vectors read, not embedded again)."""
        snap = self._snap
        held = {a.id: a for a in snap.index.articles}
        want = list(dict.fromkeys(ids))
        over = self._overdue(snap)
        hidden = ({snap.index.articles[i].id for i in np.flatnonzero(over)} if over is not None else set())
        arts = {i: held[i] for i in want if i in held and i not in hidden and self.scopes.can_see(held[i], guild_id)}
        missing = [i for i in want if i not in held]
        if missing and self.shared_index is not None:
            arts.update((a.id, a) for a in self.shared_index.load(missing, guild_id, self.scopes))
        return self._snapshot_of(self._index_of([arts[i] for i in want if i in arts]))

    def archived(self, query: str, guild_id: int | None) -> Snapshot | None:
        """INDEX_URL: a snapshot of the index's articles that may match ``query`` (an id, title or topic
        words) for ``guild_id``, for /summary of an article no longer in this process's memory; None without
        INDEX_URL, while it is unavailable, or when nothing comes close. Their vectors are read from the
        shared store, not embedded again."""
        si = self.shared_index
        if si is None:
            return None
        arts = si.find_articles(query, guild_id, self.scopes)
        return self._snapshot_of(self._index_of(arts)) if arts else None

    def shared_answerer(self, guild_id: int | None):
        """INDEX_URL: (the /ask engine on the index in PostgreSQL, the asking guild's scope there), or None
        (no INDEX_URL, or the index is unavailable: /ask then answers from this process's corpus)."""
        si = self.shared_index
        if si is None:
            return None
        visible = si.scope(guild_id, self.scopes)
        if visible is None:
            return None
        from .engines.answerer import Answerer

        answerer = si.answerer(lambda pg: Answerer(None, reranker=self._rerank_source, span_reader=self._span_source,
                                                   retriever=pg))
        return None if answerer is None else (answerer, visible)
