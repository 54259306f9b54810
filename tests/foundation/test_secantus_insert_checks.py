"""The embedded store's per-chunk insert checks (tools/secantus_insert_checks.py): for an
insert whose secondary indexes are all plain, the per-row unique probe, geo validation,
per-index option lookups and multikey cursor are skipped; everything SecantusDB stores
and answers stays its own.

Every scenario runs twice, on two subclasses of SecantusDB's ``Storage`` of their own (the
class SecantusDB ships stays untouched), both with the catalog memo as the embedded server
runs it: ``library`` without the checks, ``checked`` with them. The insert results
(counts and write errors), every row of the catalog, index-entry, unique-key, ``_id`` and
document tables, and a find through each index must be equal.
"""

import copy
import datetime
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

import pytest
import secantus.storage as storage_module
from secantus.storage import Storage

from tests.foundation.secantus_tables import table_rows
from tools.embedded_store import PATCHED_RELEASES, CatalogMemo
from tools.embedded_store import install as install_memo
from tools.secantus_insert_checks import InsertChecks, install

RELEASE = version("SecantusDB")
WHEN = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=datetime.UTC).replace(tzinfo=None)
ARCHIVE_INDEXES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("position_1", {"position": 1}, {}),
    ("chain", {"tenant": 1, "stream": 1, "position": 1}, {}),
    ("tenant_ts", {"tenant": 1, "ts": -1}, {}),
]
TABLES = (
    storage_module._IDX_TABLE,
    storage_module._IDX_ENTRIES_TABLE,
    storage_module._UNIQ_TABLE,
    storage_module._NAT_SEQ_TABLE,
    storage_module._doc_table_for("db", "events"),
)
CHECKED = ("_unique_conflict", "_validate_geo_indexes", "_write_index_entries")
Setup = Callable[[Storage], None]


class Counted(Storage):  # type: ignore[misc]
    """Counts the calls that reach SecantusDB's own per-row checks."""

    calls: dict[str, int]

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _unique_conflict(self, *args: Any, **kwargs: Any) -> Any:
        self._count("_unique_conflict")
        return super()._unique_conflict(*args, **kwargs)

    def _validate_geo_indexes(self, *args: Any, **kwargs: Any) -> Any:
        self._count("_validate_geo_indexes")
        return super()._validate_geo_indexes(*args, **kwargs)

    def _write_index_entries(self, *args: Any, **kwargs: Any) -> Any:
        self._count("_write_index_entries")
        return super()._write_index_entries(*args, **kwargs)


def _engine(*, checked: bool) -> Counted:
    class Engine(Counted):
        pass

    assert install_memo(Engine, RELEASE, CatalogMemo()) is None
    if checked:
        assert install(RELEASE, PATCHED_RELEASES, engine=Engine) is None
    engine = Engine(":memory:", enable_oplog=False)
    engine.calls = {}
    return engine


@pytest.fixture
def engines() -> Iterator[dict[str, Counted]]:
    both = {"library": _engine(checked=False), "checked": _engine(checked=True)}
    yield both
    for engine in both.values():
        engine.close()


def _event(n: int, *, tenant: int | None = None) -> dict[str, Any]:
    """An archived event as history writes it: flat strings, integers, a date, and
    sub-documents no index reads."""
    return {
        "_id": f"{n:06d}-0123456789abcdef",
        "position": n,
        "type": "message.sent",
        "v": 1,
        "tenant": f"tenant-{n % 3 if tenant is None else tenant}",
        "stream": f"conv:{n % 7}",
        "actor": {"kind": "visitor", "id": f"v-{n % 7}"},
        "data": {"message_id": f"m-{n}", "text": "hello", "tags": ["a", n]},
        "ts": WHEN + datetime.timedelta(seconds=n),
        "hash": f"{n:064x}",
    }


