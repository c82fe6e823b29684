"""A real PostgreSQL for the tests: ``TEST_DATABASE_URL``, else the machine's local server
(postgresql://postgres@127.0.0.1:5432/test). Each test gets its own schema (dropped after), reached
through a URL whose ``search_path`` points at it, so tests never see each other's tables.

No server: the PostgreSQL tests skip, saying why. With ``PRECIS_REQUIRE_POSTGRES=1`` (``.ci/run``
sets it) they fail instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import quote

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_state: dict[str, str | None] = {}


def server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL


def _unreachable() -> str | None:
    """None when the server answers, else why not (checked once per run)."""
    if "why" not in _state:
        import psycopg

        try:
            with psycopg.connect(_conninfo(server_url()), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _state["why"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means: no server to test against
            _state["why"] = f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return _state["why"]


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def require_postgres() -> str:
    """The server's URL, or skip (fail under PRECIS_REQUIRE_POSTGRES=1) with the reason."""
    why = _unreachable()
    if why is not None:
        msg = f"PostgreSQL at {server_url().split('@')[-1]} unreachable ({why}); set TEST_DATABASE_URL"
        if os.environ.get("PRECIS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PRECIS_REQUIRE_POSTGRES=1 but {msg}", pytrace=False)
        pytest.skip(msg)
    return server_url()


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def create_schema() -> tuple[str, str]:
    """(a URL whose tables live in a new, empty schema, that schema's name)."""
    import psycopg

    base = require_postgres()
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(_conninfo(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return schema_url(base, name), name


def drop_schema(name: str) -> None:
    import psycopg

    with psycopg.connect(_conninfo(server_url()), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_url():
    """A PostgreSQL URL with a schema of its own for this test."""
    url, name = create_schema()
    try:
        yield url
    finally:
        drop_schema(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Where a store lives, once per engine: a SQLite file path, or a PostgreSQL URL with a schema of its own."""
    if request.param == "sqlite":
        yield tmp_path / "data" / "precis.sqlite3"
        return
    url, name = create_schema()
    try:
        yield url
    finally:
        drop_schema(name)
