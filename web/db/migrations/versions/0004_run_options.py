"""run options: a custom policy network and the trainer's metric sinks

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("policy", sa.JSON()))
        batch.add_column(sa.Column("metric_sinks", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("metric_sinks")
        batch.drop_column("policy")
