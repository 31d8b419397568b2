"""Sweeps: hyperparameter searches whose trials are jobs.

Revision ID: 0005
Revises: 0004

Two of our tables (``sweeps``, ``sweep_trials``: the trial <-> job mapping that
makes restarts exactly-once) and Optuna's RDB storage tables (``studies``,
``trials``, ...), created here so the schema is the same on every database
from the first start, and Optuna never runs its own Alembic against our
``alembic_version`` (``tunelab.sweeps.study`` opens the storage with table
creation and its version check turned off).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _optuna_metadata() -> sa.MetaData:
    from optuna.storages._rdb.models import BaseModel

    return BaseModel.metadata


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("dataset", sa.String(length=300), nullable=False),
        sa.Column("base", sa.JSON(), nullable=False),
        sa.Column("search", sa.JSON(), nullable=False),
        sa.Column("sampler", sa.String(length=16), nullable=False),
        sa.Column("pruner", sa.JSON(), nullable=True),
        sa.Column("objective", sa.String(length=100), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("n_trials", sa.Integer(), nullable=True),
        sa.Column("budget_minutes", sa.Float(), nullable=True),
        sa.Column("parallel", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("proposal", sa.JSON(), nullable=True),
        sa.Column("study_name", sa.String(length=128), nullable=False, unique=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("best_trial", sa.Integer(), nullable=True),
        sa.Column("best_value", sa.Float(), nullable=True),
        sa.Column("best_configuration_id", sa.String(length=64), nullable=True),
        sa.Column("driver_id", sa.String(length=200), nullable=True),
        sa.Column("driver_lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweeps_status"), ["status"], unique=False)
    op.create_table(
        "sweep_trials",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sweep_id", sa.String(length=64), sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("optuna_trial_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reported_step", sa.Integer(), nullable=True),
        sa.Column("intermediate", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("sweep_id", "number", name="uq_sweep_trials_sweep_number"),
        sa.UniqueConstraint("job_id", name="uq_sweep_trials_job"),
    )
    with op.batch_alter_table("sweep_trials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweep_trials_sweep_id"), ["sweep_id"], unique=False)
    _optuna_metadata().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    _optuna_metadata().drop_all(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("sweep_trials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweep_trials_sweep_id"))
    op.drop_table("sweep_trials")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweeps_status"))
    op.drop_table("sweeps")
