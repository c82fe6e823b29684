"""Feeds past one process, continued: the pages read for feed items that became no article
(``feed_pages``: a server that follows the feed later is given the page already read instead of
a second request), and each host's turn shared by every process (``feed_hosts``: one request at a
time per host with a pause after it, across processes on one PostgreSQL).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Time = sa.Float(53)


def upgrade() -> None:
    op.create_table(
        "feed_pages",
        sa.Column("item_key", sa.Text, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("read_at", Time, nullable=False),
    )
    op.create_index("feed_pages_read_at", "feed_pages", ["read_at"])
    op.create_table(
        "feed_hosts",
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("holder", sa.Text),
        sa.Column("free_at", Time, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("feed_hosts")
    op.drop_index("feed_pages_read_at", table_name="feed_pages")
    op.drop_table("feed_pages")
