"""Alembic migrations of the blazz schema (run them with `blazzctl db upgrade`)."""
