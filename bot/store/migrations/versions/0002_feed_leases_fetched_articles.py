"""Past one process: a poll lease on each feed (one process polls it at a time) and the text of
feed and link articles in the store (so every process can load them).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.Float(53)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("feeds", sa.Column("lease_owner", sa.Text))
    op.add_column("feeds", sa.Column("lease_until", Time, nullable=False, server_default="0"))
    op.create_table(
        "fetched_articles",
        sa.Column("seq", Id, primary_key=True, autoincrement=True),
        sa.Column("article_id", sa.Text, nullable=False, unique=True),
        sa.Column("guild_id", sa.BigInteger),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("arrived", Time, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fetched_articles")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
