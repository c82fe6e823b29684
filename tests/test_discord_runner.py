"""``run_discord``: exits cleanly on a bad token and never logs it."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from bot.adapters.discord.runner import RedactSecret, run_discord
from tests.fakes.discord_server import FakeDiscord


@pytest.fixture
def fake_in_thread():
    """A fake Discord on its own loop in a thread, so run_discord can own the main thread's loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeDiscord()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    fake.install()
    yield fake
    fake.uninstall()
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
    fake.assert_no_unknown_routes()


def test_a_wrong_token_exits_with_1_and_is_never_logged(fake_in_thread, fast_app_factory, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "MTIz.not-the-real-token.QUJD"
    app = fast_app_factory(discord_token=secret, watch_corpus=False)
    assert run_discord(app) == 1
    assert "Discord refused the token" in caplog.text
    assert secret not in caplog.text
    [login] = fake_in_thread.requests_to("/users/@me", "GET")
    assert login.status == 401 and login.headers["Authorization"] == f"Bot {secret}"


def test_no_token_is_refused(fast_app_factory, capsys):
    assert run_discord(fast_app_factory(watch_corpus=False)) == 2


def test_the_redaction_filter_hides_the_token():
    f = RedactSecret("s3cret")
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "token is %s", ("s3cret",), None)
    assert f.filter(rec) and rec.getMessage() == "token is [DISCORD_TOKEN]"
