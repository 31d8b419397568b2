"""Where a job trains: this studio's engine or a remote fine-tuning provider.

Revision ID: 0010
Revises: 0009

``jobs.provider`` names the provider from the settings (``local``, the
default, is the studio's own engine; any other name a remote
OpenAI-compatible service, ``tunelab.providers``). ``jobs.remote`` holds what
the worker following a remote job must not lose across a restart: the remote
job and file ids, the id of the newest remote event already stored (so no
event is stored twice), the remote checkpoints and the tuned model's id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=64), nullable=False, server_default="local"))
        batch_op.add_column(sa.Column("remote", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("remote")
        batch_op.drop_column("provider")
