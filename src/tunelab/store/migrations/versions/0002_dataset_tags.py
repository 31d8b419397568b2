"""Dataset tags: a JSON list of labels per dataset, like a job's tags.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:00:00

Existing datasets get an empty list (the server default), so the column can be
NOT NULL on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("tags")
