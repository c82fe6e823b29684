"""JSON Lines that survive any line splitter.

JSON Lines separates records with ``\\n`` only. ``json.dumps(..., ensure_ascii=False)`` escapes every
control character, but leaves U+0085, U+2028 and U+2029 raw, and ``str.splitlines`` (and JavaScript,
and many tools) break lines there: a record holding one would be cut in two. :func:`dumps_line`
escapes those three; :func:`split_records` reads lines the way JSON Lines defines them.
"""

from __future__ import annotations

import json

_RAW_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dumps_line(obj) -> str:
    """One JSON Lines record (no trailing newline): readable UTF-8, nothing any line splitter breaks on."""
    return json.dumps(obj, ensure_ascii=False).translate(_RAW_BREAKS)


def split_records(text: str) -> list[str]:
    """``text`` cut at ``\\n`` only (a ``\\r`` before it dropped), as JSON Lines defines its lines."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
