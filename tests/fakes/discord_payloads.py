"""Realistic Discord API v10 payload builders for the offline fake Discord.

Everything here returns plain JSON-able dicts shaped like what Discord really
sends, with every field discord.py 2.7 reads without a default (a missing one
kills the gateway parser: ``Interaction`` needs ``attachment_size_limit``,
``Member`` needs ``flags``, channels need ``name`` and ``position``...).

The builders are pure functions; :class:`tests.fakes.discord_server.FakeDiscord`
has thin wrappers that fill in its own ids and the ids of synced commands.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

# --------------------------------------------------------------------------- ids

DISCORD_EPOCH_MS = 1420070400000

DEFAULT_TOKEN = "fake-bot-token.offline.0000"
DEFAULT_APPLICATION_ID = 1_200_000_000_000_000_001
# A bot user's id equals its application's id on Discord.
DEFAULT_BOT_USER_ID = DEFAULT_APPLICATION_ID
DEFAULT_BOT_NAME = "precis-test"
DEFAULT_GUILD_ID = 1_200_000_000_000_000_100
DEFAULT_CHANNEL_ID = 1_200_000_000_000_000_200
DEFAULT_USER_ID = 1_200_000_000_000_000_300
DEFAULT_USERNAME = "alice"
DEFAULT_OWNER_ID = 1_200_000_000_000_000_301
DEFAULT_MOD_ROLE_ID = 1_200_000_000_000_000_400
DEFAULT_BOT_ROLE_ID = 1_200_000_000_000_000_401

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def snowflake(at: float | None = None) -> int:
    """A fresh, unique, time-ordered snowflake (like Discord's)."""
    ms = int((time.time() if at is None else at) * 1000)
    with _counter_lock:
        inc = next(_counter)
    return ((ms - DISCORD_EPOCH_MS) << 22) | (1 << 17) | (inc & 0x1FFFF)


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def new_interaction_token() -> str:
    # Real tokens are long opaque strings starting with "aW50ZXJhY3Rpb24" ("interaction" in base64).
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)


# ------------------------------------------------------------------ permissions


