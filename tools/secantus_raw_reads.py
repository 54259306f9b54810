"""Whole-collection finds in index order answer with the stored BSON, not decoded and encoded again.

SecantusDB fetches each document's stored BSON, decodes it into a dict and, for the reply,
encodes it again (twice: once to size the batch, once for the reply itself). A ``find``
with an empty filter sorted by an index — the archive read in log order by
``relaydesk replay --source archive`` and the bench's archive replay — looks inside none
of its documents: the index gives the order, the empty filter matches every one. Profiled
on such a replay of 160,958 events, the decode was 29 % of the store's time and the
encodes 14 % (docs/performance.md, "The archive read as stored"). Those finds now hand
out ``bson.RawBSONDocument``s over the stored bytes, which pymongo's encoder copies into
the reply as they are.

Only then: the ``find`` command (aggregation stages, updates and deletes work on the
documents' fields), on a collection that is not a view, with an empty filter, no
projection, collation, ``min``/``max``, hint, ``returnKey``, ``showRecordId`` or tailable
cursor, and only for the documents the index walk fetches: a find that falls back to
sorting in Python reads fields, and gets dicts as before.
"""

import contextlib
import contextvars
import functools
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from bson.raw_bson import RawBSONDocument

# Set while the find command being handled may answer with stored bytes ...
_FIND_AS_STORED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "find_as_stored", default=False
)
# ... and while its index walk fetches the documents.
_FETCH_AS_STORED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fetch_as_stored", default=False
)
# A hint walks the hinted index and may then sort in Python by another field: fields read.
_BARRED_OPTIONS = ("projection", "collation", "min", "max", "hint", "returnKey", "showRecordId")


def answerable_as_stored(command: Mapping[str, Any]) -> bool:
    """Whether a ``find`` command's documents need not be looked into (no view check)."""
    if command.get("filter") or command.get("tailable"):
        return False
    return not any(command.get(option) for option in _BARRED_OPTIONS)


def _find_handler(find: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(find)
    def handle(command: Mapping[str, Any], ctx: Any, *args: Any, **kwargs: Any) -> Any:
        collection = command.get("find")
        eligible = (
            isinstance(collection, str)
            and answerable_as_stored(command)
            and not ctx.storage.get_collection_options(ctx.db_name, collection).get("viewOn")
        )
        if not eligible:
            return find(command, ctx, *args, **kwargs)
        with answering_as_stored():
            return find(command, ctx, *args, **kwargs)

    return handle


@contextlib.contextmanager
def answering_as_stored() -> Iterator[None]:
    """The find being handled in this context may answer with stored bytes (set by the
    wrapped ``find`` command; tests drive the storage engine in-process inside it)."""
    token = _FIND_AS_STORED.set(True)
    try:
        yield
    finally:
        _FIND_AS_STORED.reset(token)


def _index_walk(walk: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(walk)
    def walk_in_order(storage: Any, *args: Any, **kwargs: Any) -> Any:
        if not _FIND_AS_STORED.get():
            return walk(storage, *args, **kwargs)
        token = _FETCH_AS_STORED.set(True)
        try:
            return walk(storage, *args, **kwargs)
        finally:
            _FETCH_AS_STORED.reset(token)

    return walk_in_order


def _fetch(
    fetch: Callable[..., Any], doc_table_for: Callable[[str, str], str], unframe: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(fetch)
    def docs_by_recordids(storage: Any, db: str, coll: str, recordids: list[int]) -> Any:
        if not _FETCH_AS_STORED.get() or not recordids:
            return fetch(storage, db, coll, recordids)
        # The library's own fetch (``Storage._docs_by_recordids``), less the decode.
        cursor = storage._cursor_optional(doc_table_for(db, coll))
        if cursor is None:
            return []  # a collection never written
        stored: list[RawBSONDocument] = []
        for recordid in dict.fromkeys(recordids):  # a multikey walk repeats ids
            cursor.reset()
            cursor.set_key(db, coll, recordid)
            if cursor.search() == 0:
                stored.append(RawBSONDocument(unframe(bytes(cursor.get_value()))[1]))
        return stored

    return docs_by_recordids


def install(
    release: str,
    written_for: Collection[str],
    *,
    engine: Any = None,
    handlers: dict[str, Any] | None = None,
) -> str | None:
    """Wrap the ``find`` command (in ``handlers``, default SecantusDB's command table), the
    index walk and the fetch of ``engine`` (default its ``Storage``); the reason when they
    are left alone. Tied to the releases they were written against: the fetch mirrors a
    private method, which another release may change."""
    if release not in written_for:
        return f"SecantusDB {release} is not a release its reads were written against"
    import secantus.commands as commands
    import secantus.storage as storage

    engine = storage.Storage if engine is None else engine
    handlers = getattr(commands, "_HANDLERS", {}) if handlers is None else handlers
    missing = [
        name
        for name in ("_walk_index_in_order", "_docs_by_recordids", "_cursor_optional")
        if not callable(getattr(engine, name, None))
    ]
    missing += [
        name
        for name in ("_doc_table_for", "_unframe_doc_value")
        if not callable(getattr(storage, name, None))
    ]
    if not callable(handlers.get("find")):
        missing.append("_HANDLERS['find']")
    if missing:
        return f"SecantusDB's reads have changed shape ({', '.join(missing)})"
    handlers["find"] = _find_handler(handlers["find"])
    engine._walk_index_in_order = _index_walk(engine._walk_index_in_order)
    engine._docs_by_recordids = _fetch(
        engine._docs_by_recordids, storage._doc_table_for, storage._unframe_doc_value
    )
    return None
