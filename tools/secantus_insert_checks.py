"""SecantusDB's per-row index checks on insert, decided once per insert chunk.

For every document of an insert chunk, SecantusDB 0.7.0b3 asks each secondary index the
same questions again: ``_unique_conflict`` probes the unique indexes (rebuilding the
name → options map to learn which are unique or ``prepareUnique``),
``_validate_geo_indexes`` looks for a geo index (the map again, ``_geo_type_of`` per index),
``_write_index_entries`` builds the map a third time and per index asks for geo, collation
and ``prepareUnique``, and ``_maybe_mark_multikey`` positions a catalog cursor before
learning that no field is an array. The answers depend only on the collection's catalog,
which one chunk — one WiredTiger transaction under the collection's lock — sees fixed
(its own catalog write, marking an index multikey, changes none of them). For the
archive's ``events`` (``_id`` unique, three plain secondary indexes) every answer is "no":
py-spy on tools/bench/store_inserts.py put that at about a tenth of the insert's CPU
(docs/performance.md, "The store's per-row index checks").

What changes: when an insert chunk reads its index list (``_all_indexes``), that list's
indexes are judged once. If every one is *plain* — not unique, not ``prepareUnique``, no
partial filter, no collation, not geo — the per-row calls given that very list (and no
partial filters) skip what cannot apply: no unique probe (the ``_id`` duplicate is refused
by the record insert itself, ``_write_nat_entry``, untouched), no geo validation, index
entries written with the library's own ``_index_key_variants`` and ``_pack_entry`` without
the per-index lookups, and the multikey catalog cursor only when some row's field is an
array (then the library's own marking runs). A collection with any other index, a call
with another list (an update, a delete, index DDL), or anything outside an insert chunk
runs the library's methods unchanged.
"""

import functools
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

from tools.secantus_patching import missing_parts, scoped

IndexRow = tuple[str, dict[str, Any], bool, bool]  # (name, key spec, sparse, unique)
# Index options that make a row's index work more than "write its keys".
_NOT_PLAIN_OPTIONS = ("unique", "prepareUnique", "partialFilterExpression", "collation")
_METHODS = (
    "_insert_chunk",
    "_all_indexes",
    "_index_options_map",
    "_unique_conflict",
    "_validate_geo_indexes",
    "_write_index_entries",
    "_maybe_mark_multikey",
    "_cursor",
)
_FUNCTIONS = ("_retry_write_conflicts", "_geo_type_of", "_index_key_variants", "_pack_entry")
_TABLES = ("_IDX_ENTRIES_TABLE",)


