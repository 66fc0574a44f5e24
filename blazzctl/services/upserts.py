"""Batched insert-or-update, one statement per batch, in the dialect's own syntax.

MySQL/MariaDB: ``INSERT ... ON DUPLICATE KEY UPDATE`` (PyMySQL sends a batch as one
multi-row INSERT); SQLite: ``INSERT ... ON CONFLICT (keys) DO UPDATE``. Sync writes
thousands of chats and contacts this way instead of a SELECT then an INSERT or UPDATE per
row (what the original did), which is what keeps a 10,000-chat account to a second or two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.orm import Session

from blazzctl.db import is_mysql


def batches(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``rows`` in slices of at most ``size``."""
    for start in range(0, len(rows), max(1, size)):
        yield rows[start:start + size]


def statement(session: Session, table: Table, *, keys: Sequence[str], update: Sequence[str],
              keep: Sequence[str] = ()):
    """The insert-or-update statement for ``table``: on a clash of ``keys``, set ``update`` columns
    (those also in ``keep`` only when the new value is not NULL: a listing that does not know a
    value does not erase the one stored)."""
    def value(new, name):
        return func.coalesce(new[name], table.c[name]) if name in keep else new[name]

    if is_mysql(session):
        from sqlalchemy.dialects.mysql import insert

        stmt = insert(table)
        return stmt.on_duplicate_key_update({name: value(stmt.inserted, name) for name in update})
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(table)
    return stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={name: value(stmt.excluded, name) for name in update})


def upsert(session: Session, table: Table, rows: Sequence[dict[str, Any]], *, keys: Sequence[str],
           update: Sequence[str], keep: Sequence[str] = ()) -> int:
    """Insert ``rows`` (dicts with the same keys), updating ``update`` where ``keys`` exist; one statement.

    ``keys`` must be the columns of a unique constraint of ``table``. Returns the number of rows given.
    """
    if not rows:
        return 0
    session.execute(statement(session, table, keys=keys, update=update, keep=keep), list(rows))
    return len(rows)
