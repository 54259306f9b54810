"""The embedded SecantusDB server, with two fixes to its query engine: the index catalog read
once per write transaction, and ``$and`` filters planned like the flat filters they mean.

    python -m tools.embedded_store --host 127.0.0.1 --port 27017 --storage-path DIR …

The arguments are SecantusDB's own (``secantusd-py``) and ``--parent-pid`` (below);
``tools.embedded.EmbeddedMongo`` starts the server this way.

Why: SecantusDB 0.7.0b3 reads a collection's index catalog from WiredTiger and decodes
every index's BSON spec several times per written document (``_iter_indexes`` behind the
unique check, the geo check, the index writes and the multikey check). With the archive's
three secondary indexes that was 42 % of the store's CPU under chat load, the largest
single cost per chat message in the whole system (docs/performance.md, "The store's index
catalog").

What changes: inside one insert chunk or one single-document update (the two write paths
the services use; each is one WiredTiger transaction under the collection's lock, which
DDL on the collection also takes), the first catalog read of a collection is kept and
handed to the later reads of the same transaction. Reads in one snapshot-isolated
transaction see the same catalog anyway, except for the transaction's own catalog writes:
marking an index multikey or creating the collection, after which the kept reads are
dropped. A retried transaction (write conflict) starts with nothing kept. Every other
path reads the catalog as before.

Second, filters: SecantusDB's planner picks an index only for a flat filter. Given the
same conditions under a top-level ``$and`` (what beanie sends for ``find(a, b)``) it scans
the whole collection: the archive's chain-head lookup for a new conversation
(``{$and: [{tenant}, {stream}]}``, newest by position) took 2-4 s at 90,000 archived
events, so a new tenant's first 200 conversations stopped history for minutes and the
console's message loads answered 503 meanwhile. ``flat_filter`` rewrites such a filter into
the equivalent flat one before the planner sees it (real MongoDB plans both the same).

Both are applied only to the SecantusDB release they were written against, and only when
the methods they wrap are there; otherwise the server runs unchanged and says so on stderr.

Third, beneath SecantusDB: WiredTiger's key and value packing, compiled per format
(tools/wiredtiger_packing.py, the same bytes as the wiredtiger package's own). It is not
tied to a SecantusDB release; it needs only the package's shape, and says so on stderr
when that is not there.

Fourth, index keys: for plain rows (top-level strings, integers, dates) each secondary
index's keys are computed directly instead of through SecantusDB's general multikey path
(tools/secantus_index_keys.py, the same keys as its own), for the same releases as the
first two.

Fifth, the per-row index checks of an insert chunk (unique probe, geo validation, the
options looked up per index, the multikey cursor) are decided once per chunk when every
secondary index is plain (tools/secantus_insert_checks.py), for the same releases.

Sixth, an update rewrites only the index entries whose keys changed, when every secondary
index is plain (tools/secantus_replace_entries.py), for the same releases.

Beside the fixes: ``--parent-pid PID`` (ours, not passed on to SecantusDB) makes the server stop
itself, as ``kill`` would (SIGTERM: SecantusDB's own stop, WiredTiger closed), once PID is no
longer its parent. ``tools.embedded.EmbeddedMongo`` passes its own process: a store whose
starter died, even by SIGKILL (a killed pytest run), does not live on holding its port and
data directory.

And one stop: SecantusDB's SIGTERM/SIGINT handler stops the server and closes WiredTiger
each time a signal arrives, so a second signal during the stop (a repeated ``kill``, the
parent-death SIGTERM beside ``relaydesk up``'s own) ran a second stop inside the first and
exited from it, abandoning the first one's WiredTiger close half done. ``stop_once`` makes
the signals ignored from the moment the stop starts; the stop itself is bounded (seconds).
"""

import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version
from typing import Any

PATCHED_RELEASES = ("0.7.0b3",)
_WRAPPED_WRITES = ("_insert_chunk", "_update_matching_single_txn")
_CATALOG_WRITES = ("_maybe_mark_multikey", "_ensure_collection")
# Storage methods taking a query filter as their third argument (after db and coll).
_FILTERED = (
    "find_matching",
    "count_matching",
    "update_matching",
    "delete_matching",
    "explain_plan",
)

CatalogRow = tuple[str, dict[str, Any], dict[str, Any]]


