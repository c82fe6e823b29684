"""``python -m bot check`` and ``run``'s start-up checks (bot/check.py): one line per part, real checks.

Nothing here reaches the internet: the Discord login goes to the fake Discord (tests/fakes/discord_server.py)
or to a closed local port, the summary server is tests/fakes/openai_server.py, PostgreSQL is a closed port.
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import socket
import subprocess
import sys

import pytest

from bot.check import check, discord_login, run_checks
from bot.config import Settings
from tests.conftest import REPO
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI

PARTS = ("settings", "discord", "database", "corpus", "embedder", "summary", "reader", "reranker", "feeds", "metrics")
GOOD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789ab"
SETTING_NAMES = {f.upper() for f in Settings.model_fields} | {"ALLOW_DOWNLOADS", "HF_HUB_OFFLINE"}


def _clean_env(tmp_path, **extra: str) -> dict[str, str]:
    """The environment of a fresh clone: no setting of the developer's own, DATA_DIR in tmp_path."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env.update({"PYTHONPATH": str(REPO), "DATA_DIR": str(tmp_path / "data"), **extra})
    return env


@pytest.fixture
def env(tmp_path, monkeypatch):
    """In-process: the settings read only what a test sets (cwd tmp_path: no .env of the developer's)."""
    for key in list(os.environ):
        if key.upper() in SETTING_NAMES:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def _check(login=None) -> tuple[int, str]:
    out = io.StringIO()
    code = check(out, login=login)
    return code, out.getvalue()


def _line(text: str, part: str) -> str:
    lines = [ln for ln in text.splitlines() if ln[6:].startswith(part + ":")]
    assert len(lines) == 1, f"expected one {part} line in:\n{text}"
    return lines[0]


