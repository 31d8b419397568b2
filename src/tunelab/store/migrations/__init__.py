"""Alembic migrations for the store; run by ``tunelab.store.db.init_db``."""
