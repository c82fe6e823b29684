"""``python -m bot check``: validate the settings and reach each part, one line per part.

Parts, in order: settings, discord, database, index (when INDEX_URL is set), corpus, embedder, summary, reader,
reranker (and checker when VERIFY_MODEL names a model), feeds, metrics. Each prints one line::

    ok    database: SQLite file data/precis.sqlite3 (will be created)
    FAIL  database: cannot reach PostgreSQL postgresql://precis:***@127.0.0.1:5999/x (connection refused)

Statuses: ``ok``; ``warn`` (works, worse than configured, or something to know); ``skip`` (off, or not
checked); ``FAIL`` (broken). Exit status: 0 with no FAIL, 1 with a FAIL, 2 when the settings do not parse.

``python -m bot run`` runs the same checks first (:func:`preflight`), without the Discord login (discord.py's
own follows at once) and treating what the bot already rides out as warnings: no DISCORD_TOKEN (the local
console runs), a database server, summary server or feed host that does not answer yet (retried), missing
/ask helper weights (the phrase rules / the reader's ranking instead). Everything else that is broken stops
it with these lines instead of a traceback.

Nothing here loads a model: it checks that its files are present (or, for a server, that it answers), so a
check takes a few seconds. Secrets (the token, the database password, the summary API key) never appear
in a line.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TextIO
from urllib.parse import urlsplit

Mode = str  # "check" (every problem is a FAIL, network included) or "run" (the start-up preflight)

OK, WARN, SKIP, FAIL = "ok", "warn", "skip", "FAIL"
SECRET_FIELDS = frozenset({"discord_token", "database_url", "index_url", "summary_api_key"})
# A Discord bot token: three base64url parts separated by dots (user id . timestamp . HMAC).
TOKEN_FORMAT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
DISCORD_TIMEOUT = 6.0  # the login request, all told
DATABASE_TIMEOUT = 3  # PostgreSQL connect_timeout (seconds; libpq takes a whole number, at least 2)
SERVER_TIMEOUT = 3.0  # the summary server's GET /models
DNS_TIMEOUT = 3.0  # every FEEDS host, resolved at once
MAX_PARSE_BYTES = 50 * 1024 * 1024  # a larger corpus is counted in files, not parsed, by check
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".gguf", ".pt", ".pth")


@dataclass(frozen=True)
class Result:
    status: str  # ok, warn, skip, FAIL
    part: str
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status:<5} {self.part}: {self.detail}"


class LoginRefused(Exception):
    """Discord answered and refused the token (HTTP 401)."""


class Unreachable(Exception):
    """Discord (or a server) did not answer: no network, DNS, a firewall, a timeout."""


# ---------------------------------------------------------------- helpers

def _show(path: Path | str) -> str:
    """A path as a person would type it: relative to the working folder when under it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def _first_line(exc: BaseException | str, limit: int = 160) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else (exc.__class__.__name__ if isinstance(exc, BaseException) else "")
    return line[:limit]


def _secrets(settings) -> list[str]:
    found = []
    for name in ("discord_token", "summary_api_key"):
        value = getattr(settings, name, None)
        if value is not None and value.get_secret_value().strip():
            found.append(value.get_secret_value().strip())
    for field in ("database_url", "index_url"):
        value = getattr(settings, field, None) if settings is not None else None
        if value is None:
            continue
        url = value.get_secret_value().strip()
        raw = re.search(r"://[^:/@]*:(.*)@", url)  # what an unparsable URL's password would be
        if raw:
            found.append(raw.group(1))
        try:
            import sqlalchemy as sa

            pw = sa.engine.make_url(url).password
            if pw:
                found.append(str(pw))
        except Exception:  # noqa: BLE001 - unparsable: the raw match above stands in
            pass
    return [s for s in found if len(s) >= 3]


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


# ---------------------------------------------------------------- settings

