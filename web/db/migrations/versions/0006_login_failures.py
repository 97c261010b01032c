"""login_failures: failed logins, so every web process throttles the same counts

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("username_key", sa.String(150), nullable=False),
        sa.Column(
            "failed_at",
            sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
            nullable=False,
        ),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_index("ix_login_failures_key", "login_failures", ["username_key", "failed_at"])
    op.create_index("ix_login_failures_time", "login_failures", ["failed_at"])


def downgrade() -> None:
    op.drop_table("login_failures")
