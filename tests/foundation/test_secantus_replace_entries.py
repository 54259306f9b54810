"""The embedded store's updates rewrite only changed index entries
(tools/secantus_replace_entries.py); everything SecantusDB stores and answers stays its own.

Each scenario runs on two subclasses of SecantusDB's ``Storage`` (the shipped class stays
untouched), both patched as the embedded server runs them (catalog memo, insert checks):
``library`` without the replace entries, ``replaced`` with them. After the same inserts and
updates, every row of the index-entry, unique-key and document tables, each update's
answer, and a find through each index must be equal.
"""

import copy
import datetime
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import secantus.storage as storage_module
from secantus.storage import Storage

from tests.foundation.secantus_tables import table_rows
from tools.embedded_store import PATCHED_RELEASES, CatalogMemo
from tools.embedded_store import install as install_memo
from tools.secantus_insert_checks import install as install_insert_checks
from tools.secantus_replace_entries import install

RELEASE = version("SecantusDB")
WHEN = datetime.datetime(2026, 12, 6, 3, 0)
Index = tuple[str, dict[str, Any], dict[str, Any]]
# history_service/documents.py's ConversationView indexes
CONVERSATION_INDEXES: list[Index] = [
    ("by_status", {"tenant": 1, "status": 1, "last_position": -1}, {}),
    ("by_visitor", {"tenant": 1, "visitor.id": 1}, {}),
]
TABLES = (
    storage_module._IDX_ENTRIES_TABLE,
    storage_module._UNIQ_TABLE,
    storage_module._doc_table_for("db", "conversations"),
)


class Counted(Storage):  # type: ignore[misc]
    """Counts the removals that reach SecantusDB's own ``_delete_index_entries``."""

    removals: int

    def _delete_index_entries(self, *args: Any, **kwargs: Any) -> Any:
        self.removals += 1
        return super()._delete_index_entries(*args, **kwargs)


def _engine(*, replaced: bool) -> Counted:
    class Engine(Counted):
        pass

    assert install_memo(Engine, RELEASE, CatalogMemo()) is None
    assert install_insert_checks(RELEASE, PATCHED_RELEASES, engine=Engine) is None
    if replaced:
        assert install(RELEASE, PATCHED_RELEASES, engine=Engine) is None
    engine = Engine(":memory:", enable_oplog=False)
    engine.removals = 0
    return engine


@pytest.fixture
def engines() -> Iterator[dict[str, Counted]]:
    both = {"library": _engine(replaced=False), "replaced": _engine(replaced=True)}
    yield both
    for engine in both.values():
        engine.close()


def _conversation(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "_id": f"t{n % 2}|c{n}",
        "conversation_id": f"c{n}",
        "tenant": f"t{n % 2}",
        "status": "waiting",
        "visitor": {"id": f"v{n}", "name": "Ann"},
        "created_at": WHEN,
        "message_count": 0,
        "last_position": n,
    } | changes


def _rows(storage: Storage) -> dict[str, list[tuple[Any, Any]]]:
    return table_rows(storage, TABLES)


def _through_each_index(storage: Storage) -> dict[str, list[Any]]:
    found = {}
    for name, key_spec, _options in list(storage._iter_indexes("db", "conversations")):
        field = next(iter(key_spec))
        values = [doc.get(field) for doc in storage.find_matching("db", "conversations", {})]
        for probe in sorted({str(value) for value in values if value is not None}):
            found[f"{name}={probe}"] = storage.find_matching(
                "db", "conversations", {field: probe}, hint=name
            )
    return found


Updates = list[tuple[dict[str, Any], dict[str, Any], bool]]  # (filter, update, multi)


def _same_as_library(
    engines: dict[str, Counted], indexes: list[Index], updates: Updates
) -> dict[str, int]:
    """Insert 12 conversations under ``indexes``, apply ``updates`` on both engines and
    assert they answered and stored the same. Returns each side's library removals."""
    outcome = {}
    for side, engine in engines.items():
        for name, key_spec, options in indexes:
            engine.create_index("db", "conversations", name, key_spec, options or None)
        engine.insert("db", "conversations", [_conversation(n) for n in range(12)])
        engine.removals = 0
        answers = [
            engine.update_matching("db", "conversations", dict(f), copy.deepcopy(u), multi=m)
            for f, u, m in updates
        ]
        outcome[side] = (answers, _rows(engine), _through_each_index(engine))
    library, replaced = outcome["library"], outcome["replaced"]
    assert replaced[0] == library[0], "update answers"
    for table in TABLES:
        assert replaced[1][table] == library[1][table], table
    assert replaced[2] == library[2], "finds through each index"
    return {side: engine.removals for side, engine in engines.items()}


def test_history_replaces_store_what_the_library_stores_rewriting_only_changed_keys(
    engines: dict[str, Counted],
) -> None:
    updates: Updates = [
        # a message: the position moves, the visitor stays (history's replace, every second)
        ({"_id": "t1|c1"}, _conversation(1, message_count=1, last_position=40), False),
        # accepted: the status and the position change
        ({"_id": "t0|c2"}, _conversation(2, status="active", last_position=41), False),
        # nothing an index reads changes
        ({"_id": "t1|c3"}, _conversation(3, visitor={"id": "v3", "name": "Bo"}), False),
        # the visitor changes, and then disappears (a null key, not sparse)
        ({"_id": "t0|c4"}, _conversation(4, visitor={"id": "v-new"}), False),
        ({"_id": "t1|c5"}, {k: v for k, v in _conversation(5).items() if k != "visitor"}, False),
        # an array turns the status index multikey; then shrinks to one of its values
        ({"_id": "t0|c6"}, _conversation(6, status=["active", "waiting"]), False),
        ({"_id": "t0|c6"}, _conversation(6, status=["waiting"]), False),
        # operators, not a replacement: the same index path
        ({"_id": "t1|c7"}, {"$set": {"last_position": 50}, "$inc": {"message_count": 1}}, False),
        # no document matches
        ({"_id": "t9|none"}, _conversation(99), False),
    ]
    removals = _same_as_library(engines, CONVERSATION_INDEXES, updates)
    assert removals["library"] == 8  # one per modified document
    assert removals["replaced"] == 0  # every removal diffed against the new keys instead


def test_a_multi_update_and_an_upsert_run_as_the_library_runs_them(
    engines: dict[str, Counted],
) -> None:
    updates: Updates = [
        ({"tenant": "t0"}, {"$set": {"status": "closed"}}, True),
        ({"_id": "t1|c30"}, {"$set": {"tenant": "t1", "last_position": 1}}, False),
    ]
    _same_as_library(engines, CONVERSATION_INDEXES, updates)


@pytest.mark.parametrize(
    "index",
    [
        ("unique_visitor", {"visitor.id": 1}, {"unique": True}),
        ("partial_active", {"status": 1}, {"partialFilterExpression": {"message_count": 0}}),
        ("folded_status", {"status": 1}, {"collation": {"locale": "en", "strength": 2}}),
    ],
    ids=["unique", "partial", "collation"],
)
def test_an_update_under_any_other_index_is_written_as_the_library_writes_it(
    engines: dict[str, Counted], index: Index
) -> None:
    updates: Updates = [
        ({"_id": "t1|c1"}, _conversation(1, message_count=1, last_position=40), False),
        ({"_id": "t0|c2"}, _conversation(2, status="Active", visitor={"id": "v-2b"}), False),
    ]
    removals = _same_as_library(engines, [*CONVERSATION_INDEXES, index], updates)
    assert removals["replaced"] == removals["library"] == 2
