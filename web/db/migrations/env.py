"""Alembic environment. `runt db upgrade` passes an open connection in
`config.attributes["connection"]`; the URL is used only when alembic runs on its own."""

from alembic import context
from sqlalchemy import create_engine

from web.db.tables import Base

config = context.config
target_metadata = Base.metadata


def run_with(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        run_with(conn)
    engine.dispose()
