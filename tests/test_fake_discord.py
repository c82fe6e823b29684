"""Proves the offline fake Discord (tests/fakes/) with a throwaway discord.py client.

The client here is NOT the product bot: it is the smallest thing that exercises
login, READY/GUILD_CREATE, command sync, interaction acknowledgement, followups,
rate limits and the failure modes the harness must surface.
"""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord import app_commands

from tests.fakes import discord_payloads as P
from tests.fakes.discord_fixtures import fake_discord  # noqa: F401  (fixture)
from tests.fakes.discord_server import ClientCrashed, FakeDiscord, running_client


class ThrowawayClient(discord.Client):
    """/echo (defer + embed followup), /slow (answers late), /pick (autocomplete),
    /panel (a button that edits its message)."""

    def __init__(self, *, slow_delay: float = 0.0) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)
        self.tree_errors: list[app_commands.AppCommandError] = []
        self.slow_delay = slow_delay

        @self.tree.command(name="echo", description="Echo text back as an embed")
        @app_commands.describe(text="What to echo", times="How many times to repeat it")
        async def echo(interaction: discord.Interaction, text: str, times: app_commands.Range[int, 1, 5] = 1) -> None:
            await interaction.response.defer(thinking=True)
            embed = discord.Embed(title="Echo", description=" ".join([text] * times))
            await interaction.followup.send(embed=embed, allowed_mentions=discord.AllowedMentions.none())

        @self.tree.command(name="slow", description="Answers after a delay")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(self.slow_delay)
            await interaction.response.send_message("done")

        async def fruit_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            fruits = ["apple", "apricot", "banana", "cherry"]
            return [app_commands.Choice(name=f, value=f) for f in fruits if f.startswith(current)]

        @self.tree.command(name="pick", description="Pick a fruit")
        @app_commands.autocomplete(fruit=fruit_autocomplete)
        async def pick(interaction: discord.Interaction, fruit: str) -> None:
            await interaction.response.send_message(fruit, ephemeral=True)

        @self.tree.command(name="panel", description="A message with a button")
        async def panel(interaction: discord.Interaction) -> None:
            view = discord.ui.View(timeout=None)  # no timeout task left pending after the test
            button = discord.ui.Button(label="OK", custom_id="panel:ok")

            async def clicked(click: discord.Interaction) -> None:
                await click.response.edit_message(content="clicked", view=None)

            button.callback = clicked
            view.add_item(button)
            await interaction.response.send_message("press it", view=view)

        @self.tree.command(name="admin", description="Needs Manage Server")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.checks.has_permissions(manage_guild=True)
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("ok", ephemeral=True)

        @self.tree.error
        async def on_tree_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.tree_errors.append(error)

    async def sync_to(self, guild_id: int) -> list[app_commands.AppCommand]:
        guild = discord.Object(id=guild_id)
        self.tree.copy_global_to(guild=guild)
        return await self.tree.sync(guild=guild)


async def _ready_and_synced(fake: FakeDiscord, client: ThrowawayClient) -> None:
    synced = await client.sync_to(fake.guild_id)
    assert {c.name for c in synced} == {"echo", "slow", "pick", "panel", "admin"}


