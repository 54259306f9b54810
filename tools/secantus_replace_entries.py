"""SecantusDB's update rewrites only the index entries whose keys changed.

For each document an update modifies, SecantusDB 0.7.0b3 (``_update_matching_single_txn``)
removes every index entry the old document contributed (``_delete_index_entries``: per
index its keys, per key a cursor search and a remove) and writes every entry of the new one
(``_write_index_entries``), whatever changed. History replaces each busy conversation
about once a second (history_service/read_models.py), and of the ``conversations``
collection's two secondary indexes one key, ``(tenant, visitor.id)``, never changes: half
the index work of every replace removed an entry and wrote it back as it was
(docs/performance.md, "Replaces that keep their index entries").

What changes: inside an update, when the index list is all *plain* (the judgment of
tools/secantus_insert_checks.py: not unique, not ``prepareUnique``, no partial filter, no
collation, not geo), the old document's removal is held back, and when the same row's new
entries are written, per index only the keys the old document had and the new one has not
are removed, and only the new one's keys the old had not are written. The result is the
same set of entries. Anything else (another kind of index, a delete, an insert, a write
with no removal before it) runs the library's methods unchanged.
"""

import functools
import threading
from collections.abc import Callable, Collection
from typing import Any

from tools.secantus_insert_checks import IndexRow, InsertChecks
from tools.secantus_patching import missing_parts, scoped

_METHODS = (
    "_update_matching_single_txn",
    "_delete_index_entries",
    "_write_index_entries",
    "_index_options_map",
    "_cursor",
)
_FUNCTIONS = ("_index_key_variants", "_pack_entry", "_geo_type_of")
_TABLES = ("_IDX_ENTRIES_TABLE",)

# (row id, the old document, the index list it was asked to remove from)
Held = tuple[int, dict[str, Any], list[IndexRow]]


class ReplaceEntries:
    """Per thread: the removal held back inside the update running now."""

    def __init__(self, storage_module: Any) -> None:
        self._storage = storage_module  # the module: its key functions may be replaced later
        self._plain = InsertChecks(storage_module).plain
        self._local = threading.local()
        self._library_delete: Callable[..., Any] | None = None

    def update(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        # A removal still held when the update ends was never followed by its write: the
        # update raised between them, and its transaction is rolled back with nothing done.
        return scoped(self._local, "in_update", "held")(fn)

    def delete_entries(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self._library_delete = fn

        @functools.wraps(fn)
        def wrapper(
            storage: Any,
            db: str,
            coll: str,
            doc: dict[str, Any],
            indexes: list[IndexRow],
            partials: Any = None,
            *,
            recordid: int,
        ) -> None:
            if (
                getattr(self._local, "in_update", False)
                and self._local.held is None
                and indexes
                and not partials
                and self._plain(indexes, storage._index_options_map(db, coll))
            ):
                self._local.held = (recordid, doc, indexes)
                return
            fn(storage, db, coll, doc, indexes, partials, recordid=recordid)

        return wrapper

    def write_entries(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        storage_module = self._storage
        table = storage_module._IDX_ENTRIES_TABLE

        @functools.wraps(fn)
        def wrapper(
            storage: Any,
            db: str,
            coll: str,
            doc: dict[str, Any],
            indexes: list[IndexRow],
            partials: Any = None,
            *,
            recordid: int,
        ) -> None:
            held: Held | None = getattr(self._local, "held", None)
            if held is None or held[0] != recordid or held[2] is not indexes or partials:
                if held is not None:  # not the write it was held for: remove as the library does
                    self._local.held = None
                    self._delete_held(storage, db, coll, held)
                fn(storage, db, coll, doc, indexes, partials, recordid=recordid)
                return
            self._local.held = None
            old = held[1]
            variants = storage_module._index_key_variants
            pack_entry = storage_module._pack_entry
            c = storage._cursor(table)
            for name, key_spec, sparse, _unique in indexes:
                before = list(variants(old, key_spec, sparse=sparse, collation=None))
                after = list(variants(doc, key_spec, sparse=sparse, collation=None))
                if before == after:
                    continue  # the same entries: nothing to remove, nothing to write
                kept = set(after)
                for kb in before:
                    if kb not in kept:
                        c.reset()
                        c.set_key(db, coll, name, pack_entry(kb, recordid))
                        if c.search() == 0:
                            c.remove()
                had = set(before)
                for kb in after:
                    if kb not in had:
                        c.reset()
                        c[db, coll, name, pack_entry(kb, recordid)] = b""

        return wrapper

    def _delete_held(self, storage: Any, db: str, coll: str, held: Held) -> None:
        recordid, old, indexes = held
        assert self._library_delete is not None  # wrapped at install, before any call
        self._library_delete(storage, db, coll, old, indexes, None, recordid=recordid)


def install(release: str, written_for: Collection[str], *, engine: Any = None) -> str | None:
    """Wrap ``engine``'s (default SecantusDB's ``Storage``) update index writes; the reason
    when they are left alone. Tied to the releases they were written against: they mirror
    private methods, which another release may change."""
    if release not in written_for:
        return f"SecantusDB {release} is not a release its replace entries were written against"
    import secantus.storage as storage

    engine = storage.Storage if engine is None else engine
    missing = missing_parts(engine, storage, _METHODS, _FUNCTIONS, _TABLES)
    if missing:
        return f"SecantusDB's update has changed shape ({', '.join(missing)})"
    entries = ReplaceEntries(storage)
    engine._update_matching_single_txn = entries.update(engine._update_matching_single_txn)
    engine._delete_index_entries = entries.delete_entries(engine._delete_index_entries)
    engine._write_index_entries = entries.write_entries(engine._write_index_entries)
    return None
