"""checkpoints.final: a run's final checkpoint is its newest, whatever its version

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(
            sa.Column("final", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Stored checkpoints said so in their metadata.
    checkpoints = sa.table(
        "checkpoints", sa.column("id", sa.BigInteger()), sa.column("meta", sa.JSON())
    )
    connection = op.get_bind()
    finals = [
        row.id
        for row in connection.execute(sa.select(checkpoints.c.id, checkpoints.c.meta))
        if (row.meta or {}).get("final")
    ]
    if finals:
        connection.execute(
            sa.text("UPDATE checkpoints SET final = :yes WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"yes": True, "ids": finals},
        )


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("final")
