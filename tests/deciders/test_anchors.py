"""When history signs a checkpoint, and what it signs: pure, no broker, no database.

``Anchoring`` is told what each archived batch extended and decides which checkpoints are
due; the verification (history_service/verification.py) accepts exactly what it signs.
"""

import secrets

from contracts import Actor, Envelope, LoggedEvent
from contracts.events.audit import CHECKPOINT_STREAM, MAX_HEADS, AuditCheckpoint
from contracts.registry import EVENTS
from history_service.anchors import Anchoring
from history_service.archive import Archive, Head
from history_service.hash_chain import GENESIS, link_hash
from history_service.verification import ArchiveVerifier
from relaydesk.keys import KeyRing
from relaydesk.signing import Signer

SIGNER = Signer(KeyRing(secrets.token_urlsafe(48)))
AGENT = Actor(kind="agent", id="ann")


def logged(position: int, tenant: str, stream: str, type_: str = "typing.changed") -> LoggedEvent:
    envelope = Envelope(type=type_, tenant=tenant, stream=stream, actor=AGENT, data={})
    return LoggedEvent(position=position, envelope=envelope)


def anchoring() -> Anchoring:
    return Anchoring(SIGNER, Archive(None), None)  # seed() is the only part that reads


def head(n: int) -> Head:
    return (f"{n:064x}", n)


def test_a_close_is_signed_at_once_other_changes_at_the_next_interval() -> None:
    a = anchoring()
    a.archived([logged(3, "acme", "conv:c1")], {"acme|conv:c1": head(1)}, 3)
    assert a.due(everyone=False) == []  # nothing closed: wait for the interval
    closed = logged(4, "acme", "conv:c1", "conversation.closed")
    a.archived([closed], {"acme|conv:c1": head(2)}, 4)
    (checkpoint,) = a.due(everyone=False)
    assert checkpoint.type == AuditCheckpoint.TYPE and checkpoint.tenant == "acme"
    assert checkpoint.stream == CHECKPOINT_STREAM
    data = EVENTS.parse_envelope(checkpoint)
    assert isinstance(data, AuditCheckpoint)
    assert data.position == 4 and [(h.stream, h.count) for h in data.heads] == [("conv:c1", 2)]
    assert a.due(everyone=True) == []  # signed: nothing left to sign


def test_no_second_checkpoint_while_the_first_is_on_its_way_nor_one_for_itself_alone() -> None:
    a = anchoring()
    a.archived([logged(1, "acme", "conv:c1")], {"acme|conv:c1": head(1)}, 1)
    (first,) = a.due(everyone=True)
    a.archived([logged(2, "acme", "conv:c2")], {"acme|conv:c2": head(1)}, 2)
    assert a.due(everyone=True) == []  # the first one has not come back from the log
    back = LoggedEvent(position=3, envelope=first)
    a.archived([back], {f"acme|{CHECKPOINT_STREAM}": head(1)}, 3)
    (second,) = a.due(everyone=True)  # signs conv:c2 and the first checkpoint's archiving
    assert {h["stream"] for h in second.data["heads"]} == {"conv:c2", CHECKPOINT_STREAM}
    a.archived(
        [LoggedEvent(position=4, envelope=second)], {f"acme|{CHECKPOINT_STREAM}": head(2)}, 4
    )
    assert a.due(everyone=True) == []  # only its own chain changed: no endless checkpoints


def test_many_chains_are_signed_in_parts_at_one_position_and_the_system_tenant_never() -> None:
    a = anchoring()
    heads = {f"acme|conv:c{i}": head(1) for i in range(MAX_HEADS + 3)}
    heads["_system|marker:x"] = head(1)
    a.archived([], heads, 9)
    parts = a.due(everyone=True)
    assert [len(p.data["heads"]) for p in parts] == [MAX_HEADS, 3]
    assert {p.data["position"] for p in parts} == {9} and {p.tenant for p in parts} == {"acme"}


def test_a_checkpoint_not_published_is_made_again_with_the_newest_heads() -> None:
    a = anchoring()
    a.archived([logged(1, "acme", "conv:c1")], {"acme|conv:c1": head(1)}, 1)
    lost = a.due(everyone=True)
    a.archived([logged(2, "acme", "conv:c1")], {"acme|conv:c1": head(2)}, 2)
    a.failed(lost)
    (again,) = a.due(everyone=True)
    assert again.data["heads"][0]["count"] == 2 and again.data["position"] == 2


def test_what_is_signed_verifies_and_a_chain_cut_short_does_not() -> None:
    a = anchoring()
    docs, prev = [], GENESIS
    for position in range(3):
        doc = {
            "_id": f"e{position}",
            "position": position,
            "type": "typing.changed",
            "v": 1,
            "tenant": "acme",
            "stream": "conv:c1",
            "actor": {"kind": "agent", "id": "ann"},
            "occurred_at": "2026-12-01T10:00:00+00:00",
            "correlation_id": None,
            "causation_id": None,
            "data": {},
        }
        envelope = {
            "id": doc["_id"],
            **{k: v for k, v in doc.items() if k not in ("_id", "position")},
        }
        doc["prev_hash"], doc["hash"] = prev, link_hash(prev, envelope)
        prev = doc["hash"]
        docs.append(doc)
    a.archived([], {"acme|conv:c1": (prev, 3)}, 2)
    (checkpoint,) = a.due(everyone=True)
    signed = {**checkpoint.model_dump(mode="json"), "position": 3}

    def findings(rows: list[dict]) -> list[str]:
        verifier = ArchiveVerifier([signed], SIGNER.public_keys)
        for row in rows:
            verifier.feed(row)
        return [f.kind for f in verifier.finish().findings]

    assert findings(docs) == []
    assert findings(docs[:2]) == ["checkpoint_mismatch"]