def describe_settings_error(err: dict) -> str:
    """One pydantic error as one line, ``NAME: what is wrong``; a secret field's value is never shown."""
    loc = [str(x) for x in err.get("loc", ()) if not isinstance(x, int)]
    field = loc[0] if loc else ""
    msg = str(err.get("msg", "invalid")).strip()
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    msg = msg.splitlines()[0] if msg else "invalid"
    name = field.upper()
    if field and field not in SECRET_FIELDS and err.get("type") != "value_error":
        value = err.get("input")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            msg += f" (got {str(value)[:60]!r})"
    if not name or msg.startswith(name):
        return msg
    return f"{name}: {msg}"


def settings_error_lines(exc: Exception) -> list[str]:
    """A settings error (pydantic's ValidationError, or pydantic-settings' own) as one line per bad field."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return [describe_settings_error(e) for e in errors()]
        except Exception:  # noqa: BLE001 - fall back to the first line
            pass
    return [_first_line(exc)]


def load_settings_checked(**overrides: object):
    """(settings or None, the settings results, the names of the fields that did not parse).

    With bad fields, the settings are loaded again with those fields at their defaults, so the other
    parts can still be checked (a part that depends on a bad field is skipped)."""
    from .config import Settings, load_settings

    results: list[Result] = []
    bad: set[str] = set()
    retry: dict[str, object] = {}
    for _ in range(4):  # each pass: the fields that failed at their defaults, to find the next problems
        try:
            settings = load_settings(**{**overrides, **retry})
            break
        except Exception as exc:  # noqa: BLE001 - ValidationError or pydantic-settings' SettingsError
            errors = exc.errors() if callable(getattr(exc, "errors", None)) else []
            results += [Result(FAIL, "settings", line) for line in settings_error_lines(exc)]
            new = {str(e["loc"][0]) for e in errors if e.get("loc")}
            # a rule across fields (SHARD_IDS against SHARD_COUNT) names its settings in the message
            new |= {f for e in errors if not e.get("loc") for f in Settings.model_fields
                    if re.search(rf"\b{f.upper()}\b", str(e.get("msg", "")))}
            new = {f for f in new if f in Settings.model_fields} - set(retry)
            if not new:
                settings = None
                break
            bad |= new
            retry.update({f: Settings.model_fields[f].default for f in new})
    else:
        settings = None
    if results:
        return settings, results, bad | ({"*"} if settings is None else set())
    env = Path(".env")
    source = f"environment and {_show(env.resolve())}" if env.is_file() else "environment (no .env here)"
    return settings, [Result(OK, "settings", f"read from the {source}")], set()


# ---------------------------------------------------------------- parts

def check_discord(settings, mode: Mode, login: Callable[[str], str] | None) -> Result:
    if settings.discord_token is None:
        if mode == "run":
            return Result(SKIP, "discord", "no DISCORD_TOKEN: starting the local console instead")
        return Result(FAIL, "discord", "no DISCORD_TOKEN (environment or .env): `python -m bot run` "
                                       "would start the local console instead of the bot")
    token = settings.discord_token.get_secret_value().strip()
    if token.lower().startswith("bot "):
        return Result(FAIL, "discord", "DISCORD_TOKEN starts with 'Bot ': give the token alone")
    if token[:1] in "\"'" or token[-1:] in "\"'":
        return Result(FAIL, "discord", "DISCORD_TOKEN is in quotes inside its value: remove them")
    if not TOKEN_FORMAT.match(token):
        return Result(FAIL, "discord", f"DISCORD_TOKEN is not a bot token (expected three base64url parts "
                                       f"separated by dots; {len(token)} characters, {token.count('.')} dots)")
    if mode == "run" or login is None:
        return Result(OK, "discord", "DISCORD_TOKEN has the format of a bot token (login follows)")
    try:
        who = login(token)
    except LoginRefused:
        return Result(FAIL, "discord", "Discord refused the token (401 Unauthorized): reset it in the "
                                       "Developer Portal and update DISCORD_TOKEN")
    except Unreachable as exc:
        return Result(FAIL, "discord", f"cannot reach Discord to try the token ({exc})")
    except Exception as exc:  # noqa: BLE001 - any other answer: say what it was
        return Result(FAIL, "discord", f"login failed: {exc.__class__.__name__}: {_first_line(exc)}")
    return Result(OK, "discord", f"logged in as {who}")


DISCORD_API = "https://discord.com/api/v10"  # discord.py's REST base (discord.http.Route.BASE)


def discord_login(token: str, timeout: float = DISCORD_TIMEOUT, *, base: str = DISCORD_API) -> str:
    """What discord.py's login does first (``GET /users/@me`` with the token), then nothing more; the bot
    user's name. Raises :class:`LoginRefused` (Discord answered 401) or :class:`Unreachable`. Plain HTTP here:
    only the Discord adapter imports discord.py (tests/test_architecture.py)."""
    import httpx

    headers = {"Authorization": f"Bot {token}", "User-Agent": "DiscordBot (https://github.com/precis, check)"}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), trust_env=False, follow_redirects=False) as client:
            r = client.get(base.rstrip("/") + "/users/@me", headers=headers)
    except httpx.TimeoutException as exc:
        raise Unreachable(f"no answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise Unreachable(f"{exc.__class__.__name__}: {_first_line(exc)}") from exc
    if r.status_code == 401:
        raise LoginRefused()
    if r.status_code == 429 or r.status_code >= 500:
        raise Unreachable(f"Discord answered HTTP {r.status_code}")
    if r.status_code != 200:
        raise RuntimeError(f"Discord answered HTTP {r.status_code}")
    try:
        me = r.json()
    except ValueError as exc:
        raise RuntimeError("Discord's answer was not JSON") from exc
    name = str(me.get("username") or "?")
    if me.get("discriminator") not in (None, "", "0"):
        name += f"#{me['discriminator']}"
    return f"{name} (id {me.get('id')})"


def check_database(settings, mode: Mode) -> Result:
    from .store.db import is_postgres_url

    target = settings.database
    if is_postgres_url(target):
        return _check_postgres(str(target), settings, mode)
    return _check_sqlite(Path(target))


def _check_sqlite(path: Path) -> Result:
    import sqlite3

    where = f"SQLite file {_show(path)}"
    if path.exists():
        if not path.is_file():
            return Result(FAIL, "database", f"{where} is not a file")
        if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            return Result(FAIL, "database", f"{where} is not writable (it and its folder must be)")
        try:
            conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=2)
            try:
                tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return Result(WARN, "database", f"{where} is locked by another process right now")
            return Result(WARN, "database", f"{where} is damaged ({_first_line(exc)}): it is set aside "
                                            "and a new one started at start-up")
        size = path.stat().st_size
        return Result(OK, "database", f"{where} ({tables} tables, {size / 1024:.0f} KiB)")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return Result(FAIL, "database", f"cannot create {where}: {_show(folder)} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Result(FAIL, "database", f"cannot create {where}: {_show(folder)} is not writable")
    return Result(OK, "database", f"{where} (created at start-up)")


def _check_postgres(url: str, settings, mode: Mode) -> Result:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc

    from .store.db import _alembic_heads, _pg_url, redact_url

    shown = redact_url(url)
    try:
        engine = sa.create_engine(_pg_url(url), poolclass=sa.pool.NullPool,
                                  connect_args={"connect_timeout": DATABASE_TIMEOUT})
    except Exception:  # noqa: BLE001 - make_url / the driver refused the URL itself (its text may quote it)
        return Result(FAIL, "database", f"DATABASE_URL is not a usable PostgreSQL URL ({shown}): expected "
                                        "postgresql://user:password@host:port/database")
    try:
        with engine.connect() as c:
            has_version = c.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar()
            revs = [r[0] for r in c.execute(sa.text("SELECT version_num FROM alembic_version"))] if has_version else []
    except sa_exc.OperationalError as exc:
        reason = _first_line(getattr(exc, "orig", None) or exc)
        reason = re.sub(r'^connection failed: connection to server at "[^"]*", port \d+ failed: ', "", reason)
        if mode == "run":
            return Result(WARN, "database", f"cannot reach PostgreSQL {shown} ({reason}); the bot starts and "
                                            f"keeps retrying (DATABASE_WAIT_SECONDS={settings.database_wait_seconds:g})")
        return Result(FAIL, "database", f"cannot reach PostgreSQL {shown} ({reason})")
    except Exception as exc:  # noqa: BLE001 - reached, but a query failed (permissions...)
        return Result(FAIL, "database", f"PostgreSQL {shown}: {exc.__class__.__name__}: {_first_line(exc)}")
    finally:
        engine.dispose()
    try:
        head, known = _alembic_heads()
    except Exception:  # noqa: BLE001 - the migrations folder is ours: cannot happen in a whole checkout
        head, known = "", frozenset()
    if not revs:
        state = "empty: the tables are created at start-up"
    elif any(r not in known for r in revs):
        return Result(FAIL, "database", f"PostgreSQL {shown}: schema revision {', '.join(revs)} is newer than "
                                        "this Precis (upgrade Precis)")
    elif head and revs != [head]:
        state = f"schema {', '.join(revs)}, upgraded to {head} at start-up"
    else:
        state = f"schema {head}, current"
    return Result(OK, "database", f"PostgreSQL {shown} ({state})")


def check_corpus(settings, mode: Mode) -> Result:
    from .corpus.loader import iter_corpus_files, load_corpus

    path = Path(settings.corpus_path)
    shown = _show(path)
    if not path.exists():
        return Result(FAIL, "corpus", f"CORPUS_PATH {shown} does not exist")
    files = iter_corpus_files(path)
    if not files:
        return Result(WARN, "corpus", f"no .txt, .md or .jsonl files in {shown}: the corpus starts empty")
    unreadable = [f for f in files if not os.access(f, os.R_OK)]
    if unreadable:
        return Result(FAIL, "corpus", f"{len(unreadable)} of {len(files)} files in {shown} cannot be read "
                                      f"(first: {_show(unreadable[0])})")
    n_files = f"{len(files)} file{'s' if len(files) != 1 else ''}"
    size = sum(f.stat().st_size for f in files)
    if mode == "run" or size > MAX_PARSE_BYTES:
        return Result(OK, "corpus", f"{shown}: {n_files}, {size / 2**20:.1f} MiB")
    loader_log = logging.getLogger("bot.corpus.loader")
    level = loader_log.level
    loader_log.setLevel(logging.CRITICAL)  # each skipped item is summed up below, not logged
    try:
        result = load_corpus(path)
    finally:
        loader_log.setLevel(level)
    loaded = f"{shown}: {len(result.articles)} article{'s' if len(result.articles) != 1 else ''} from {n_files}"
    if not result.articles:
        first = f" (first problem: {result.issues[0]})" if result.issues else ""
        return Result(WARN, "corpus", f"{loaded}: the corpus starts empty{first}")
    if result.issues:
        return Result(WARN, "corpus", f"{loaded}, {len(result.issues)} skipped (first: {result.issues[0]})")
    return Result(OK, "corpus", loaded)


def _hub_cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:  # noqa: BLE001 - no hub library, odd id: not cached
        return False


def _where(spec, path: Path) -> str:
    if spec.source == "bundled" and spec.package:
        return f"bundled, pip package {spec.package.split('==')[0]}"
    return _show(path)


def _model_files(setting: str, role: str, settings) -> tuple[str, str]:
    """(status, detail) for a model setting's files, without loading it."""
    from models.registry import ModelUnavailable, resolve

    try:
        spec = resolve(setting, role)  # type: ignore[arg-type]
    except ModelUnavailable as exc:
        return FAIL, f"{setting}: {exc}"
    if spec.source == "hub":
        if _hub_cached(spec.path):
            return OK, f"{spec.name} (Hugging Face cache)"
        if settings.allow_downloads:
            return WARN, f"{spec.name} is not in the local Hugging Face cache: downloaded on first use (ALLOW_DOWNLOADS)"
        return FAIL, f"{spec.name} is not in the local Hugging Face cache and ALLOW_DOWNLOADS is off"
    folder = Path(spec.path)
    if spec.gguf_file:
        f = folder / spec.gguf_file
        if not f.is_file():
            return FAIL, f"{spec.name}: {_show(f)} is missing"
        return OK, f"{spec.name} ({_where(spec, f)}, {f.stat().st_size / 2**20:.0f} MiB GGUF)"
    weights = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    if not weights:
        return FAIL, f"{spec.name}: no weights (.safetensors, .bin, .onnx) in {_show(folder)}"
    size = sum(p.stat().st_size for p in weights)
    return OK, f"{spec.name} ({_where(spec, folder)}, {size / 2**20:.0f} MiB)"


