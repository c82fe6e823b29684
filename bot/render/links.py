"""Article links made safe to show: the URLs come from feeds and fetched pages, so untrusted.

:func:`safe_url` gives back an ``http(s)`` URL in which nothing can break out of a
Markdown masked link or a terminal line, or None when the URL should not be shown at
all. The renderers (Discord, console) use it; no Discord import here.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

MAX_URL = 512  # longer links are not shown (a news link is rarely over 200 characters)

_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")
# Left as they are in the path, query and fragment: RFC 3986's unreserved and reserved
# characters, less the ones that can end or confuse a Markdown link: ( ) [ ] and
# anything else quote() escapes (space, < > ` " \ | ^ { }, controls, non-ASCII).
_SAFE = "/?#&=;:@!$*+,'~%"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def safe_url(url: str | None, max_len: int = MAX_URL) -> str | None:
    """``url`` percent-encoded so that it is one plain token, or None if it is not an
    absolute http(s) URL with a proper host, holds whitespace or control characters,
    names a user (``https://bank.com@evil.example/``) or is longer than ``max_len``."""
    if not url or not isinstance(url, str):
        return None
    url = url.strip()
    if any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in url):
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # the port raises ValueError when it is not 0-65535
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    try:
        host = host.encode("idna").decode("ascii")  # an internationalised name -> xn--...
    except (UnicodeError, ValueError):
        return None
    if not _HOST.match(host):  # a name or an IPv4 address; not an IPv6 literal or anything odd
        return None
    netloc = host + (f":{port}" if port is not None else "")
    rest = url[len(parts.scheme) + 3 + len(parts.netloc):]
    rest = _BAD_ESCAPE.sub("%25", quote(rest, safe=_SAFE))
    out = f"{parts.scheme.lower()}://{netloc}{rest}"
    return out if len(out) <= max_len else None
