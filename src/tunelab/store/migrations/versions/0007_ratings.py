"""Side-by-side ratings of generations.

Revision ID: 0007
Revises: 0006

One row per rater, evaluation row and pair of sides (``side_a`` before
``side_b`` in the evaluation's side order) with the verdict for ``side_a``:
better, worse or tie, and an optional comment. Deleting an evaluation deletes
its ratings.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "evaluation_id",
            sa.String(length=64),
            sa.ForeignKey("evaluations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("side_a", sa.String(length=32), nullable=False),
        sa.Column("side_b", sa.String(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint(
            "evaluation_id",
            "row_index",
            "side_a",
            "side_b",
            "rater",
            name="uq_ratings_row_pair_rater",
        ),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ratings_evaluation_id"), ["evaluation_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("ratings")