class CatalogMemo:
    """Per thread: the catalog rows read in the current write transaction, by collection."""

    def __init__(self) -> None:
        self._local = threading.local()

    def rows(
        self, key: tuple[str, str], read: Callable[[], Iterable[CatalogRow]]
    ) -> Iterator[CatalogRow]:
        kept: dict[tuple[str, str], list[CatalogRow]] | None = getattr(self._local, "kept", None)
        if kept is None:  # not inside a wrapped write: read as SecantusDB does
            return iter(read())
        if key not in kept:
            kept[key] = list(read())
        return iter(kept[key])

    def forget(self) -> None:
        kept = getattr(self._local, "kept", None)
        if kept is not None:
            kept.clear()

    def write(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` (one transaction) keeps its catalog reads; nested calls share the outer's."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._local, "kept", None) is not None:
                return fn(*args, **kwargs)
            self._local.kept = {}
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.kept = None

        return wrapper

    def invalidating(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` may write the catalog: nothing kept before it is used after it."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self.forget()

        return wrapper

    def multikey_marking(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``_maybe_mark_multikey(self, db, coll, doc, indexes, already_multikey)`` runs per
        written document and writes the catalog only when it adds a name to
        ``already_multikey`` (in place): only then is what was kept dropped."""

        @functools.wraps(fn)
        def wrapper(
            storage: Any, db: str, coll: str, doc: Any, indexes: Any, already_multikey: set[str]
        ) -> set[str]:
            known = len(already_multikey)
            try:
                marked: set[str] = fn(storage, db, coll, doc, indexes, already_multikey)
            except BaseException:
                self.forget()
                raise
            if len(marked) != known:
                self.forget()
            return marked

        return wrapper


def _operators(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(k).startswith("$") for k in value)


def flat_filter(query: Any) -> Any:
    """``query`` with its top-level ``$and`` folded into plain fields where that means the
    same: a field named by one clause only, or operator clauses on one field with no
    operator in common (``{$gt: 1}`` and ``{$lt: 5}`` -> ``{$gt: 1, $lt: 5}``). Clauses that
    cannot be folded (``$or``, a repeated equality) stay under ``$and``."""
    if not isinstance(query, dict) or not isinstance(query.get("$and"), list):
        return query
    merged = {key: value for key, value in query.items() if key != "$and"}
    kept: list[Any] = []
    for clause in query["$and"]:
        clause = flat_filter(clause)
        if not isinstance(clause, dict):
            kept.append(clause)
            continue
        for key, value in clause.items():
            if key.startswith("$"):
                kept.append({key: value})
            elif key not in merged:
                merged[key] = value
            elif (
                _operators(merged[key])
                and _operators(value)
                and not set(merged[key]) & set(value)
                and "$not" not in value
                and "$elemMatch" not in value
            ):
                merged[key] = {**merged[key], **value}
            else:
                kept.append({key: value})
    if kept:
        merged["$and"] = kept
    return merged


def _flattening(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(storage: Any, db: str, coll: str, *args: Any, **kwargs: Any) -> Any:
        if args:
            args = (flat_filter(args[0]), *args[1:])
        elif "filter" in kwargs:
            kwargs["filter"] = flat_filter(kwargs["filter"])
        return fn(storage, db, coll, *args, **kwargs)

    return wrapper


def install(storage_class: Any, release: str, memo: CatalogMemo) -> str | None:
    """Wrap ``storage_class``'s catalog reads and query filters; the reason when it is
    left as it is."""
    if release not in PATCHED_RELEASES:
        return f"SecantusDB {release} is not a release these fixes were written for"
    missing = [
        name
        for name in ("_iter_indexes", *_WRAPPED_WRITES, *_CATALOG_WRITES, *_FILTERED)
        if not callable(getattr(storage_class, name, None))
    ]
    unwrapped = [
        name
        for name in _WRAPPED_WRITES
        if not hasattr(getattr(storage_class, name, None), "__wrapped__")
    ]
    if missing or unwrapped:
        return f"SecantusDB's storage has changed shape ({', '.join(missing + unwrapped)})"
    from secantus.storage import _retry_write_conflicts  # the embedded extra is optional

    read_catalog = storage_class._iter_indexes

    def _iter_indexes(self: Any, db: str, coll: str) -> Iterator[CatalogRow]:
        return memo.rows((db, coll), lambda: read_catalog(self, db, coll))

    storage_class._iter_indexes = _iter_indexes
    for name in _WRAPPED_WRITES:
        # Beneath the write-conflict retry (``__wrapped__`` is the undecorated method), so a
        # retried transaction starts with nothing kept from the rolled-back attempt.
        retried = getattr(storage_class, name)
        setattr(storage_class, name, _retry_write_conflicts(memo.write(retried.__wrapped__)))
    for name in _FILTERED:
        setattr(storage_class, name, _flattening(getattr(storage_class, name)))
    storage_class._ensure_collection = memo.invalidating(storage_class._ensure_collection)
    storage_class._maybe_mark_multikey = memo.multikey_marking(storage_class._maybe_mark_multikey)
    return None


PARENT_OPTION = "--parent-pid"
# How often the watcher looks at its parent: an orphan lives at most this long before stopping.
PARENT_POLL_S = 0.25


def parent_option(argv: list[str]) -> tuple[int | None, list[str]]:
    """``--parent-pid PID`` (or ``--parent-pid=PID``) taken out of ``argv``: PID and the rest,
    SecantusDB's own arguments."""
    rest: list[str] = []
    parent: int | None = None
    args = iter(argv)
    for arg in args:
        if arg == PARENT_OPTION:
            parent = int(next(args))
        elif arg.startswith(PARENT_OPTION + "="):
            parent = int(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return parent, rest


def stop_when_orphaned(parent: int, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """A daemon thread sending SIGTERM to this process once ``parent`` is no longer its parent.

    The parent's exit is seen as a changed ``getppid()`` (the orphan is adopted by init or a
    subreaper), which works however the parent died and on any POSIX system; Linux's
    ``PR_SET_PDEATHSIG`` follows the thread that started the child rather than the process,
    and is set only by ``relaydesk up``. The stop is SIGTERM to itself, not an exit from this
    thread: SecantusDB's handler stops the server in the main thread and closes WiredTiger.
    Before that handler is installed (the server is still opening its storage) SIGTERM would
    end the process at once, so the watcher waits for it."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        # SecantusDB's handler is a Python function; SIG_DFL would end the process at once,
        # and SIG_IGN (inherited, or stop_once's) would drop the signal.
        while not callable(signal.getsignal(signal.SIGTERM)):
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, name="relaydesk-parent-watch", daemon=True)
    watcher.start()
    return watcher


def stop_once(server_class: Any) -> str | None:
    """Wrap ``server_class.stop`` so SIGINT and SIGTERM are ignored once it runs; the reason
    when it is left as it is.

    SecantusDB's handler (``secantus.cli.main``) calls ``server.stop()`` then
    ``sys.exit(0)``. Python runs a signal handler between two bytecodes of whatever the main
    thread is doing, so a signal arriving during ``stop()``, which is itself run by the
    handler, started a nested stop; its ``sys.exit`` then unwound the outer one wherever it
    was, in the middle of ``Storage.close()`` (the final checkpoint taken, WiredTiger's
    connection not closed), or inside a non-reentrant lock it took again. Ignored
    rather than handled: the stop already under way is what the signal asks for, and
    SIG_IGN also holds while the interpreter shuts down after it (where Python puts its own
    handlers back to the default action, and a late SIGTERM killed the process instead of
    it exiting 0)."""
    stop = getattr(server_class, "stop", None)
    if not callable(stop):
        return "SecantusDB's server has no stop()"

    @functools.wraps(stop)
    def stopping_once(server: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():  # signal.signal's rule
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)
        return stop(server, *args, **kwargs)

    server_class.stop = stopping_once
    return None


def main(argv: list[str] | None = None) -> int:
    from secantus.cli import main as secantus_main
    from secantus.server import SecantusDBServer
    from secantus.storage import Storage

    from relaydesk.stalls import collect_young_less_often
    from tools.secantus_index_keys import install as install_index_keys
    from tools.secantus_insert_checks import install as install_insert_checks
    from tools.secantus_raw_reads import install as install_raw_reads
    from tools.secantus_replace_entries import install as install_replace_entries
    from tools.wiredtiger_packing import install as install_compiled_packing

    refused = install(Storage, version("SecantusDB"), CatalogMemo())
    if refused is not None:
        print(f"relaydesk: {refused}; the server runs unchanged", file=sys.stderr)
    refused = install_compiled_packing()
    if refused is not None:
        print(f"relaydesk: {refused}; WiredTiger's own packing is used", file=sys.stderr)
    refused = install_index_keys(version("SecantusDB"), PATCHED_RELEASES)
    if refused is not None:
        print(f"relaydesk: {refused}; SecantusDB's own index keys are used", file=sys.stderr)
    refused = install_insert_checks(version("SecantusDB"), PATCHED_RELEASES)
    if refused is not None:
        print(f"relaydesk: {refused}; every row is checked against every index", file=sys.stderr)
    refused = install_replace_entries(version("SecantusDB"), PATCHED_RELEASES)
    if refused is not None:
        print(f"relaydesk: {refused}; an update rewrites every index entry", file=sys.stderr)
    refused = install_raw_reads(version("SecantusDB"), PATCHED_RELEASES)
    if refused is not None:
        print(f"relaydesk: {refused}; every find decodes its documents", file=sys.stderr)
    refused = stop_once(SecantusDBServer)
    if refused is not None:
        print(f"relaydesk: {refused}; a signal during the stop stops it again", file=sys.stderr)
    # Its insert batches (up to 1,000 decoded documents alive at once) set off the young
    # collection as a service's batches did (relaydesk/stalls.py).
    collect_young_less_often()
    parent, secantus_argv = parent_option(sys.argv[1:] if argv is None else argv)
    if parent is not None:
        stop_when_orphaned(parent)
    return int(secantus_main(secantus_argv))


if __name__ == "__main__":
    sys.exit(main())