async def test_login_ready_sync_and_echo_followup(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with running_client(fake, ThrowawayClient) as client:
        # Logged in and ready against the fake, with the guild from GUILD_CREATE.
        assert client.user is not None and client.user.id == P.DEFAULT_BOT_USER_ID
        assert client.application_id == fake.application_id
        guild = client.get_guild(fake.guild_id)
        assert guild is not None and guild.get_channel(fake.channel_id) is not None
        assert [r.status for r in fake.requests_to("/users/@me", "GET")] == [200]
        assert fake.heartbeats and fake.heartbeats[0].acked_at is not None
        assert client.latency < 1.0

        await _ready_and_synced(fake, client)
        put = fake.requests_to(f"/applications/{fake.application_id}/guilds/{fake.guild_id}/commands", "PUT")
        assert [r.status for r in put] == [200]
        echo = next(c for c in put[0].json if c["name"] == "echo")
        assert echo["description"] == "Echo text back as an embed"
        opts = {o["name"]: o for o in echo["options"]}
        assert opts["text"]["type"] == P.OPT_STRING and opts["text"]["required"] is True
        assert opts["times"]["type"] == P.OPT_INTEGER and opts["times"]["required"] is False
        assert (opts["times"]["min_value"], opts["times"]["max_value"]) == (1, 5)
        assert opts["times"]["description"] == "How many times to repeat it"

        rec = await fake.send_command("echo", {"text": "hello <@1>", "times": 2})
        await fake.wait_for_ack(rec)
        assert rec.callback_type == 5  # deferred, thinking
        assert rec.ack_latency is not None and rec.ack_latency < 3.0
        callback = rec.callback_attempts[0]
        assert callback.query.get("with_response") == "1" and callback.status == 200

        [msg] = await fake.wait_for_response(rec)
        followup = fake.requests_to("/webhooks/*", "POST")[-1]
        assert followup.status == 200 and followup.query.get("wait") in ("1", "true")
        assert followup.json["allowed_mentions"]["parse"] == []
        assert followup.json["embeds"][0]["description"] == "hello <@1> hello <@1>"
        # The first followup after a thinking defer completes the deferred message.
        assert msg["id"] == rec.original["id"] and not msg["flags"] & P.MESSAGE_FLAG_LOADING
        assert msg["embeds"][0]["title"] == "Echo"
        assert msg["mentions"] == []  # nobody pinged
        assert client.tree_errors == []


async def test_rate_limited_followup_is_retried(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with running_client(fake, ThrowawayClient) as client:
        await _ready_and_synced(fake, client)
        fake.inject_rate_limit(f"/webhooks/{fake.application_id}/*", method="POST", count=1, retry_after=0.05)
        rec = await fake.send_command("echo", {"text": "x"})
        await fake.wait_for_response(rec)
        posts = fake.requests_to("/webhooks/*", "POST")
        assert [r.status for r in posts] == [429, 200]
        assert posts[0].injected == "rate_limit"
        assert posts[1].time - posts[0].time >= 0.04  # slept retry_after (0.05 s, minus clock slack)
        assert client.tree_errors == []


async def test_double_acknowledgement_gets_40060(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with running_client(fake, ThrowawayClient) as client:
        await _ready_and_synced(fake, client)
        payload = fake.make_command("echo", {"text": "twice"})
        rec = await fake.dispatch_interaction(payload)
        await fake.wait_for_response(rec)
        # A duplicate delivery of the same interaction: the handler's defer is refused.
        await fake.dispatch_interaction(payload)
        await fake.wait_until(lambda: client.tree_errors, what="the tree error from the second ack")
        [error] = client.tree_errors
        assert isinstance(error, app_commands.CommandInvokeError)
        assert isinstance(error.original, discord.HTTPException) and error.original.code == 40060
        assert [r.status for r in rec.callback_attempts] == [200, 400]
        assert rec.deliveries == 2


async def test_late_acknowledgement_is_unknown_interaction() -> None:
    async with FakeDiscord(ack_deadline=0.2) as fake:
        async with running_client(fake, lambda: ThrowawayClient(slow_delay=0.3)) as client:
            await _ready_and_synced(fake, client)
            rec = await fake.send_command("slow")
            await fake.wait_until(lambda: client.tree_errors, what="the NotFound from the late callback")
            [error] = client.tree_errors
            assert isinstance(error.original, discord.NotFound) and error.original.code == 10062
            assert not rec.acked and rec.late_callbacks and rec.late_callbacks[0] >= 0.2


async def test_autocomplete_and_button(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with running_client(fake, ThrowawayClient) as client:
        await _ready_and_synced(fake, client)
        auto = await fake.send_autocomplete("pick", {"fruit": "ap"}, focused="fruit")
        await fake.wait_for_ack(auto)
        assert auto.callback_type == 8
        assert [c["value"] for c in auto.callback_data["choices"]] == ["apple", "apricot"]

        with pytest.raises(ValueError, match="no option"):
            fake.make_command("pick", {"colour": "red"})
        with pytest.raises(ValueError, match="max_value"):
            fake.make_command("echo", {"text": "x", "times": 9})

        panel = await fake.send_command("panel")
        [msg] = await fake.wait_for_response(panel)
        assert msg["components"][0]["components"][0]["custom_id"] == "panel:ok"
        click = await fake.click("panel:ok", msg["id"])
        await fake.wait_for_ack(click)
        assert click.callback_type == 7
        assert fake.message(msg["id"])["content"] == "clicked"
        assert fake.message(msg["id"])["components"] == []
        assert client.tree_errors == []


async def test_member_permissions_reach_app_command_checks(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with running_client(fake, ThrowawayClient) as client:
        await _ready_and_synced(fake, client)
        admin = next(c for c in fake.synced_commands(fake.guild_id) if c["name"] == "admin")
        assert admin["default_member_permissions"] == str(P.Perm.MANAGE_GUILD)

        denied = await fake.send_command("admin")  # plain member: no MANAGE_GUILD (0x20)
        await fake.wait_until(lambda: client.tree_errors, what="MissingPermissions")
        assert isinstance(client.tree_errors[0], app_commands.MissingPermissions)
        assert not denied.acked

        allowed = await fake.send_command("admin", permissions=P.MODERATOR_PERMISSIONS)
        [msg] = await fake.wait_for_response(allowed)
        assert msg["content"] == "ok" and msg["flags"] & P.MESSAGE_FLAG_EPHEMERAL
        owner = await fake.send_command("admin", user_id=P.DEFAULT_OWNER_ID)  # owner: all permissions
        await fake.wait_for_ack(owner)
        assert len(client.tree_errors) == 1


async def test_channel_send_survives_injected_500(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with running_client(fake, ThrowawayClient) as client:
        fake.inject_error(f"/channels/{fake.channel_id}/messages", method="POST", status=500)
        channel = client.get_channel(fake.channel_id)
        sent = await channel.send("hi", allowed_mentions=discord.AllowedMentions.none())
        assert sent.content == "hi"
        assert [r.status for r in fake.requests_to("/channels/*/messages", "POST")] == [500, 200]
        assert fake.messages_in()[0]["content"] == "hi"
        with pytest.raises(discord.HTTPException) as empty:
            await channel.send(embed=discord.Embed(title="t").add_field(name="n", value=""))
        assert empty.value.code == 50035


async def test_client_crash_is_reraised_not_a_timeout(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    with pytest.raises(ClientCrashed) as crashed:
        async with running_client(fake, ThrowawayClient) as client:
            await _ready_and_synced(fake, client)
            payload = fake.make_command("echo", {"text": "x"})
            del payload["attachment_size_limit"]  # a field discord.py 2.7 requires
            rec = await fake.dispatch_interaction(payload)
            await fake.wait_for_ack(rec, timeout=5)
    assert isinstance(crashed.value.__cause__, KeyError)


async def test_unknown_route_fails_the_fake(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with running_client(fake, ThrowawayClient) as client:
        with pytest.raises(discord.NotFound):
            await client.http.request(discord.http.Route("GET", "/voice/regions"))
    assert [r.path for r in fake.unknown_requests] == ["/voice/regions"]
    with pytest.raises(AssertionError, match="does not implement"):
        fake.assert_no_unknown_routes()
    fake.unknown_requests.clear()  # so the fixture's own teardown check passes


async def test_heartbeats_and_resume() -> None:
    async with FakeDiscord(heartbeat_interval_ms=100) as fake:
        async with running_client(fake, ThrowawayClient) as client:
            await fake.wait_until(lambda: len(fake.heartbeats) >= 3, 2.0, what="three heartbeats")
            stats = fake.heartbeat_stats()
            assert stats["interval_s"] == 0.1 and stats["max_ack_s"] < 0.1
            assert 0.05 < stats["mean_gap_s"] < 0.5

            # A resumable close (4000): the client reconnects, RESUMEs and keeps working.
            await fake.close_gateway(4000)
            await fake.wait_until(lambda: any(s.resumed for s in fake.gateway_sessions), 3.0, what="RESUME")
            await _ready_and_synced(fake, client)
            rec = await fake.send_command("echo", {"text": "after resume"})
            await fake.wait_for_response(rec)


class BoomClient(discord.Client):
    """A command that raises, with no error handler: discord.py only logs it."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="boom", description="Raises")
        async def boom(interaction: discord.Interaction) -> None:
            raise RuntimeError("kaboom")


async def test_logged_command_errors_fail_the_harness(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    with pytest.raises(ClientCrashed, match="kaboom"):
        async with running_client(fake, BoomClient) as client:
            await client.tree.sync()  # global this time
            assert [c["name"] for c in fake.synced_commands()] == ["boom"]
            rec = await fake.send_command("boom")
            assert "guild_id" not in rec.payload["data"]  # a global command's interaction
            await fake.wait_until(lambda: client._fake_error_logs, what="the logged error")