def check_embedder(settings, mode: Mode) -> Result:
    from models.embedder import BACKENDS, PRECISIONS

    if settings.embed_backend.strip().lower() not in BACKENDS:
        return Result(FAIL, "embedder", f"EMBED_BACKEND {settings.embed_backend!r} is not one of {', '.join(BACKENDS)}")
    if settings.embed_precision.strip().lower() not in PRECISIONS:
        return Result(FAIL, "embedder", f"EMBED_PRECISION {settings.embed_precision!r} is not one of {', '.join(PRECISIONS)}")
    status, detail = _model_files(settings.embed_model, "embedder", settings)
    return Result(status, "embedder", detail)


def check_summary(settings, mode: Mode) -> Result:
    """SUMMARY_MODEL: its files, or its server answering. In ``run`` a problem is a warning: the bot runs
    without it (extractive summaries and /ask), and abstractive requests say why."""
    from models.openai_backend import is_server_url

    soft = WARN if mode == "run" else FAIL
    suffix = " (abstractive summaries are unavailable until it is fixed)" if mode == "run" else ""
    if is_server_url(settings.summary_model):
        status, detail = _check_server(settings, mode)
    else:
        from models.generator import pick_backend
        from models.registry import ModelUnavailable

        try:
            backend = pick_backend(settings.summary_model, settings.summary_backend)
        except ModelUnavailable as exc:
            return Result(soft, "summary", f"SUMMARY_BACKEND: {exc}{suffix}")
        if backend == "openai":
            return Result(soft, "summary", f"SUMMARY_BACKEND=openai needs an http(s)://host:port/v1 "
                                           f"SUMMARY_MODEL, not {settings.summary_model!r}{suffix}")
        status, detail = _model_files(settings.summary_model, "generator", settings)
        if status == OK:
            from models.llamacpp import available

            if backend == "llamacpp" and not available():
                status, detail = FAIL, f"{detail}: SUMMARY_BACKEND=llamacpp but xllamacpp is not installed"
            else:
                detail += f", {'llama.cpp' if backend == 'llamacpp' else 'transformers'}"
    if status == FAIL:
        return Result(soft, "summary", detail + suffix)
    return Result(status, "summary", detail)


