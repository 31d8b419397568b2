"""Evaluations: metrics of a model on a dataset, retention against the base.

Revision ID: 0006
Revises: 0005

One row per evaluation (on demand from the API or the CLI, or the automatic
one after a completed job); its per-row generations and scores are a JSON list
in the row, read only when one evaluation is shown. ``jobs.regression`` is the
flag a job's automatic evaluation sets when the tuned model answers fewer
probe questions right than its base (null: not evaluated).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=64), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("against", sa.Text(), nullable=True),
        sa.Column("dataset", sa.Text(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("regression", sa.Boolean(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evaluations_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_evaluations_created_at"), ["created_at"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("regression", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("regression")
    op.drop_table("evaluations")
