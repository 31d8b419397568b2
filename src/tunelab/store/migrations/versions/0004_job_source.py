"""Jobs remember where they came from (the studio, the CLI, a sweep).

Revision ID: 0004
Revises: 0003

`tunelab train` runs are recorded in the studio's store as jobs with source
``cli``, so they show in the dashboard and in compare next to studio jobs.
Existing jobs were all created through the studio, so the server default is
``studio`` and the column can be NOT NULL on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(16), nullable=False, server_default="studio")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("source")