def test_fresh_clone_reports_each_part_and_exits_non_zero(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bot", "check"], cwd=tmp_path, env=_clean_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert [ln[6:].split(":", 1)[0] for ln in lines] == list(PARTS), r.stdout
    assert all(ln[:6] in ("ok    ", "warn  ", "skip  ", "FAIL  ") for ln in lines)
    assert _line(r.stdout, "discord").startswith("FAIL") and "DISCORD_TOKEN" in _line(r.stdout, "discord")
    assert [ln for ln in lines if ln.startswith("FAIL")] == [_line(r.stdout, "discord")]  # the rest is fine
    assert "SQLite" in _line(r.stdout, "database")
    assert not (tmp_path / "data").exists()  # check creates nothing
    assert "2 articles" in _line(r.stdout, "corpus")


def test_unreachable_postgres_is_one_line_without_the_password(env):
    env.setenv("DATABASE_URL", "postgresql://precis:secret@127.0.0.1:1/x")
    code, text = _check()
    assert code == 1
    line = _line(text, "database")
    assert line.startswith("FAIL  database: cannot reach PostgreSQL postgresql://precis:***@127.0.0.1:1/x")
    assert "secret" not in text


def test_unreachable_postgres_only_warns_at_run(env):
    """run starts anyway and retries (bot/store/reconnect.py): the same line, as a warning."""
    env.setenv("DATABASE_URL", "postgresql://precis:secret@127.0.0.1:1/x")
    results, _, ok = run_checks("run", login=None)
    db = [r for r in results if r.part == "database"]
    assert ok and len(db) == 1 and db[0].status == "warn" and "retrying" in db[0].detail
    assert all("secret" not in r.line for r in results)


def test_invalid_settings_one_line_per_field_no_secret(env):
    env.setenv("DATABASE_URL", "mysql://precis:secret@db/x")
    env.setenv("METRICS_PORT", "eighty")
    env.setenv("CORPUS_PATH", "nowhere")  # the other parts are still checked
    code, text = _check()
    assert code == 2
    settings_lines = [ln for ln in text.splitlines() if ln.startswith("FAIL  settings:")]
    assert len(settings_lines) == 2
    assert any("DATABASE_URL" in ln for ln in settings_lines)
    assert any("METRICS_PORT" in ln and "'eighty'" in ln for ln in settings_lines)
    assert "secret" not in text and "mysql" not in text
    assert _line(text, "database").startswith("skip") and "DATABASE_URL" in _line(text, "database")
    assert _line(text, "corpus").startswith("FAIL")  # checked with the rest of the settings


def test_an_unescaped_at_in_the_password_is_refused_without_showing_it(env):
    # read as part of the host otherwise, the password's tail would reach error messages and logs
    env.setenv("DATABASE_URL", "postgresql://precis:hunter@2word@127.0.0.1:1/x")
    code, text = _check()
    assert code == 2 and "%40" in _line(text, "settings")
    assert "hunter" not in text and "2word" not in text


def test_redacted_database_urls_hide_the_whole_password():
    from bot.store.db import redact_url

    assert redact_url("postgresql://u:p@ss%40w0rd@127.0.0.1:1/x") == "postgresql://u:***@127.0.0.1:1/x"
    assert redact_url("postgresql://u:secret@db:5432/precis") == "postgresql://u:***@db:5432/precis"


def test_invalid_settings_for_other_commands_hide_the_secret(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bot", "fetch", "--url", "http://127.0.0.1:1/"], cwd=tmp_path,
                       env=_clean_env(tmp_path, DATABASE_URL="mysql://precis:secret@db/x"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "DATABASE_URL" in r.stderr and "secret" not in r.stderr and "Traceback" not in r.stderr


def test_malformed_token_fails_on_format_without_showing_it(env):
    env.setenv("DISCORD_TOKEN", "hunter2-not-a-token")
    calls = []
    code, text = _check(login=calls.append)
    assert code == 1 and calls == []  # never sent anywhere
    assert "not a bot token" in _line(text, "discord")
    assert "hunter2" not in text


def test_token_with_bot_prefix(env):
    env.setenv("DISCORD_TOKEN", "Bot " + GOOD_TOKEN)
    code, text = _check(login=lambda t: "x")
    assert "'Bot '" in _line(text, "discord") and GOOD_TOKEN not in text


async def test_token_logs_in_against_the_fake_discord(env):
    env.setenv("DISCORD_TOKEN", GOOD_TOKEN)
    async with FakeDiscord(token=GOOD_TOKEN) as fake:
        out = io.StringIO()  # the login as the bot's own starts: GET /users/@me with the token
        code = await asyncio.to_thread(check, out, login=functools.partial(discord_login, base=fake.rest_base))
    text = out.getvalue()
    assert code == 0, text
    assert _line(text, "discord").startswith("ok    discord: logged in as")
    assert fake.requests_to("/users/@me", "GET")
    assert GOOD_TOKEN not in text


async def test_refused_token_against_the_fake_discord(env):
    env.setenv("DISCORD_TOKEN", GOOD_TOKEN)
    async with FakeDiscord(token="MTEx.other.token") as fake:
        out = io.StringIO()
        code = await asyncio.to_thread(check, out, login=functools.partial(discord_login, base=fake.rest_base))
    text = out.getvalue()
    assert code == 1
    assert "Discord refused the token" in _line(text, "discord")
    assert fake.requests_to("/users/@me", "GET")
    assert GOOD_TOKEN not in text


def test_unreachable_discord_is_told_apart_from_a_refusal(env):
    env.setenv("DISCORD_TOKEN", GOOD_TOKEN)
    code, text = _check(login=functools.partial(discord_login, base="http://127.0.0.1:1/api/v10"))
    assert code == 1
    line = _line(text, "discord")
    assert "cannot reach Discord" in line and "refused the token" not in line
    assert GOOD_TOKEN not in text


def test_missing_corpus_fails(env, tmp_path):
    env.setenv("CORPUS_PATH", str(tmp_path / "nowhere"))
    code, text = _check(login=lambda t: "x")
    assert code == 1
    assert _line(text, "corpus").startswith("FAIL  corpus: CORPUS_PATH") and "does not exist" in text


def test_corpus_counts_articles_and_skipped_lines(env, tmp_path):
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"title": "One", "text": "Body one. More."}\n{broken\n'
                                    '{"title": "Two", "text": "Body two. More."}\n')
    env.setenv("CORPUS_PATH", str(folder))
    _, text = _check()
    line = _line(text, "corpus")
    assert line.startswith("warn") and "2 articles from 1 file" in line and "1 skipped" in line


def test_data_dir_that_is_a_file_fails(env, tmp_path):
    (tmp_path / "afile").write_text("x")
    env.setenv("DATA_DIR", str(tmp_path / "afile"))
    code, text = _check()
    assert code == 1 and "is not a folder" in _line(text, "database")


def test_existing_sqlite_file_is_opened_read_only(env, tmp_path):
    from bot.store import Store

    Store(tmp_path / "data" / "precis.sqlite3").close()
    _, text = _check()
    assert _line(text, "database").startswith("ok    database: SQLite file data/precis.sqlite3 (")


def test_missing_models_fail_in_check_and_warn_at_run(env, tmp_path):
    env.setenv("SUMMARY_MODEL", str(tmp_path / "nowhere.gguf"))
    env.setenv("ASK_RERANKER", str(tmp_path / "no-reranker"))
    env.setenv("EMBED_MODEL", str(tmp_path / "no-embedder"))
    code, text = _check()
    assert code == 1
    for part in ("summary", "reranker", "embedder"):
        assert _line(text, part).startswith("FAIL"), text
    results, _, _ = run_checks("run", login=None)
    status = {r.part: r.status for r in results}
    assert status["summary"] == "warn" and status["reranker"] == "warn"  # the bot runs without them
    assert status["embedder"] == "FAIL"  # ... but not without the embedder


def test_summary_server_answers_or_not(env):
    with FakeOpenAI([("ok", "x")]) as fake:
        env.setenv("SUMMARY_MODEL", fake.url)
        env.setenv("SUMMARY_API_KEY", "sk-very-secret")
        _, text = _check()
    assert _line(text, "summary").startswith(f"ok    summary: server {fake.url} answers (HTTP 200")
    assert fake.requests[0]["path"] == "/v1/models"
    assert fake.requests[0]["headers"].get("Authorization") == "Bearer sk-very-secret"
    assert "sk-very-secret" not in text
    env.setenv("SUMMARY_MODEL", "http://127.0.0.1:1/v1")
    code, text = _check()
    assert code == 1 and "cannot reach the summary server" in _line(text, "summary")


def test_feeds_resolve_or_not(env):
    env.setenv("FEEDS", "http://localhost/feed.xml")
    _, text = _check()
    assert "private address" in _line(text, "feeds")  # FETCH_ALLOW_PRIVATE is off
    env.setenv("FETCH_ALLOW_PRIVATE", "true")
    _, text = _check()
    assert _line(text, "feeds").startswith("ok    feeds: 1 feed, 1 host, each resolves")
    env.setenv("FEEDS", "https://no-such-host.invalid/rss,ftp://example.org/x")
    code, text = _check()
    assert code == 1 and "not http(s) URLs" in _line(text, "feeds")
    env.setenv("FEEDS", "https://no-such-host.invalid/rss")
    code, text = _check()
    assert code == 1 and "no-such-host.invalid does not resolve" in _line(text, "feeds")


def test_metrics_port_in_use(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env.setenv("METRICS_PORT", str(busy.getsockname()[1]))
        code, text = _check()
        assert code == 1 and "cannot listen on 127.0.0.1:" in _line(text, "metrics")
    _, text = _check()
    assert _line(text, "metrics").startswith("ok    metrics: 127.0.0.1:")


def test_run_with_a_missing_corpus_prints_the_checks_and_stops(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path,
                       env=_clean_env(tmp_path, CORPUS_PATH=str(tmp_path / "nowhere")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert _line(r.stderr, "corpus").startswith("FAIL  corpus: CORPUS_PATH")
    assert _line(r.stderr, "discord").startswith("skip  discord: no DISCORD_TOKEN")  # the console, not a FAIL
    assert "Not starting" in r.stderr
    assert r.stdout == ""


def test_run_with_invalid_settings_stops_with_status_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path,
                       env=_clean_env(tmp_path, METRICS_PORT="eighty"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "METRICS_PORT" in _line(r.stderr, "settings") and _line(r.stderr, "metrics").startswith("skip")


def test_run_with_an_unparsable_database_url(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path,
                       env=_clean_env(tmp_path, DATABASE_URL="postgresql://precis:secret@db:notaport/x"),
                       capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stderr and "secret" not in r.stderr
    # the scheme is right, so the settings parse; the database check finds the URL unusable: one line
    assert r.returncode == 1, r.stderr
    assert _line(r.stderr, "database").startswith("FAIL  database: DATABASE_URL is not a usable PostgreSQL URL")
