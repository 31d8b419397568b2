"""Workers that advertise resources; jobs that request them.

Revision ID: 0009
Revises: 0008

``workers`` holds one row per worker process: what it can run (GPUs with
name and memory, CPU count, RAM, Apple MPS), renewed with its heartbeat, and
``stopped_at`` once it exits cleanly. A queued job's needs stay in the job
(``save_options.resources``, ``config.hyperparameters.device``); the claim
compares them with the claiming worker's row values in SQL.
``jobs.wait_reason`` says why a queued job is not being claimed ("waiting for
resources: needs 1 GPU, workers have none"); null while some live worker can
run it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("gpus", sa.JSON(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("gpu_memory_total", sa.BigInteger(), nullable=False),
        sa.Column("cpu_count", sa.Integer(), nullable=False),
        sa.Column("ram_total", sa.BigInteger(), nullable=False),
        sa.Column("mps", sa.Boolean(), nullable=False),
        sa.Column("current_job_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workers_heartbeat_at"), ["heartbeat_at"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wait_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("wait_reason")
    op.drop_table("workers")
