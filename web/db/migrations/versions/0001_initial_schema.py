"""initial schema: users, sessions, models, training_data, checkpoints, metrics, evaluations

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def big_id():
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def timestamp():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def id_column():
    return sa.Column("id", big_id(), primary_key=True)


def model_fk(table: str):
    return sa.Column(
        "model_id",
        big_id(),
        sa.ForeignKey("models.id", name=f"fk_{table}_model_id_models", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        id_column(),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("create_time", timestamp(), nullable=False),
        sa.UniqueConstraint("username", name="uq_users_username"),
        **MYSQL,
    )
    op.create_table(
        "models",
        id_column(),
        sa.Column(
            "owner_id",
            big_id(),
            sa.ForeignKey("users.id", name="fk_models_owner_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200)),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("env_id", sa.String(200), nullable=False),
        sa.Column("env_params", sa.JSON(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("learning_rate", sa.Double(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("buffer_size", sa.Integer(), nullable=False),
        sa.Column("gamma", sa.Double(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("num_workers", sa.Integer(), nullable=False),
        sa.Column("target_episode", sa.Integer(), nullable=False),
        sa.Column("current_episode", sa.Integer(), nullable=False),
        sa.Column("stop_reward", sa.Double()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text()),
        sa.Column("create_time", timestamp(), nullable=False),
        sa.Column("update_time", timestamp(), nullable=False),
        sa.Index("ix_models_owner_id", "owner_id", "id"),
        **MYSQL,
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            big_id(),
            sa.ForeignKey("users.id", name="fk_sessions_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("create_time", timestamp(), nullable=False),
        sa.Column("expires_at", timestamp(), nullable=False),
        sa.Index("ix_sessions_user", "user_id"),
        **MYSQL,
    )
    op.create_table(
        "training_data",
        id_column(),
        model_fk("training_data"),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("reward", sa.Double(), nullable=False),
        sa.Column("smoothed_reward", sa.Double(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("worker", sa.Integer(), nullable=False),
        sa.Column("worker_seq", sa.Integer()),
        sa.Column("create_time", timestamp(), nullable=False),
        sa.UniqueConstraint("model_id", "episode", name="uq_training_data_episode"),
        sa.UniqueConstraint("model_id", "worker", "worker_seq", name="uq_training_data_worker_seq"),
        **MYSQL,
    )
    op.create_table(
        "checkpoints",
        id_column(),
        model_fk("checkpoints"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("env_steps", sa.BigInteger(), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column(
            "weights",
            sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("create_time", timestamp(), nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_checkpoints_version"),
        **MYSQL,
    )
    op.create_table(
        "metrics",
        id_column(),
        model_fk("metrics"),
        sa.Column("env_steps", sa.BigInteger(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("create_time", timestamp(), nullable=False),
        sa.Index("ix_metrics_model", "model_id", "id"),
        **MYSQL,
    )
    op.create_table(
        "evaluations",
        id_column(),
        model_fk("evaluations"),
        sa.Column("env_steps", sa.BigInteger(), nullable=False),
        sa.Column("mean_return", sa.Double(), nullable=False),
        sa.Column("std_return", sa.Double(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("create_time", timestamp(), nullable=False),
        sa.Index("ix_evaluations_model", "model_id", "id"),
        **MYSQL,
    )


def downgrade() -> None:
    for table in ("evaluations", "metrics", "checkpoints", "training_data", "sessions"):
        op.drop_table(table)
    op.drop_table("models")
    op.drop_table("users")