class Perm:
    """A few permission bits (Discord's ``permissions`` strings are these OR-ed)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38


#: Every permission bit (what the guild owner / an ADMINISTRATOR gets).
ALL_PERMISSIONS = (1 << 51) - 1

#: What a plain member usually has in a text channel.
MEMBER_PERMISSIONS = (
    Perm.CREATE_INSTANT_INVITE
    | Perm.ADD_REACTIONS
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.SEND_MESSAGES_IN_THREADS
)
#: A moderator: plain member plus MANAGE_GUILD (0x20) and MANAGE_MESSAGES.
MODERATOR_PERMISSIONS = MEMBER_PERMISSIONS | Perm.MANAGE_GUILD | Perm.MANAGE_MESSAGES
#: What the bot itself has in the channel (``app_permissions``).
BOT_PERMISSIONS = MEMBER_PERMISSIONS | Perm.MANAGE_MESSAGES

# Interaction / option / component type numbers.
INTERACTION_PING = 1
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5

OPT_SUB_COMMAND = 1
OPT_SUB_COMMAND_GROUP = 2
OPT_STRING = 3
OPT_INTEGER = 4
OPT_BOOLEAN = 5
OPT_USER = 6
OPT_CHANNEL = 7
OPT_ROLE = 8
OPT_MENTIONABLE = 9
OPT_NUMBER = 10
OPT_ATTACHMENT = 11

COMPONENT_BUTTON = 2
COMPONENT_STRING_SELECT = 3

MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7
MESSAGE_FLAG_COMPONENTS_V2 = 1 << 15


# ---------------------------------------------------------------- entities


def make_user(
    user_id: int = DEFAULT_USER_ID,
    username: str = DEFAULT_USERNAME,
    *,
    bot: bool = False,
    global_name: str | None = None,
    avatar: str | None = None,
) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": global_name if global_name is not None else (None if bot else username.title()),
        "avatar": avatar,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "collectibles": None,
        "primary_guild": None,
    }
    if bot:
        user["bot"] = True
    return user


def make_bot_user(user_id: int = DEFAULT_BOT_USER_ID, username: str = DEFAULT_BOT_NAME) -> dict[str, Any]:
    """The ``GET /users/@me`` / READY ``user`` object for the bot."""
    user = make_user(user_id, username, bot=True)
    user.update({"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None})
    return user


def make_role(
    role_id: int,
    name: str,
    permissions: int = 0,
    *,
    position: int = 0,
    managed: bool = False,
    tags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": managed,
        "mentionable": False,
        "flags": 0,
    }
    if tags is not None:
        role["tags"] = dict(tags)
    return role


def make_member(
    user: Mapping[str, Any],
    *,
    roles: Iterable[int] = (),
    permissions: int | None = None,
    nick: str | None = None,
    joined_at: str = "2024-01-15T12:00:00.000000+00:00",
) -> dict[str, Any]:
    """A guild member; ``permissions`` is only present inside interactions."""
    member: dict[str, Any] = {
        "user": dict(user),
        "roles": [str(r) for r in roles],
        "nick": nick,
        "avatar": None,
        "banner": None,
        "joined_at": joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
        "unusual_dm_activity_until": None,
    }
    if permissions is not None:
        member["permissions"] = str(permissions)
    return member


def make_text_channel(
    channel_id: int = DEFAULT_CHANNEL_ID,
    guild_id: int = DEFAULT_GUILD_ID,
    name: str = "general",
    *,
    position: int = 0,
    topic: str | None = None,
    nsfw: bool = False,
    parent_id: int | None = None,
) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "topic": topic,
        "nsfw": nsfw,
        "parent_id": str(parent_id) if parent_id else None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
    }


def make_guild(
    guild_id: int = DEFAULT_GUILD_ID,
    name: str = "Precis Test Guild",
    *,
    owner_id: int = DEFAULT_OWNER_ID,
    channels: Sequence[Mapping[str, Any]] | None = None,
    roles: Sequence[Mapping[str, Any]] | None = None,
    members: Sequence[Mapping[str, Any]] | None = None,
    everyone_permissions: int = MEMBER_PERMISSIONS,
) -> dict[str, Any]:
    """A full GUILD_CREATE ``d`` payload (the @everyone role is added if missing)."""
    roles = [dict(r) for r in (roles or [])]
    if not any(r["id"] == str(guild_id) for r in roles):
        roles.insert(0, make_role(guild_id, "@everyone", everyone_permissions, position=0))
    channels = [dict(c) for c in (channels if channels is not None else [make_text_channel(guild_id=guild_id)])]
    members = [dict(m) for m in (members or [])]
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": "en-US",
        "system_channel_id": channels[0]["id"] if channels else None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "features": [],
        "roles": roles,
        "emojis": [],
        "stickers": [],
        "application_id": None,
        "incidents_data": None,
        # GUILD_CREATE-only fields
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "large": False,
        "unavailable": False,
        "member_count": len(members),
        "voice_states": [],
        "members": members,
        "channels": channels,
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "lazy": True,
    }


def make_default_guild(
    *,
    guild_id: int = DEFAULT_GUILD_ID,
    channel_id: int = DEFAULT_CHANNEL_ID,
    bot_user_id: int = DEFAULT_BOT_USER_ID,
    bot_name: str = DEFAULT_BOT_NAME,
    user_id: int = DEFAULT_USER_ID,
    username: str = DEFAULT_USERNAME,
) -> dict[str, Any]:
    """One guild, one #general text channel, a Moderator role (MANAGE_GUILD),
    the bot (with its managed role), the owner and one plain member."""
    roles = [
        make_role(guild_id, "@everyone", MEMBER_PERMISSIONS, position=0),
        make_role(DEFAULT_MOD_ROLE_ID, "Moderator", MODERATOR_PERMISSIONS, position=2),
        make_role(DEFAULT_BOT_ROLE_ID, bot_name, BOT_PERMISSIONS, position=1, managed=True,
                  tags={"bot_id": str(bot_user_id)}),
    ]
    members = [
        make_member(make_bot_user(bot_user_id, bot_name), roles=[DEFAULT_BOT_ROLE_ID]),
        make_member(make_user(DEFAULT_OWNER_ID, "owner"), roles=[DEFAULT_MOD_ROLE_ID]),
        make_member(make_user(user_id, username)),
    ]
    return make_guild(
        guild_id,
        channels=[make_text_channel(channel_id, guild_id, "general")],
        roles=roles,
        members=members,
        owner_id=DEFAULT_OWNER_ID,
    )


def make_application(
    application_id: int = DEFAULT_APPLICATION_ID,
    *,
    name: str = DEFAULT_BOT_NAME,
    owner: Mapping[str, Any] | None = None,
    bot: Mapping[str, Any] | None = None,
    flags: int = 0,
) -> dict[str, Any]:
    """The ``GET /oauth2/applications/@me`` body discord.py reads on login."""
    return {
        "id": str(application_id),
        "name": name,
        "icon": None,
        "description": "offline test application",
        "summary": "",
        "type": None,
        "hook": True,
        "bot_public": False,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": dict(owner) if owner else make_user(DEFAULT_OWNER_ID, "owner"),
        "team": None,
        "flags": flags,
        "bot": dict(bot) if bot else make_bot_user(application_id, name),
        "rpc_origins": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "tags": [],
        "install_params": None,
        "integration_types_config": {"0": {}},
        "approximate_guild_count": 1,
        "approximate_user_install_count": 0,
    }


def make_message(
    *,
    channel_id: int = DEFAULT_CHANNEL_ID,
    guild_id: int | None = DEFAULT_GUILD_ID,
    author: Mapping[str, Any] | None = None,
    content: str = "",
    embeds: Sequence[Mapping[str, Any]] = (),
    components: Sequence[Mapping[str, Any]] = (),
    attachments: Sequence[Mapping[str, Any]] = (),
    flags: int = 0,
    message_type: int = 0,
    message_id: int | None = None,
    webhook_id: int | None = None,
    application_id: int | None = None,
    interaction_metadata: Mapping[str, Any] | None = None,
    mentions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": str(message_id or snowflake()),
        "type": message_type,
        "channel_id": str(channel_id),
        "author": dict(author) if author else make_bot_user(),
        "content": content,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [dict(m) for m in mentions],
        "mention_roles": [],
        "mention_channels": [],
        "attachments": [dict(a) for a in attachments],
        "embeds": [dict(e) for e in embeds],
        "reactions": [],
        "pinned": False,
        "flags": flags,
        "components": [dict(c) for c in components],
        "sticker_items": [],
    }
    if guild_id is not None:
        msg["guild_id"] = str(guild_id)
    if webhook_id is not None:
        msg["webhook_id"] = str(webhook_id)
    if application_id is not None:
        msg["application_id"] = str(application_id)
    if interaction_metadata is not None:
        msg["interaction_metadata"] = dict(interaction_metadata)
    return msg


# ------------------------------------------------------------- interactions


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPT_BOOLEAN
    if isinstance(value, int):
        return OPT_INTEGER
    if isinstance(value, float):
        return OPT_NUMBER
    if isinstance(value, str):
        return OPT_STRING
    raise TypeError(
        f"cannot infer the Discord option type of {value!r}; pass a dict "
        "{'name': ..., 'type': ..., 'value': ...} (and `resolved=`) for users/channels/roles/attachments"
    )


def command_options(options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Turn ``{"text": "hi", "count": 3}`` into Discord option dicts.

    str -> STRING (3), bool -> BOOLEAN (5), int -> INTEGER (4), float -> NUMBER (10).
    A list of ready option dicts passes through unchanged (copying each).
    """
    if not options:
        return []
    if isinstance(options, Mapping):
        return [{"name": k, "type": _infer_option_type(v), "value": v} for k, v in options.items()]
    return [dict(o) for o in options]


