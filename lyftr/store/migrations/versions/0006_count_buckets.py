"""Counts of messages per hour, of ts and of arrival, kept with every insert and purge.

- ``ts_hour_counts``: how many messages have each hour ('YYYY-MM-DDTHH') of ``ts_key``. A since=
  total adds the whole hours after since's hour and counts only the rows of its own hour, so it
  costs the same whether it matches a hundred rows or ten million.
- ``arrival_hour_counts``: the same by ``created_at``, for the console's arrivals-per-hour chart.

Existing rows are counted here, in the migration's transaction (one pass over each index).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Hours compare by code point on both backends (see 0001).
KEY = sa.String().with_variant(sa.String(collation="C"), "postgresql")
TABLES = {"ts_hour_counts": "ts_key", "arrival_hour_counts": "created_at"}


def upgrade():
    for table, column in TABLES.items():
        op.create_table(
            table,
            sa.Column("hour", KEY, primary_key=True),
            # PostgreSQL's concurrent inserts each add to their connection's shard (see sql.py).
            sa.Column("shard", sa.Integer(), primary_key=True),
            sa.Column("count", sa.Integer(), nullable=False),
        )
        op.execute(
            f"INSERT INTO {table} (hour, shard, count) SELECT substr({column}, 1, 13), 0, count(*) "
            f"FROM messages GROUP BY substr({column}, 1, 13)"
        )


def downgrade():
    for table in TABLES:
        op.drop_table(table)
