"""Settings, read once from the environment and ``.env`` (pydantic-settings).

Every setting is listed, with its default, in ``.env.example``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SAMPLE_CORPUS = Path(__file__).resolve().parent / "data" / "sample_corpus.txt"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    discord_token: SecretStr | None = None
    discord_dev_guild_id: int | None = None

    corpus_path: Path = SAMPLE_CORPUS
    data_dir: Path = Path("data")
    watch_corpus: bool = True

    embed_model: str = "minilm"
    summary_model: str = "smollm2-135m-instruct"
    model_device: str = "auto"
    model_threads: int = 1
    embed_precision: str = "auto"
    embed_backend: str = "auto"
    no_bf16: bool = False  # act as a CPU without native bf16 (what such a CPU runs), for measuring it
    summary_dtype: str = "auto"
    allow_downloads: bool = False
    # Generator backend (models/generator.py open_generator): auto = an http(s)://.../v1 SUMMARY_MODEL is an
    # OpenAI-compatible server, a .gguf runs on llama.cpp in-process (xllamacpp), anything else on transformers.
    summary_backend: str = "auto"  # auto, transformers, llamacpp, openai
    summary_model_name: str = ""  # the served model's name, where the server needs one
    summary_api_key: SecretStr | None = None  # sent only to SUMMARY_MODEL's server; never logged
    summary_connect_timeout: float = Field(5.0, gt=0, le=120)
    summary_read_timeout: float = Field(60.0, gt=0, le=600)
    # generation requests at once: llama.cpp in-process runs this many single-thread workers; a server gets at
    # most this many in flight. 3: a 3-sentence summary's rewrites all at once (on 2 cores too: ~25 % sooner
    # than 2 workers, each request on one thread, the OS sharing the cores).
    summary_max_concurrency: int = Field(3, ge=1, le=64)
    summary_retries: int = Field(3, ge=0, le=10)

    summary_length: int = Field(3, ge=1, le=10)
    max_question_chars: int = 300
    # /ask's reranker (models/reranker.py): "off" (the reader's ranking alone, the default: the cross-encoder
    # trained here measured no better on held-out years, docs/models.md "The reranker"), precis-reranker (the weights
    # training/reranker.py writes to models/weights/reranker), or a folder / hub id of a one-logit cross-encoder.
    # Weights that are missing or fail to load leave /ask on the reader's ranking (one log line; /about says so).
    ask_reranker: str = "off"
    # /ask's short answer (models/span_reader.py): precis-span (the span reader trained here, shipped in
    # models/weights/span; training/span.py), "rules" (the phrase rules of bot/engines/answer_phrase.py, as
    # before), or a folder / hub id of an extractive-QA model. Weights that are missing or fail to load leave
    # the phrase to the rules (one log line; /about says so).
    ask_phrase: str = "precis-span"
    workers: int = Field(2, ge=1, le=16)
    # Admission to the worker lanes (bot/adapters/discord/pool.py): a request is queued while its
    # expected wait is at most QUEUE_MAX_WAIT_SECONDS, told its wait past QUEUE_NOTICE_SECONDS, and
    # refused as "busy" only past the limit. QUEUE_LIMIT is now only a ceiling on waiting jobs per lane
    # (0: none); it used to be the whole rule (8).
    queue_limit: int = Field(500, ge=0)
    queue_max_wait_seconds: float = Field(30.0, ge=0, le=840)
    queue_notice_seconds: float = Field(5.0, ge=0)
    cooldown_seconds: float = 5.0
    digest_empty_note: bool = False

    # Live news: feeds and pasted links (bot/sources/)
    feeds: str = ""  # comma-separated RSS/Atom URLs for the global corpus
    feed_interval_minutes: int = Field(15, ge=5)
    fetch_allow_private: bool = False
    fetch_contact: str = ""
    fetch_max_bytes: int = Field(5 * 1024 * 1024, ge=10_000)
    fetch_timeout_seconds: float = Field(20.0, gt=0, le=300)

    # Retention (bot/app.py Precis.retire): feed and link articles leave after this many days
    # (0: never); the whole corpus is capped, oldest arrivals first. CORPUS_PATH files never age out.
    # With INDEX_URL the cap is per server (in the index), and a process holds only the newest
    # CACHE_ARTICLES in memory (for /summary, /articles and digests; /ask reads the whole index).
    max_article_age_days: float = Field(30.0, ge=0)
    max_articles: int = Field(50_000, ge=1)
    cache_articles: int = Field(5_000, ge=1)

    # The checker (bot/grounding/model_checker.py): "lexical" (the bundled verifier alone) or a Hugging Face
    # sequence-classification model (NLI / factual consistency: hub id or folder) scoring each summary line
    # against its support, on top of the lexical checks (which stay blocking). A model that fails to load
    # leaves the lexical checker in charge (log + /about). VERIFY_LABEL: the label meaning "supported" when
    # the model's config does not name it (a name or an index).
    verify_model: str = "lexical"
    verify_threshold: float = Field(0.5, ge=0.0, le=1.0)
    verify_label: str = ""

    log_level: str = "INFO"

    # Running as a service (docs/operations.md). METRICS_PORT: /metrics (Prometheus), /healthz and /readyz
    # on this port (unset: off), bound to METRICS_HOST (127.0.0.1 unless set). STOP_GRACE_SECONDS: on
    # SIGTERM/SIGINT, how long interactions in flight and a digest post get to finish (a feed poll is cut
    # at once and its lease handed back).
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    stop_grace_seconds: float = Field(20.0, ge=0, le=600)

    # Past one process (bot/store/db.py; docs/scaling.md). DATABASE_URL unset: the SQLite
    # file in DATA_DIR (one process, nothing to install); postgresql://user:password@host:5432/db:
    # a PostgreSQL server that several processes share. Start-up waits for an unreachable server,
    # retrying every few seconds for DATABASE_WAIT_SECONDS (the bot answers extractive queries meanwhile).
    database_url: SecretStr | None = None
    database_wait_seconds: float = Field(120.0, ge=0)
    # INDEX_URL: PostgreSQL with pgvector (may be the same database as DATABASE_URL). Sentence and title
    # vectors are kept there, shared: the process that ingests an article embeds it, the others read its
    # vectors (bot/index/pgvectors.py), and /ask searches the index there (bot/index/shared.py). Unset:
    # each process keeps its own cache in DATA_DIR and its own index in memory.
    index_url: SecretStr | None = None
    # Discord shards: SHARD_COUNT in all; SHARD_IDS, the ones this process serves ("0,1"; empty: all).
    shard_count: int = Field(1, ge=1, le=16384)
    shard_ids: str = ""

    @field_validator("summary_api_key", mode="before")
    @classmethod
    def _blank_api_key_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("discord_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("corpus_path", mode="before")
    @classmethod
    def _blank_corpus_is_sample(cls, v: object) -> object:
        return SAMPLE_CORPUS if v is None or (isinstance(v, str) and not v.strip()) else v

    @field_validator("database_url", "index_url", mode="before")
    @classmethod
    def _blank_database_is_sqlite(cls, v: object, info) -> object:
        name = info.field_name.upper()
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, str) and not v.strip().lower().startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            unset = "the SQLite file in DATA_DIR" if name == "DATABASE_URL" else "each process's own cache in DATA_DIR"
            raise ValueError(f"{name} must be a postgresql://user:password@host:port/database URL "
                             f"(or unset for {unset})")
        if isinstance(v, str) and v.split("://", 1)[-1].split("/", 1)[0].count("@") > 1:
            # read as a host otherwise, and a password's tail would show in errors and logs
            raise ValueError(f"{name}: write an '@' inside the user name or password as %40")
        return v

    @model_validator(mode="after")
    def _shards_in_range(self) -> "Settings":
        self.shards  # raises ValueError on a bad SHARD_IDS
        return self

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shard ids this process serves (None: all of them, SHARD_IDS unset)."""
        text = self.shard_ids.strip()
        if not text:
            return None
        try:
            ids = tuple(dict.fromkeys(int(x) for x in text.split(",") if x.strip()))
        except ValueError:
            raise ValueError(f"SHARD_IDS must be comma-separated numbers, e.g. 0,1 (got {text[:50]!r})") from None
        bad = [i for i in ids if not 0 <= i < self.shard_count]
        if bad or not ids:
            raise ValueError(f"SHARD_IDS {text[:50]!r}: each id must be from 0 to SHARD_COUNT - 1 ({self.shard_count - 1})")
        return ids

    @property
    def database(self) -> Path | str:
        """What :class:`bot.store.Store` opens: the PostgreSQL URL, or the SQLite file in DATA_DIR."""
        return self.database_url.get_secret_value().strip() if self.database_url is not None else self.db_path

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _blank_port_is_off(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("discord_dev_guild_id", mode="before")
    @classmethod
    def _blank_guild_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @property
    def db_path(self) -> Path:
        return self.data_dir / "precis.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def feed_urls(self) -> list[str]:
        return list(dict.fromkeys(u.strip() for u in self.feeds.split(",") if u.strip()))

    @property
    def fetched_path(self) -> Path:
        """Articles fetched from feeds and links, kept across restarts (JSON Lines, loaded like the corpus)."""
        return self.data_dir / "fetched" / "articles.jsonl"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