def _check_server(settings, mode: Mode) -> tuple[str, str]:
    import httpx

    from models.openai_backend import _check_url
    from models.registry import ModelUnavailable

    try:
        url = _check_url(settings.summary_model)
    except ModelUnavailable as exc:
        return FAIL, f"SUMMARY_MODEL: {exc}"
    headers = {"Accept": "application/json"}
    if settings.summary_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.summary_api_key.get_secret_value()}"
    timeout = min(SERVER_TIMEOUT, settings.summary_connect_timeout + 1.0)
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), headers=headers, follow_redirects=False,
                          trust_env=False) as client:
            r = client.get(url + "/models")
    except httpx.HTTPError as exc:
        return FAIL, f"cannot reach the summary server {url} ({exc.__class__.__name__}: {_first_line(exc)})"
    if r.status_code in (401, 403):
        return FAIL, f"the summary server {url} refused the key (HTTP {r.status_code}): check SUMMARY_API_KEY"
    if r.status_code >= 500:
        return FAIL, f"the summary server {url} answers HTTP {r.status_code}"
    served = ""
    if r.status_code == 200:
        try:
            names = [m.get("id") for m in r.json().get("data", []) if isinstance(m, dict)]
            served = f"; serves {', '.join(str(n) for n in names[:3])}" if names else ""
        except Exception:  # noqa: BLE001 - answered, just not a model list
            pass
    return OK, f"server {url} answers (HTTP {r.status_code} on /models{served})"


