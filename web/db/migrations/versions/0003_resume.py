"""resume: which checkpoint a run continued from

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("resume_from", sa.BigInteger()))
        batch.add_column(sa.Column("resume_version", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("resume_version")
        batch.drop_column("resume_from")