class InsertChecks:
    """Per thread: the index list of the insert chunk running now, if all its indexes are
    plain. Wrappers for the storage engine's methods take the fast path only for that list."""

    def __init__(self, storage_module: Any) -> None:
        # The module, not its functions: tools/secantus_index_keys.py replaces
        # ``_index_key_variants`` and ``_doc_makes_multikey`` there, at any time.
        self._storage = storage_module
        self._local = threading.local()

    def plain(self, indexes: list[IndexRow], options: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether writing a row to these indexes is only writing its keys."""
        geo_type_of = self._storage._geo_type_of
        for name, key_spec, _sparse, unique in indexes:
            opts = options.get(name) or {}
            if unique or any(opts.get(option) for option in _NOT_PLAIN_OPTIONS):
                return False
            if geo_type_of(key_spec) is not None:
                return False
        return True

    def _planned(self, indexes: Any) -> bool:
        # Identity: the list this chunk read, not an equal one from another path.
        planned = getattr(self._local, "indexes", None)
        return planned is not None and planned is indexes

    def insert_chunk(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """One insert chunk (one attempt of it): its index list may be planned."""
        return scoped(self._local, "in_chunk", "indexes")(fn)

    def all_indexes(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(storage: Any, db: str, coll: str) -> list[IndexRow]:
            indexes: list[IndexRow] = fn(storage, db, coll)
            if getattr(self._local, "in_chunk", False):
                # Judged from the same catalog the library's per-row calls read (the
                # chunk's transaction sees it fixed).
                options = storage._index_options_map(db, coll)
                self._local.indexes = indexes if self.plain(indexes, options) else None
            return indexes

        return wrapper

    def unique_conflict(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(
            storage: Any,
            db: str,
            coll: str,
            candidate_doc: dict[str, Any],
            indexes: list[IndexRow],
            **kwargs: Any,
        ) -> Any:
            if not kwargs.get("partials") and self._planned(indexes):
                return None  # no unique or prepareUnique index among them: nothing to probe
            return fn(storage, db, coll, candidate_doc, indexes, **kwargs)

        return wrapper

    def validate_geo(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(
            storage: Any, db: str, coll: str, doc: Any, indexes: Any, partials: Any = None
        ) -> None:
            if not partials and self._planned(indexes):
                return  # no geo index among them: nothing to validate
            fn(storage, db, coll, doc, indexes, partials)

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
            if partials or not indexes or not self._planned(indexes):
                fn(storage, db, coll, doc, indexes, partials, recordid=recordid)
                return
            # The library's loop for an index with no partial filter, no geo type, no
            # collation and nothing to enforce: each key the row contributes, one entry.
            variants = storage_module._index_key_variants
            pack_entry = storage_module._pack_entry
            c = storage._cursor(table)
            for name, key_spec, sparse, _unique in indexes:
                for kb in variants(doc, key_spec, sparse=sparse, collation=None):
                    c.reset()
                    c[db, coll, name, pack_entry(kb, recordid)] = b""

        return wrapper

    def mark_multikey(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        storage_module = self._storage

        @functools.wraps(fn)
        def wrapper(
            storage: Any,
            db: str,
            coll: str,
            doc: Any,
            indexes: list[IndexRow],
            already_multikey: set[str],
        ) -> set[str]:
            if self._planned(indexes):
                makes_multikey = storage_module._doc_makes_multikey
                for name, key_spec, _sparse, _unique in indexes:
                    if name not in already_multikey and makes_multikey(doc, key_spec):
                        break  # this row marks one: the library's own marking
                else:
                    return already_multikey  # what the library returns when none is marked
            marked: set[str] = fn(storage, db, coll, doc, indexes, already_multikey)
            return marked

        return wrapper


def install(release: str, written_for: Collection[str], *, engine: Any = None) -> str | None:
    """Wrap ``engine``'s (default SecantusDB's ``Storage``) insert-chunk index checks; the
    reason when they are left alone. Tied to the releases they were written against: the
    fast paths mirror private methods, which another release may change."""
    if release not in written_for:
        return f"SecantusDB {release} is not a release its insert checks were written against"
    import secantus.storage as storage

    engine = storage.Storage if engine is None else engine
    missing = missing_parts(engine, storage, _METHODS, _FUNCTIONS, _TABLES)
    if not hasattr(getattr(engine, "_insert_chunk", None), "__wrapped__"):
        missing.append("_insert_chunk.__wrapped__")
    if missing:
        return f"SecantusDB's insert has changed shape ({', '.join(missing)})"
    checks = InsertChecks(storage)
    # Beneath the write-conflict retry (``__wrapped__`` is the method it retries), as
    # tools/embedded_store.py's memo is: the engine keeps the library's shape, so the two
    # install in either order, and every attempt of a chunk plans afresh.
    engine._insert_chunk = storage._retry_write_conflicts(
        checks.insert_chunk(engine._insert_chunk.__wrapped__)
    )
    engine._all_indexes = checks.all_indexes(engine._all_indexes)
    engine._unique_conflict = checks.unique_conflict(engine._unique_conflict)
    engine._validate_geo_indexes = checks.validate_geo(engine._validate_geo_indexes)
    engine._write_index_entries = checks.write_entries(engine._write_index_entries)
    engine._maybe_mark_multikey = checks.mark_multikey(engine._maybe_mark_multikey)
    return None