def _optional_model(settings, mode: Mode, part: str, setting_name: str, value: str, role: str,
                    is_off: Callable[[str], bool], off_text: str, fallback: str) -> Result:
    if is_off(value):
        return Result(SKIP, part, off_text)
    status, detail = _model_files(value, role, settings)
    if status == FAIL:
        return Result(WARN if mode == "run" else FAIL, part, f"{setting_name}: {detail} ({fallback})")
    return Result(status, part, detail)


def check_reader(settings, mode: Mode) -> Result:
    from models.span_reader import is_rules

    return _optional_model(settings, mode, "reader", "ASK_PHRASE", settings.ask_phrase, "reader", is_rules,
                           "the phrase rules (ASK_PHRASE=rules)", "/ask's short answer falls back to the phrase rules")


def check_reranker(settings, mode: Mode) -> Result:
    from models.reranker import is_off

    return _optional_model(settings, mode, "reranker", "ASK_RERANKER", settings.ask_reranker, "reranker", is_off,
                           "off (ASK_RERANKER=off): the reader's ranking", "/ask ranks without it")


def check_checker(settings, mode: Mode) -> Result:
    return _optional_model(settings, mode, "checker", "VERIFY_MODEL", settings.verify_model, "classifier",
                           lambda v: False, "", "the lexical checker runs alone")


