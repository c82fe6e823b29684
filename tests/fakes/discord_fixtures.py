"""pytest fixtures for the offline fake Discord.

Import them into a test module (or a conftest.py) to use them::

    from tests.fakes.discord_fixtures import fake_discord  # noqa: F401

``fake_discord`` is function-scoped (one server and one set of discord.py
endpoint overrides per test; the overrides are process-global, so tests using
it must not run concurrently in one process). It fails the test on teardown if
the client hit a route the fake does not implement.
"""

from __future__ import annotations

from typing import AsyncIterator

import pytest_asyncio

from .discord_server import FakeDiscord


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake
