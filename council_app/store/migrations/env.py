"""Alembic environment: runs on the connection the caller hands in, never on its own engine.

``schema_versions`` puts an open connection (inside the caller's transaction, and on
PostgreSQL under the schema advisory lock) into ``config.attributes["connection"]``, so no
alembic.ini and no URL are needed at run time.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "council migrations run through council_app.store.schema_versions, "
        "which hands Alembic an open connection"
    )

context.configure(
    connection=connection,
    target_metadata=None,
    # SQLite cannot ALTER most things: revisions use op.batch_alter_table there.
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)

with context.begin_transaction():
    context.run_migrations()
