"""event log: episode origin with incarnation, event ids, status history

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_data") as batch:
        batch.add_column(
            sa.Column("worker_incarnation", sa.Integer(), nullable=False, server_default="0")
        )
        batch.drop_constraint("uq_training_data_worker_seq", type_="unique")
        batch.create_unique_constraint(
            "uq_training_data_origin", ["model_id", "worker", "worker_incarnation", "worker_seq"]
        )
    with op.batch_alter_table("training_data") as batch:
        batch.alter_column("worker_incarnation", server_default=None, existing_type=sa.Integer())
    for table in ("metrics", "evaluations"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("event_id", sa.String(64)))
            batch.create_unique_constraint(f"uq_{table}_event", ["model_id", "event_id"])
    op.create_table(
        "status_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "model_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey(
                "models.id", name="fk_status_history_model_id_models", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("actor", sa.String(100)),
        sa.Column(
            "create_time",
            sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Index("ix_status_history_model", "model_id", "id"),
        sa.UniqueConstraint("model_id", "event_id", name="uq_status_history_event"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )


def downgrade() -> None:
    op.drop_table("status_history")
    for table in ("evaluations", "metrics"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_event", type_="unique")
            batch.drop_column("event_id")
    with op.batch_alter_table("training_data") as batch:
        batch.drop_constraint("uq_training_data_origin", type_="unique")
        batch.create_unique_constraint(
            "uq_training_data_worker_seq", ["model_id", "worker", "worker_seq"]
        )
        batch.drop_column("worker_incarnation")
