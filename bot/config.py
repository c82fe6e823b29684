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
    summary_dtype: str = "auto"
    allow_downloads: bool = False

    summary_length: int = Field(3, ge=1, le=10)
    max_question_chars: int = 300
    workers: int = Field(2, ge=1, le=16)
    queue_limit: int = Field(8, ge=1)
    cooldown_seconds: float = 5.0
    digest_empty_note: bool = False

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


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
