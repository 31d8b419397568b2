"""A/B experiments and ensembles.

Revision ID: 0008
Revises: 0007

``experiments`` holds each experiment's variants and split (JSON) and its
status; ``experiment_requests`` one row per routed chat request (variant, user,
latency, tokens) with its feedback (thumbs or a 1-5 score) once given;
``ensembles`` a named group of models served as one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "experiment_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "experiment_id",
            sa.String(length=64),
            sa.ForeignKey("experiments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("response_id", sa.String(length=64), nullable=False, unique=True),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("rating", sa.String(length=8), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rated_at", sa.DateTime(), nullable=True),
    )
    with op.batch_alter_table("experiment_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_requests_experiment_id"), ["experiment_id"], unique=False
        )
    op.create_table(
        "ensembles",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ensembles")
    op.drop_table("experiment_requests")
    op.drop_table("experiments")
