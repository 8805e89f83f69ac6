"""Alembic revisions of our schema; applied by ``council_app.store.schema_versions``."""
