"""The database: engines and the thread pool (`engine`), tables, queries (`store`) and
Alembic migrations (`migrate`, `migrations/`)."""
