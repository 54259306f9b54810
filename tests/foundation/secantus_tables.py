"""Every row of some of an embedded SecantusDB's WiredTiger tables, for tests that compare
what a patched engine stored with what the library stores."""

from collections.abc import Iterable
from typing import Any

from secantus.storage import Storage


def table_rows(storage: Storage, tables: Iterable[str]) -> dict[str, list[tuple[Any, Any]]]:
    rows: dict[str, list[tuple[Any, Any]]] = {}
    for table in tables:
        cursor = storage._cursor_optional(table)
        found: list[tuple[Any, Any]] = []
        if cursor is not None:
            cursor.reset()
            while cursor.next() == 0:
                key, value = cursor.get_key(), cursor.get_value()
                found.append((key, bytes(value) if isinstance(value, bytes | bytearray) else value))
            cursor.reset()
        rows[table] = found
    return rows