def _archive(storage: Storage, *extra: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    for name, key_spec, options in (*ARCHIVE_INDEXES, *extra):
        storage.create_index("db", "events", name, key_spec, options or None)


def _rows(storage: Storage) -> dict[str, list[tuple[Any, Any]]]:
    """Every row of the tables an insert writes."""
    return table_rows(storage, TABLES)


def _through_each_index(storage: Storage) -> dict[str, list[Any]]:
    """A find hinted through each secondary index (a geo one is not hinted), for one value
    of its first field."""
    found = {}
    for name, key_spec, _options in list(storage._iter_indexes("db", "events")):
        if any(isinstance(direction, str) for direction in key_spec.values()):
            continue
        field = next(iter(key_spec))
        values = [doc.get(field) for doc in storage.find_matching("db", "events", {})]
        probe = next((value for value in values if value is not None), None)
        found[name] = storage.find_matching("db", "events", {field: probe}, hint=name)
    return found


def _same_as_library(
    engines: dict[str, Counted],
    setup: Setup,
    batches: list[tuple[list[dict[str, Any]], bool]],
    then: Setup | None = None,
) -> list[Any]:
    """Run ``setup``, insert ``batches`` ((documents, ordered)) and ``then`` on both engines;
    assert they answered and stored the same. Returns the library's insert results."""
    outcome = {}
    for side, engine in engines.items():
        setup(engine)
        engine.calls.clear()
        results = [
            engine.insert("db", "events", copy.deepcopy(docs), ordered=ordered)
            for docs, ordered in batches
        ]
        if then is not None:
            then(engine)
        outcome[side] = (results, _rows(engine), _through_each_index(engine))
    library, checked = outcome["library"], outcome["checked"]
    assert checked[0] == library[0], "insert results"
    for table in TABLES:
        assert checked[1][table] == library[1][table], table
    assert checked[2] == library[2], "finds through each index"
    return library[0]


def test_archive_batches_store_what_the_library_stores_without_its_per_row_checks(
    engines: dict[str, Counted],
) -> None:
    duplicated = [_event(n) for n in range(1_500)] + [_event(7), _event(1_499)]
    results = _same_as_library(
        engines,
        _archive,
        [
            (duplicated, False),  # two chunks, a duplicate _id in each
            ([_event(n) for n in range(1_495, 1_510)], False),  # five already stored
            ([_event(n) for n in (2_000, 2_001, 3, 2_002)], True),  # an ordered stop
        ],
    )
    assert [(inserted, len(errors)) for inserted, errors in results] == [
        (1_500, 2),
        (10, 5),
        (2, 1),
    ]
    assert results[0][1][0]["keyValue"] == {"_id": _event(7)["_id"]}
    assert results[0][1][0]["index"] == 1_500
    # The checked store took its own path for every row: no per-row library check.
    assert engines["library"].calls["_write_index_entries"] == 1_500 + 10 + 2
    assert not any(engines["checked"].calls.get(name) for name in CHECKED)


def test_a_unique_secondary_index_is_still_enforced(engines: dict[str, Counted]) -> None:
    # Named to sort after the plain ones: a refused row must leave none of their entries.
    unique = ("zz_hash", {"hash": 1}, {"unique": True})
    rows = [_event(n) for n in range(20)]
    rows[5]["hash"] = rows[2]["hash"]  # within the batch
    again = [_event(n) for n in range(100, 105)]
    again[3]["hash"] = rows[9]["hash"]  # against a stored row
    results = _same_as_library(
        engines,
        lambda storage: _archive(storage, unique),
        [(rows, False), (again, False), ([_event(200), rows[0] | {"_id": "x"}], True)],
    )
    assert [(inserted, len(errors)) for inserted, errors in results] == [(19, 1), (4, 1), (1, 1)]
    assert results[0][1][0]["keyPattern"] == {"hash": 1}
    assert engines["checked"].calls["_unique_conflict"] == 20 + 5 + 2  # every row probed


def test_prepare_unique_set_on_a_plain_index_is_still_enforced(
    engines: dict[str, Counted],
) -> None:
    def setup(storage: Storage) -> None:
        _archive(storage)
        storage.insert("db", "events", [_event(0)])
        assert storage.set_index_options("db", "events", "position_1", prepareUnique=True)

    results = _same_as_library(engines, setup, [([_event(1), _event(0) | {"_id": "x"}], False)])
    assert results[0][0] == 1
    assert results[0][1][0]["keyPattern"] == {"position": 1}


def test_a_geo_index_still_validates_each_row(engines: dict[str, Counted]) -> None:
    geo: tuple[str, dict[str, Any], dict[str, Any]] = ("where_2dsphere", {"where": "2dsphere"}, {})
    rows = [_event(n) | {"where": {"type": "Point", "coordinates": [n, n]}} for n in range(6)]
    rows[2]["where"] = {"type": "Point", "coordinates": [500, 500]}  # off the sphere
    rows[4].pop("where")
    results = _same_as_library(engines, lambda storage: _archive(storage, geo), [(rows, False)])
    assert results[0][0] == 5
    assert [(error["index"], error["code"]) for error in results[0][1]] == [(2, 16572)]
    assert engines["checked"].calls["_validate_geo_indexes"] == 6


@pytest.mark.parametrize(
    "index",
    [
        ("by_type", {"type": 1}, {"partialFilterExpression": {"v": {"$gt": 1}}}),
        ("by_text", {"data.text": 1}, {"collation": {"locale": "en", "strength": 2}}),
        ("sparse_actor", {"actor.kind": 1, "missing": 1}, {"sparse": True}),
        ("tenant_hash", {"tenant": 1, "hash": -1}, {}),
    ],
    ids=["partial", "collation", "sparse-dotted", "plain"],
)
def test_any_other_index_is_written_as_the_library_writes_it(
    engines: dict[str, Counted], index: tuple[str, dict[str, Any], dict[str, Any]]
) -> None:
    rows = [_event(n) | {"v": n % 3} for n in range(30)]
    for row in rows[::4]:
        del row["actor"]  # neither field of the sparse index: no entry
    _same_as_library(engines, lambda storage: _archive(storage, index), [(rows, False)])
    plain = not index[2] or index[2] == {"sparse": True}
    assert bool(engines["checked"].calls.get("_write_index_entries")) is not plain


def test_an_array_mid_batch_marks_its_index_multikey_as_the_library_does(
    engines: dict[str, Counted],
) -> None:
    rows = [_event(n) for n in range(40)]
    rows[17]["stream"] = ["conv:1", "conv:2"]  # the chain index turns multikey here
    rows[30]["tenant"] = ["tenant-0", "tenant-9"]  # and then both indexes on tenant
    _same_as_library(engines, _archive, [(rows, False), ([_event(50)], False)])
    catalog = {
        name: options.get("multikey", False)
        for name, _key, options in engines["checked"]._iter_indexes("db", "events")
    }
    assert catalog == {"chain": True, "position_1": False, "tenant_ts": True}


def test_updates_and_deletes_after_a_checked_insert_are_the_library_s(
    engines: dict[str, Counted],
) -> None:
    def then(storage: Storage) -> None:
        storage.update_matching("db", "events", {"position": 3}, {"$set": {"tenant": "moved"}})
        storage.update_matching(
            "db", "events", {"tenant": "tenant-1"}, {"$inc": {"position": 1000}}, multi=True
        )
        storage.delete_matching("db", "events", {"stream": "conv:2"})

    _same_as_library(engines, _archive, [([_event(n) for n in range(30)], False)], then)
    assert engines["checked"].calls["_write_index_entries"] > 0  # the library's own path


def test_only_the_chunk_s_own_index_list_takes_the_fast_path() -> None:
    """Another list (another path's, or an equal copy) and any call outside an insert chunk
    go to the library's method."""
    library: list[str] = []
    checks = InsertChecks(storage_module)
    unique_conflict = checks.unique_conflict(lambda *_, **__: library.append("probe"))
    read = checks.all_indexes(
        lambda _storage, _db, _coll: [("position_1", {"position": 1}, False, False)]
    )

    class Catalog:
        def _index_options_map(self, db: str, coll: str) -> dict[str, dict[str, Any]]:
            return {"position_1": {}}

    def chunk(storage: Catalog) -> list[Any]:
        indexes = read(storage, "db", "events")
        for given in (indexes, list(indexes)):
            unique_conflict(storage, "db", "events", {}, given, exclude_recordid=None, partials={})
        return indexes  # type: ignore[no-any-return]

    indexes = checks.insert_chunk(chunk)(Catalog())
    assert library == ["probe"]  # the copy's
    unique_conflict(Catalog(), "db", "events", {}, indexes, exclude_recordid=None, partials={})
    assert library == ["probe", "probe"]  # after the chunk


def test_either_install_order_keeps_the_memo_and_the_checks() -> None:
    class ChecksFirst(Counted):
        pass

    assert install(RELEASE, PATCHED_RELEASES, engine=ChecksFirst) is None
    assert install_memo(ChecksFirst, RELEASE, CatalogMemo()) is None
    storage = ChecksFirst(":memory:", enable_oplog=False)
    storage.calls = {}
    try:
        _archive(storage)
        assert storage.insert("db", "events", [_event(n) for n in range(10)]) == (10, [])
        assert not any(storage.calls.get(name) for name in CHECKED)
        assert len(storage.find_matching("db", "events", {"tenant": "tenant-1"})) == 3
    finally:
        storage.close()


def test_another_release_is_left_as_shipped() -> None:
    class Engine(Storage):  # type: ignore[misc]
        pass

    before = dict(vars(Engine))
    refused = install("0.7.0b4", PATCHED_RELEASES, engine=Engine)
    assert refused is not None and "0.7.0b4" in refused
    assert dict(vars(Engine)) == before


def test_a_storage_of_another_shape_is_left_as_shipped() -> None:
    class Engine(Storage):  # type: ignore[misc]
        _insert_chunk = Storage._insert_chunk.__wrapped__  # no write-conflict retry around it

    before = dict(vars(Engine))
    refused = install(RELEASE, PATCHED_RELEASES, engine=Engine)
    assert refused is not None and "_insert_chunk" in refused
    assert dict(vars(Engine)) == before