def _resolve_all(hosts: list[str], timeout: float) -> dict[str, list[str] | str]:
    """host -> its addresses, or why it did not resolve; all at once, within ``timeout`` in all."""
    found: dict[str, list[str] | str] = {}

    def one(host: str) -> None:
        try:
            found[host] = sorted({ai[4][0] for ai in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
        except OSError as exc:
            found[host] = (exc.strerror or _first_line(exc)).lower()

    threads = [threading.Thread(target=one, args=(h,), name="precis-check-dns", daemon=True) for h in hosts]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return {h: found.get(h, f"no answer within {timeout:g} s") for h in hosts}


def _private(addresses: list[str]) -> bool:
    import ipaddress

    try:
        return all(not ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses)
    except ValueError:
        return False


def check_feeds(settings, mode: Mode) -> Result:
    urls = settings.feed_urls
    if not urls:
        return Result(OK, "feeds", "no FEEDS (feeds can be added with /feed add)")
    soft = WARN if mode == "run" else FAIL
    bad_urls, hosts = [], {}
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            bad_urls.append(u[:80])
        else:
            hosts.setdefault(parts.hostname, u)
    if bad_urls:
        return Result(soft, "feeds", f"{len(bad_urls)} of {len(urls)} FEEDS are not http(s) URLs "
                                     f"(first: {bad_urls[0]!r})")
    resolved = _resolve_all(list(hosts), DNS_TIMEOUT)
    failed = {h: r for h, r in resolved.items() if isinstance(r, str)}
    n = f"{len(urls)} feed{'s' if len(urls) != 1 else ''}"
    if failed:
        first, why = next(iter(failed.items()))
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        retry = "; polled again later" if mode == "run" else ""
        return Result(soft, "feeds", f"{n}: {first}{more} do{'es' if len(failed) == 1 else ''} not resolve "
                                     f"({why}){retry}")
    private = [h for h, r in resolved.items() if _private(r)]  # type: ignore[arg-type]
    if private and not settings.fetch_allow_private:
        return Result(WARN, "feeds", f"{n}: {private[0]} resolves to a private address and FETCH_ALLOW_PRIVATE "
                                     "is off, so it is refused")
    return Result(OK, "feeds", f"{n}, {len(hosts)} host{'s' if len(hosts) != 1 else ''}, each resolves")


def check_metrics(settings, mode: Mode) -> Result:
    port, host = settings.metrics_port, settings.metrics_host
    if port is None:
        return Result(SKIP, "metrics", "off (METRICS_PORT unset)")
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return Result(FAIL, "metrics", f"METRICS_HOST {host!r} does not resolve ({exc.strerror or exc})")
    family, socktype, proto, _, addr = infos[0]
    try:
        with socket.socket(family, socktype, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
    except OSError as exc:
        return Result(FAIL, "metrics", f"cannot listen on {where} ({(exc.strerror or str(exc)).lower()})")
    return Result(OK, "metrics", f"{where} is free (/metrics, /healthz, /readyz)")


def check_index(settings, mode: Mode) -> Result:
    """INDEX_URL: unset (each process's own index and vector cache), or a PostgreSQL with pgvector 0.8 or later
    that answers."""
    if settings.index_url is None:
        return Result(OK, "index", "in memory, vectors cached in DATA_DIR by this process (INDEX_URL unset)")
    import psycopg

    from .index.pgvectors import PROBE_DIM, TABLE, VectorStoreUnavailable, prepare, probe_distance
    from .store.db import redact_url

    url = settings.index_url.get_secret_value().strip()
    shown = redact_url(url)
    try:
        conn = prepare(url, connect_timeout=DATABASE_TIMEOUT)
    except VectorStoreUnavailable as exc:
        reason = re.sub(r'connection failed: connection to server at "[^"]*", port \d+ failed: ', "", str(exc))
        if mode == "run" and "pgvector" not in reason:
            return Result(WARN, "index", f"cannot reach {shown} ({reason}); the bot starts, embeds locally and "
                                         "keeps retrying")
        return Result(FAIL, "index", f"{shown}: {reason}")
    try:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        try:  # the vector loop /ask's searches run (a pgvector built for another CPU dies here)
            probe_distance(conn)
        except psycopg.OperationalError as exc:  # the connection went: a blip, or the server process died
            # at start-up a blip must not stop the bot (an unreachable index is a warning there); 'bot check' fails
            return Result(WARN if mode == "run" else FAIL, "index",
                          f"{shown}: pgvector {version} lost the connection computing a {PROBE_DIM}-dimension "
                          f"distance ({str(exc).splitlines()[0][:160]}). If it does again, its server process "
                          "died, as a pgvector built for instructions this CPU lacks (AVX-512, say) does: build it "
                          "for this CPU (make OPTFLAGS=\"\")")
        except psycopg.Error as exc:  # e.g. a statement timeout: shown as it is
            return Result(WARN if mode == "run" else FAIL, "index", f"{shown}: pgvector {version} could not compute "
                                                                      f"a distance ({str(exc).splitlines()[0][:200]})")
        # the planner's estimate: a count(*) of millions of rows at every start is not worth it
        count = conn.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = %s",
                             (TABLE,)).fetchone()[0]
        articles = conn.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = 'pix_articles'"
                                ).fetchone()
    finally:
        conn.close()
    if tuple(int(x) for x in re.findall(r"\d+", version)[:2]) < (0, 8):
        return Result(FAIL, "index", f"{shown}: pgvector {version}; /ask's index needs 0.8 or later (iterative "
                                     "index scans): ALTER EXTENSION vector UPDATE")
    indexed = f"about {articles[0]:,} articles indexed" if articles else "nothing indexed yet"
    return Result(OK, "index", f"{shown}: pgvector {version}, about {count:,} vectors shared, {indexed}")


# Each part: (name, the setting fields it depends on (prefixes), the check).
PARTS: list[tuple[str, tuple[str, ...], Callable]] = [
    ("discord", ("discord_token",), None),  # needs the login: called apart
    ("database", ("database_", "data_dir"), check_database),
    ("index", ("index_url",), check_index),
    ("corpus", ("corpus_path",), check_corpus),
    ("embedder", ("embed_",), check_embedder),
    ("summary", ("summary_", "allow_downloads"), check_summary),
    ("reader", ("ask_phrase",), check_reader),
    ("reranker", ("ask_reranker",), check_reranker),
    ("checker", ("verify_",), check_checker),
    ("feeds", ("feeds", "fetch_"), check_feeds),
    ("metrics", ("metrics_",), check_metrics),
]


def run_checks(mode: Mode = "check", *, login: Callable[[str], str] | None = discord_login,
               overrides: dict | None = None):
    """(results, settings or None, whether the settings parsed). ``login``: how the token is tried
    (None: format only). Nothing is printed."""
    settings, results, bad = load_settings_checked(**(overrides or {}))
    for name, fields, fn in PARTS:
        if name == "checker" and (settings is None or _is_lexical(settings.verify_model)):
            continue  # VERIFY_MODEL unset: the lexical checker, nothing to check
        if name == "index" and (settings is None or settings.index_url is None):
            continue  # INDEX_URL unset: each process's own cache in DATA_DIR, nothing to check
        if "*" in bad or any(b.startswith(fields) for b in bad):
            why = "the settings do not parse" if "*" in bad else \
                ", ".join(sorted(b.upper() for b in bad if b.startswith(fields))) + " is invalid (above)"
            results.append(Result(SKIP, name, f"not checked: {why}"))
            continue
        try:
            r = check_discord(settings, mode, login) if name == "discord" else fn(settings, mode)
        except Exception as exc:  # noqa: BLE001 - a check must never end in a traceback
            r = Result(FAIL, name, f"check failed: {exc.__class__.__name__}: {_first_line(exc)}")
        results.append(r)
    hidden = _secrets(settings) if settings is not None else []
    results = [Result(r.status, r.part, _scrub(r.detail, hidden)) for r in results]
    return results, settings, not any(r.part == "settings" and r.status == FAIL for r in results)


def _is_lexical(value: str) -> bool:
    from .grounding.model_checker import is_lexical

    return is_lexical(value)


def exit_code(results: list[Result], settings_ok: bool) -> int:
    if not settings_ok:
        return 2
    return 1 if any(r.status == FAIL for r in results) else 0


def check(out: TextIO | None = None, *, login: Callable[[str], str] | None = discord_login,
          overrides: dict | None = None) -> int:
    """``python -m bot check``: every part, one line each, on ``out`` (stdout); the exit status."""
    out = out or sys.stdout
    results, _, settings_ok = run_checks("check", login=login, overrides=overrides)
    for r in results:
        print(r.line, file=out, flush=True)
    return exit_code(results, settings_ok)


def preflight(out: TextIO | None = None, *, overrides: dict | None = None):
    """``python -m bot run``'s start: the same checks (no Discord login, what the bot rides out as
    warnings), printed on ``out`` (stderr). (exit status, settings): status 0 means start."""
    out = out or sys.stderr
    results, settings, settings_ok = run_checks("run", login=None, overrides=overrides)
    for r in results:
        print(r.line, file=out, flush=True)
    code = exit_code(results, settings_ok)
    if code:
        print(f"Not starting: fix the FAIL line{'s' if sum(r.status == FAIL for r in results) > 1 else ''} "
              "above (python -m bot check tries every part, Discord's login included).", file=out, flush=True)
    return code, settings
