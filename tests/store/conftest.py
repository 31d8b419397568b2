"""The store tests use the shared database fixtures of tests/db_fixtures.py."""
