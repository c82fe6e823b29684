"""The store's tables, as SQLAlchemy Core metadata: one description for SQLite and PostgreSQL.

The queries in :mod:`bot.store.db` are built from these; the schema itself is
created and changed only by the Alembic revisions in ``migrations/versions/``
(the two must agree; ``tests/test_store.py`` checks that a migrated database has
every column named here).

Discord ids (guilds, channels, messages, users, roles) are 64-bit: ``BigInteger``.
Times are Unix seconds as floats (``Float(53)``: DOUBLE PRECISION on PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
Time = sa.Float(53)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid

articles = sa.Table(
    "articles", metadata,
    sa.Column("seq", Id, primary_key=True, autoincrement=True),  # never deleted, so never reused
    sa.Column("article_id", sa.Text, nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("first_seen", Time, nullable=False),
    sa.Column("announce", sa.Integer, nullable=False, server_default="1"),
    sa.Column("guild_id", sa.BigInteger),
)

subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("guild_id", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("schedule", sa.Text, nullable=False),
    sa.Column("created_by", sa.BigInteger),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("last_cursor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("next_due", Time, nullable=False),
    sa.Column("last_post_at", Time),
    sa.Column("ping_role_id", sa.BigInteger),
)

posts = sa.Table(
    "posts", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.BigInteger, sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("digest_key", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("from_cursor", sa.BigInteger, nullable=False),
    sa.Column("to_cursor", sa.BigInteger, nullable=False),
    sa.Column("article_ids", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("nonce", sa.Text, nullable=False),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", Time, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("sent_at", Time),
    sa.Column("shown", sa.Text),
    sa.UniqueConstraint("subscription_id", "digest_key"),
    sa.CheckConstraint("kind IN ('digest', 'empty')"),
    sa.CheckConstraint("state IN ('pending', 'sent')"),
)
# at most one pending post per subscription
sa.Index("posts_one_pending", posts.c.subscription_id, unique=True,
         sqlite_where=posts.c.state == "pending", postgresql_where=posts.c.state == "pending")
sa.Index("subscriptions_due", subscriptions.c.next_due)

feeds = sa.Table(
    "feeds", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("guild_id", sa.BigInteger, nullable=False),  # 0: a global feed
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("added_by", sa.BigInteger),
    sa.Column("added_at", Time, nullable=False),
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
    sa.Column("items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("include_terms", sa.Text, nullable=False, server_default="[]"),
    sa.Column("exclude_terms", sa.Text, nullable=False, server_default="[]"),
    # revision 0002: the poll lease (one process polls a feed at a time)
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", Time, nullable=False, server_default="0"),
    # revision 0003: when this server's copy first got the feed's items (its backlog, never announced);
    # NULL: not yet
    sa.Column("primed_at", Time),
    sa.UniqueConstraint("guild_id", "url"),
)
# Since revision 0003 a ``feeds`` row is one server's *subscription* to a URL: its guild, its filters,
# its own item count and status line (``items``, ``last_status``), ``primed_at``. What belongs to the
# URL (the conditional-request validators, polls, last success, errors, back-off, disabled, the title,
# the poll lease) lives in ``feed_urls``, one row per distinct URL, fetched once per interval however
# many servers follow it. The old per-row copies of those columns (title, etag, last_modified, polls,
# last_poll, last_success, last_error, last_error_at, failures, next_poll, disabled, lease_owner,
# lease_until) stay in the table, unused, so that revision 0003 can be downgraded.

feed_urls = sa.Table(
    "feed_urls", metadata,
    sa.Column("url", sa.Text, primary_key=True),  # as the feeds rows spell it
    sa.Column("host", sa.Text, nullable=False, server_default=""),  # lower-cased: per-host scheduling
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
    # the items the last full read (200) gave, JSON: what a server that follows the URL later gets
    # without another request (NULL: none kept yet)
    sa.Column("items_json", sa.Text),
    sa.Column("items_at", Time),
)
sa.Index("feed_urls_due", feed_urls.c.next_poll)
sa.Index("feeds_url", feeds.c.url)

seen_items = sa.Table(
    "seen_items", metadata,
    sa.Column("item_key", sa.Text, primary_key=True),
    sa.Column("article_id", sa.Text),
    sa.Column("feed_id", sa.BigInteger),
    sa.Column("first_seen", Time, nullable=False),
)

article_guilds = sa.Table(
    "article_guilds", metadata,
    sa.Column("article_id", sa.Text, primary_key=True),
    sa.Column("guild_id", sa.BigInteger, primary_key=True),
)

# revision 0002: the text of feed and link articles, so that every process can load them (used with
# PostgreSQL; with SQLite they stay in DATA_DIR/fetched/articles.jsonl). ``seq`` orders arrivals:
# a process asks for what came after the last one it loaded.
fetched_articles = sa.Table(
    "fetched_articles", metadata,
    sa.Column("seq", Id, primary_key=True, autoincrement=True),
    sa.Column("article_id", sa.Text, nullable=False, unique=True),
    sa.Column("guild_id", sa.BigInteger),
    sa.Column("record", sa.Text, nullable=False),  # the JSON line the file would hold
    sa.Column("arrived", Time, nullable=False),
)

# revision 0004: the page of a feed item read for a filter that kept it out of every server's copy
# (its extraction as JSON; ``url``: the page's URL after redirects), so that a server following the feed
# later is given it without another request; rows older than :data:`bot.store.db.PAGE_DAYS` are dropped.
feed_pages = sa.Table(
    "feed_pages", metadata,
    sa.Column("item_key", sa.Text, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("read_at", Time, nullable=False),
)
sa.Index("feed_pages_read_at", feed_pages.c.read_at)

# revision 0004: each host's turn, shared by the processes on one PostgreSQL (the fetcher's per-host
# politeness): ``holder`` is requesting it until ``free_at`` (the request's time limit, should it die),
# then, released, nobody may request it before ``free_at`` (the end of the request plus the pause).
# Times are the database's clock. Unused with SQLite (one process: the fetcher's own gate).
feed_hosts = sa.Table(
    "feed_hosts", metadata,
    sa.Column("host", sa.Text, primary_key=True),
    sa.Column("holder", sa.Text),
    sa.Column("free_at", Time, nullable=False, server_default="0"),
)

TABLES = ("articles", "subscriptions", "posts", "feeds", "feed_urls", "seen_items", "article_guilds", "fetched_articles",
          "feed_pages", "feed_hosts")
