"""Settings, read once from the environment and ``.env`` (pydantic-settings).

Every setting is listed, with its default, in ``.env.example``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
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

    summary_length: int = Field(3, ge=1, le=10)
    max_question_chars: int = 300
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
    max_article_age_days: float = Field(30.0, ge=0)
    max_articles: int = Field(50_000, ge=1)

    log_level: str = "INFO"

    @field_validator("discord_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("corpus_path", mode="before")
    @classmethod
    def _blank_corpus_is_sample(cls, v: object) -> object:
        return SAMPLE_CORPUS if v is None or (isinstance(v, str) and not v.strip()) else v

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