def _interaction_base(
    itype: int,
    data: dict[str, Any] | None,
    *,
    interaction_id: int | None,
    token: str | None,
    application_id: int,
    guild_id: int | None,
    channel_id: int,
    channel: Mapping[str, Any] | None,
    user_id: int,
    username: str,
    global_name: str | None,
    permissions: int,
    roles: Iterable[int],
    app_permissions: int,
    locale: str,
    guild_locale: str,
    message: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    user = make_user(user_id, username, global_name=global_name)
    payload: dict[str, Any] = {
        "id": str(interaction_id or snowflake()),
        "application_id": str(application_id),
        "type": itype,
        "token": token or new_interaction_token(),
        "version": 1,
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        "app_permissions": str(app_permissions),
        "channel_id": str(channel_id),
    }
    if data is not None:
        payload["data"] = data
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload["guild"] = {"id": str(guild_id), "locale": guild_locale, "features": []}
        payload["guild_locale"] = guild_locale
        payload["member"] = make_member(user, roles=roles, permissions=permissions)
        payload["authorizing_integration_owners"] = {"0": str(guild_id)}
        payload["context"] = 0
        ch = dict(channel) if channel else make_text_channel(channel_id, guild_id)
        ch.setdefault("permissions", str(permissions))
        payload["channel"] = ch
    else:
        payload["user"] = user
        payload["authorizing_integration_owners"] = {"1": str(user_id)}
        payload["context"] = 1
        payload["channel"] = dict(channel) if channel else {
            "id": str(channel_id), "type": 1, "last_message_id": None, "flags": 0,
            "recipients": [user],
        }
    if message is not None:
        payload["message"] = dict(message)
    return payload


def make_command_interaction(
    name: str,
    options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    *,
    subcommand: str | None = None,
    group: str | None = None,
    command_id: int | None = None,
    command_guild_id: int | None = None,
    command_type: int = 1,
    resolved: Mapping[str, Any] | None = None,
    target_id: int | None = None,
    interaction_id: int | None = None,
    token: str | None = None,
    application_id: int = DEFAULT_APPLICATION_ID,
    guild_id: int | None = DEFAULT_GUILD_ID,
    channel_id: int = DEFAULT_CHANNEL_ID,
    channel: Mapping[str, Any] | None = None,
    user_id: int = DEFAULT_USER_ID,
    username: str = DEFAULT_USERNAME,
    global_name: str | None = None,
    permissions: int = MEMBER_PERMISSIONS,
    roles: Iterable[int] = (),
    app_permissions: int = BOT_PERMISSIONS,
    locale: str = "en-US",
    guild_locale: str = "en-US",
    _focused: str | None = None,
    _itype: int = INTERACTION_APPLICATION_COMMAND,
) -> dict[str, Any]:
    """An INTERACTION_CREATE ``d`` for a slash command (type 2) in a guild.

    ``options`` are the leaf options (see :func:`command_options`); with
    ``subcommand`` (and ``group``) they are nested the way Discord nests them.
    ``command_guild_id`` must be set when the command was synced to a guild
    (discord.py looks guild commands up by ``data.guild_id``) and left ``None``
    for a global command. ``permissions`` is the member's permission bitfield
    in the channel (e.g. ``MEMBER_PERMISSIONS`` or ``MODERATOR_PERMISSIONS``).
    ``guild_id=None`` makes a DM interaction (``user`` instead of ``member``).
    """
    leaf = command_options(options)
    if _focused is not None:
        for opt in leaf:
            if opt["name"] == _focused:
                opt["focused"] = True
                break
        else:
            raise ValueError(f"focused option {_focused!r} not among {[o['name'] for o in leaf]}")
    top = leaf
    if subcommand is not None:
        top = [{"name": subcommand, "type": OPT_SUB_COMMAND, "options": leaf}]
        if group is not None:
            top = [{"name": group, "type": OPT_SUB_COMMAND_GROUP, "options": top}]
    elif group is not None:
        raise ValueError("group= needs subcommand=")
    data: dict[str, Any] = {
        "id": str(command_id or snowflake()),
        "name": name,
        "type": command_type,
    }
    if command_type == 1 or top:
        data["options"] = top
    if resolved:
        data["resolved"] = dict(resolved)
    if target_id is not None:
        data["target_id"] = str(target_id)
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    return _interaction_base(
        _itype, data,
        interaction_id=interaction_id, token=token, application_id=application_id,
        guild_id=guild_id, channel_id=channel_id, channel=channel, user_id=user_id,
        username=username, global_name=global_name, permissions=permissions, roles=roles,
        app_permissions=app_permissions, locale=locale, guild_locale=guild_locale,
    )


def make_autocomplete_interaction(
    name: str,
    options: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    focused: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """An autocomplete interaction (type 4): like a command, with the option
    named ``focused`` marked ``"focused": true`` (its value is what was typed)."""
    return make_command_interaction(name, options, _focused=focused, _itype=INTERACTION_AUTOCOMPLETE, **kwargs)


def make_component_interaction(
    custom_id: str,
    message_id: int | None = None,
    *,
    message: Mapping[str, Any] | None = None,
    component_type: int = COMPONENT_BUTTON,
    values: Sequence[str] | None = None,
    interaction_id: int | None = None,
    token: str | None = None,
    application_id: int = DEFAULT_APPLICATION_ID,
    guild_id: int | None = DEFAULT_GUILD_ID,
    channel_id: int = DEFAULT_CHANNEL_ID,
    channel: Mapping[str, Any] | None = None,
    user_id: int = DEFAULT_USER_ID,
    username: str = DEFAULT_USERNAME,
    global_name: str | None = None,
    permissions: int = MEMBER_PERMISSIONS,
    roles: Iterable[int] = (),
    app_permissions: int = BOT_PERMISSIONS,
    locale: str = "en-US",
    guild_locale: str = "en-US",
) -> dict[str, Any]:
    """A button click / select (type 3) on a message.

    discord.py routes it to a stored View by (component_type, message id,
    custom_id), so ``message`` should be the message the bot sent (the fake's
    copy, e.g. ``fake.message(id)``); without it a minimal bot message with
    ``message_id`` is used.
    """
    if message is None:
        if message_id is None:
            raise ValueError("give message= or message_id=")
        message = make_message(channel_id=channel_id, guild_id=guild_id, message_id=message_id,
                               author=make_bot_user(application_id), application_id=application_id)
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
    if component_type != COMPONENT_BUTTON:
        data["values"] = list(values or [])
    return _interaction_base(
        INTERACTION_COMPONENT, data,
        interaction_id=interaction_id, token=token, application_id=application_id,
        guild_id=guild_id, channel_id=channel_id, channel=channel, user_id=user_id,
        username=username, global_name=global_name, permissions=permissions, roles=roles,
        app_permissions=app_permissions, locale=locale, guild_locale=guild_locale,
        message=message,
    )


def make_modal_submit_interaction(
    custom_id: str,
    fields: Mapping[str, str],
    *,
    message: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """A modal submit (type 5); ``fields`` maps each text input's custom_id to its value."""
    rows = [
        {"type": 1, "components": [{"type": 4, "custom_id": cid, "value": value}]}
        for cid, value in fields.items()
    ]
    data = {"custom_id": custom_id, "components": rows}
    base_kwargs = dict(
        interaction_id=None, token=None, application_id=DEFAULT_APPLICATION_ID, guild_id=DEFAULT_GUILD_ID,
        channel_id=DEFAULT_CHANNEL_ID, channel=None, user_id=DEFAULT_USER_ID, username=DEFAULT_USERNAME,
        global_name=None, permissions=MEMBER_PERMISSIONS, roles=(), app_permissions=BOT_PERMISSIONS,
        locale="en-US", guild_locale="en-US",
    )
    unknown = set(kwargs) - set(base_kwargs)
    if unknown:
        raise TypeError(f"unexpected arguments {sorted(unknown)}")
    base_kwargs.update(kwargs)
    return _interaction_base(INTERACTION_MODAL_SUBMIT, data, message=message, **base_kwargs)
