"""One fetch per distinct feed URL: ``feed_urls`` holds what belongs to the URL (validators, polls,
status, back-off, disabled, title, the poll lease, the last items read); a ``feeds`` row becomes one
server's subscription (guild, filters, its item count and status line) and gains ``primed_at``.

Existing rows are migrated in place: one ``feed_urls`` row per distinct ``feeds.url``, its state
merged from the rows that share it (see :func:`_merge`); each row's ``primed_at`` is its
``last_success``. The old per-row state columns stay (unused) so that the downgrade can copy the
state back.

Revision ID: 0003
Revises: 0002
"""

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Time = sa.Float(53)


def url_host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _merge(rows: list[dict]) -> dict:
    """The URL's state from its per-server rows: the newest poll's status, the largest counts, the
    fewest failures, the earliest next poll, disabled only when every copy is. The validators are
    kept only when every copy has the same ones: a copy polled longer ago may lack items a 304 would
    hide, so when they differ the first request reads the feed in full."""
    def latest(key):
        return max(rows, key=lambda r: (r[key] is not None, r[key] or 0))

    newest = latest("last_poll")
    err = latest("last_error_at")
    enabled = [r for r in rows if not r["disabled"]]
    same = len({(r["etag"], r["last_modified"]) for r in rows}) == 1
    return {
        "title": next((r["title"] for r in sorted(rows, key=lambda r: -(r["last_poll"] or 0)) if r["title"]), ""),
        "etag": rows[0]["etag"] if same else None,
        "last_modified": rows[0]["last_modified"] if same else None,
        "polls": max(r["polls"] or 0 for r in rows),
        "last_poll": newest["last_poll"],
        "last_status": newest["last_status"],
        "last_success": max((r["last_success"] for r in rows if r["last_success"] is not None), default=None),
        "last_error": err["last_error"],
        "last_error_at": err["last_error_at"],
        "failures": min(r["failures"] or 0 for r in (enabled or rows)),
        "next_poll": min(r["next_poll"] or 0 for r in (enabled or rows)),
        "disabled": 0 if enabled else 1,
    }


STATE = ("title", "etag", "last_modified", "polls", "last_poll", "last_status", "last_success", "last_error",
         "last_error_at", "failures", "next_poll", "disabled")


def upgrade() -> None:
    op.create_table(
        "feed_urls",
        sa.Column("url", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False, server_default=""),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_poll", Time),
        sa.Column("last_status", sa.Text),
        sa.Column("last_success", Time),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", Time),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_poll", Time, nullable=False, server_default="0"),
        sa.Column("disabled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", Time, nullable=False, server_default="0"),
        sa.Column("items_json", sa.Text),
        sa.Column("items_at", Time),
    )
    op.create_index("feed_urls_due", "feed_urls", ["next_poll"])
    op.create_index("feeds_url", "feeds", ["url"])
    op.add_column("feeds", sa.Column("primed_at", Time))

    bind = op.get_bind()
    feeds = sa.table("feeds", sa.column("id"), sa.column("url"), sa.column("primed_at"), sa.column("last_success"),
                     *(sa.column(c) for c in STATE))
    urls = sa.table("feed_urls", sa.column("url"), sa.column("host"), *(sa.column(c) for c in STATE))
    by_url: dict[str, list[dict]] = {}
    for r in bind.execute(sa.select(feeds).order_by(feeds.c.id)).mappings():
        by_url.setdefault(r["url"], []).append(dict(r))
    if by_url:
        bind.execute(sa.insert(urls), [{"url": u, "host": url_host(u), **_merge(rows)} for u, rows in by_url.items()])
    bind.execute(feeds.update().values(primed_at=feeds.c.last_success))


def downgrade() -> None:
    bind = op.get_bind()
    feeds = sa.table("feeds", sa.column("url"), *(sa.column(c) for c in STATE))
    urls = sa.table("feed_urls", sa.column("url"), *(sa.column(c) for c in STATE))
    for r in bind.execute(sa.select(urls)).mappings():  # each copy gets its URL's state back
        bind.execute(feeds.update().where(feeds.c.url == r["url"]).values(**{c: r[c] for c in STATE}))
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("primed_at")
    op.drop_index("feeds_url", table_name="feeds")
    op.drop_index("feed_urls_due", table_name="feed_urls")
    op.drop_table("feed_urls")
