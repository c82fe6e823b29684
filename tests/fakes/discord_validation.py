"""Server-side checks the fake Discord applies to what the bot sends.

These are the documented Discord limits that most often turn into a 400
"Invalid Form Body" (code 50035) or "Cannot send an empty message" (50006) in
production. Each function returns an ``errors`` mapping shaped like Discord's
(``{"field": {"_errors": [{"code": ..., "message": ...}]}}``) or ``{}``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_ACTION_ROWS = 5
MAX_ROW_CHILDREN = 5
MAX_CHOICES = 25


def _err(errors: dict[str, Any], path: str, code: str, message: str) -> None:
    node = errors
    for part in path.split("."):
        node = node.setdefault(part, {})
    node.setdefault("_errors", []).append({"code": code, "message": message})


def _len_check(errors: dict[str, Any], path: str, value: Any, lo: int, hi: int) -> int:
    if value is None:
        if lo > 0:
            _err(errors, path, "BASE_TYPE_REQUIRED", "This field is required")
        return 0
    if not isinstance(value, str):
        _err(errors, path, "BASE_TYPE_BAD_STRING", "Must be a string.")
        return 0
    n = len(value)
    if n < lo or n > hi:
        _err(errors, path, "BASE_TYPE_BAD_LENGTH", f"Must be between {lo} and {hi} in length.")
    return n


def _embed_errors(errors: dict[str, Any], i: int, embed: Mapping[str, Any]) -> int:
    p = f"embeds.{i}"
    total = 0
    if "title" in embed:
        total += _len_check(errors, f"{p}.title", embed["title"], 0, 256)
    if "description" in embed:
        total += _len_check(errors, f"{p}.description", embed["description"], 0, 4096)
    color = embed.get("color")
    if color is not None and not (isinstance(color, int) and 0 <= color <= 0xFFFFFF):
        _err(errors, f"{p}.color", "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215.")
    for key in ("url",):
        url = embed.get(key)
        if url is not None and not re.match(r"^(https?|attachment)://\S+$", str(url)):
            _err(errors, f"{p}.{key}", "URL_TYPE_INVALID_URL", "Not a well formed URL.")
    footer = embed.get("footer")
    if footer:
        total += _len_check(errors, f"{p}.footer.text", footer.get("text"), 1, 2048)
    author = embed.get("author")
    if author:
        total += _len_check(errors, f"{p}.author.name", author.get("name"), 1, 256)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        _err(errors, f"{p}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for j, field in enumerate(fields):
        total += _len_check(errors, f"{p}.fields.{j}.name", field.get("name"), 1, 256)
        total += _len_check(errors, f"{p}.fields.{j}.value", field.get("value"), 1, 1024)
    return total


def _component_errors(errors: dict[str, Any], components: Any, flags: int) -> None:
    if not isinstance(components, list):
        _err(errors, "components", "BASE_TYPE_BAD_LIST", "Must be a list.")
        return
    if flags & (1 << 15):  # components v2: a different, recursive layout; only sanity-check custom ids
        rows = []
    else:
        rows = components
        if len(rows) > MAX_ACTION_ROWS:
            _err(errors, "components", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ACTION_ROWS} or fewer in length.")
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row.get("type") != 1:
            _err(errors, f"components.{i}.type", "UNION_TYPE_CHOICES",
                 "Top-level components must be action rows (type 1) without the components v2 flag.")
            continue
        children = row.get("components") or []
        if not 1 <= len(children) <= MAX_ROW_CHILDREN:
            _err(errors, f"components.{i}.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
        for j, child in enumerate(children):
            cp = f"components.{i}.components.{j}"
            cid = child.get("custom_id")
            if cid is not None:
                _len_check(errors, f"{cp}.custom_id", cid, 1, 100)
                if cid in seen:
                    _err(errors, f"{cp}.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
                seen.add(cid)
            if child.get("type") == 2:
                if child.get("label") is not None:
                    _len_check(errors, f"{cp}.label", child["label"], 0, 80)
                if child.get("style") == 5:
                    if not child.get("url"):
                        _err(errors, f"{cp}.url", "BASE_TYPE_REQUIRED", "This field is required")
                elif child.get("style") != 6 and not cid:
                    _err(errors, f"{cp}.custom_id", "BASE_TYPE_REQUIRED", "This field is required")
            if child.get("type") == 3 and len(child.get("options") or []) > 25:
                _err(errors, f"{cp}.options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")


def _allowed_mentions_errors(errors: dict[str, Any], am: Any) -> None:
    if not isinstance(am, Mapping):
        _err(errors, "allowed_mentions", "DICT_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    parse = am.get("parse", [])
    for value in parse:
        if value not in ("roles", "users", "everyone"):
            _err(errors, "allowed_mentions.parse", "BASE_TYPE_CHOICES", f"Value must be one of ('roles', 'users', 'everyone').")
    for kind in ("users", "roles"):
        if kind in parse and am.get(kind):
            _err(errors, "allowed_mentions", "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                 f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.')
        if len(am.get(kind) or []) > 100:
            _err(errors, f"allowed_mentions.{kind}", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")


def message_errors(payload: Mapping[str, Any] | None, *, files: int = 0, require_content: bool = True) -> tuple[int, dict[str, Any]]:
    """Check a message create/edit body. Returns ``(code, errors)``; ``code``
    is 0 when fine, 50006 for an empty message, 50035 for invalid form body."""
    payload = payload or {}
    errors: dict[str, Any] = {}
    content = payload.get("content")
    if content is not None:
        _len_check(errors, "content", content, 0, MAX_CONTENT)
    embeds = payload.get("embeds") or []
    if payload.get("embed"):
        embeds = [*embeds, payload["embed"]]
    if len(embeds) > MAX_EMBEDS:
        _err(errors, "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    total = sum(_embed_errors(errors, i, e) for i, e in enumerate(embeds))
    if total > MAX_EMBED_TOTAL:
        _err(errors, "embeds", "MESSAGE_EMBEDS_TOO_LONG", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}")
    flags = int(payload.get("flags") or 0)
    if flags & (1 << 15) and (content or embeds):
        _err(errors, "content", "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
             "The 'content' and 'embeds' fields cannot be used when using MessageFlags.IS_COMPONENTS_V2")
    if payload.get("components") is not None:
        _component_errors(errors, payload["components"], flags)
    if payload.get("allowed_mentions") is not None:
        _allowed_mentions_errors(errors, payload["allowed_mentions"])
    if errors:
        return 50035, errors
    if require_content:
        has_something = (
            (isinstance(content, str) and content.strip())
            or embeds
            or payload.get("components")
            or payload.get("attachments")
            or files
            or payload.get("poll")
            or payload.get("sticker_ids")
        )
        if not has_something:
            return 50006, {}
    return 0, {}


def autocomplete_errors(data: Mapping[str, Any] | None) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    choices = (data or {}).get("choices")
    if choices is None:
        _err(errors, "data.choices", "BASE_TYPE_REQUIRED", "This field is required")
        return errors
    if len(choices) > MAX_CHOICES:
        _err(errors, "data.choices", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CHOICES} or fewer in length.")
    for i, choice in enumerate(choices):
        _len_check(errors, f"data.choices.{i}.name", choice.get("name"), 1, 100)
        value = choice.get("value")
        if isinstance(value, str):
            _len_check(errors, f"data.choices.{i}.value", value, 1, 100)
        elif value is None:
            _err(errors, f"data.choices.{i}.value", "BASE_TYPE_REQUIRED", "This field is required")
    return errors


def modal_errors(data: Mapping[str, Any] | None) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    data = data or {}
    _len_check(errors, "data.title", data.get("title"), 1, 45)
    _len_check(errors, "data.custom_id", data.get("custom_id"), 1, 100)
    comps = data.get("components") or []
    if not 1 <= len(comps) <= 5:
        _err(errors, "data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    return errors


def _option_errors(errors: dict[str, Any], path: str, options: list[Mapping[str, Any]]) -> None:
    if len(options) > 25:
        _err(errors, path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    names: set[str] = set()
    seen_optional = False
    for i, opt in enumerate(options):
        p = f"{path}.{i}"
        name = opt.get("name", "")
        if not _NAME_RE.match(name) or name != name.lower():
            _err(errors, f"{p}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if name in names:
            _err(errors, f"{p}.name", "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option name already exists")
        names.add(name)
        _len_check(errors, f"{p}.description", opt.get("description"), 1, 100)
        otype = opt.get("type")
        if otype in (1, 2):
            _option_errors(errors, f"{p}.options", list(opt.get("options") or []))
            continue
        if opt.get("required"):
            if seen_optional:
                _err(errors, f"{p}.required", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                     "Required options must be placed before non-required options")
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            _err(errors, f"{p}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if opt.get("choices") and opt.get("autocomplete"):
            _err(errors, f"{p}.autocomplete", "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_CHOICES",
                 "Autocomplete cannot be set with choices")
        lo, hi = opt.get("min_value"), opt.get("max_value")
        if lo is not None and hi is not None and lo > hi:
            _err(errors, f"{p}.min_value", "NUMBER_TYPE_MAX", "min_value must be <= max_value")
        lo, hi = opt.get("min_length"), opt.get("max_length")
        if lo is not None and not 0 <= lo <= 6000:
            _err(errors, f"{p}.min_length", "NUMBER_TYPE_MAX", "min_length must be between 0 and 6000")
        if hi is not None and not 1 <= hi <= 6000:
            _err(errors, f"{p}.max_length", "NUMBER_TYPE_MAX", "max_length must be between 1 and 6000")


def command_list_errors(commands: Any) -> dict[str, Any]:
    """Check a bulk-overwrite (PUT .../commands) body."""
    errors: dict[str, Any] = {}
    if not isinstance(commands, list):
        _err(errors, "_root", "BASE_TYPE_BAD_LIST", "Must be a list.")
        return errors
    seen: set[tuple[int, str]] = set()
    for i, cmd in enumerate(commands):
        ctype = cmd.get("type", 1)
        name = cmd.get("name", "")
        if (ctype, name) in seen:
            _err(errors, f"{i}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Application command names must be unique")
        seen.add((ctype, name))
        if ctype == 1:
            if not _NAME_RE.match(name) or name != name.lower():
                _err(errors, f"{i}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            _len_check(errors, f"{i}.description", cmd.get("description"), 1, 100)
            _option_errors(errors, f"{i}.options", list(cmd.get("options") or []))
        else:
            _len_check(errors, f"{i}.name", name, 1, 32)
    if sum(1 for c in commands if c.get("type", 1) == 1) > 100:
        _err(errors, "_root", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
    return errors
