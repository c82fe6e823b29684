"""The schema as it was at SQLite ``PRAGMA user_version`` 4 (subscriptions, articles, posts with what
they showed, feeds with filters, seen items, article guilds).

A new database (either engine) starts here. An existing SQLite file is brought to v4 by the
hand-written scripts in :mod:`bot.store.db` and then *stamped* with this revision: it already has
these tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Time = sa.Float(53)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("seq", Id, primary_key=True, autoincrement=True),
        sa.Column("article_id", sa.Text, nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("first_seen", Time, nullable=False),
        sa.Column("announce", sa.Integer, nullable=False, server_default="1"),
        sa.Column("guild_id", sa.BigInteger),
    )
    op.create_table(
        "subscriptions",
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
    op.create_index("subscriptions_due", "subscriptions", ["next_due"])
    op.create_table(
        "posts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.BigInteger, sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
                  nullable=False),
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
    op.create_index("posts_one_pending", "posts", ["subscription_id"], unique=True,
                    sqlite_where=sa.text("state = 'pending'"), postgresql_where=sa.text("state = 'pending'"))
    op.create_table(
        "feeds",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("guild_id", sa.BigInteger, nullable=False),
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
        sa.UniqueConstraint("guild_id", "url"),
    )
    op.create_table(
        "seen_items",
        sa.Column("item_key", sa.Text, primary_key=True),
        sa.Column("article_id", sa.Text),
        sa.Column("feed_id", sa.BigInteger),
        sa.Column("first_seen", Time, nullable=False),
    )
    op.create_table(
        "article_guilds",
        sa.Column("article_id", sa.Text, primary_key=True),
        sa.Column("guild_id", sa.BigInteger, primary_key=True),
    )


def downgrade() -> None:
    for table in ("article_guilds", "seen_items", "feeds", "posts", "subscriptions", "articles"):
        op.drop_table(table)
