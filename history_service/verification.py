"""Verify an archive (or an export of it): hash links, signed checkpoints, and the log.

Pure: the callers read the archive, the log or a file and feed rows here, in log order.

- **Links** (``hash = sha256(prev_hash + event)`` per chain) find an event edited, removed or
  reordered when the hashes after it were left alone.
- **Checkpoints** (history_service/anchors.py) find what rewrites the hashes too: at each
  checkpoint's position every chain it lists must have the signed head and length, and
  every chain changed up to a checkpoint must be listed by one (an event added afterwards
  is listed by none). A deleted tail, an edit with every later hash recomputed, events
  removed or inserted: a head or a length that differs, or a chain never signed.
- **The log** (:func:`compare_with_log`), for the range the stream still holds: every
  first copy of an event on the log must be archived at its position with its content.
  An event archived past the log's head (:func:`past_the_log`), or without the log past
  history's own checkpoint (:func:`ahead_of_history`), was never logged there.

Each problem is a :class:`Finding` with the first position known bad; with the log that is
exact, with checkpoints alone it is a lower bound: the position after the last checkpoint
that still agreed with the chain.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.events.audit import AuditCheckpoint
from contracts.events.history import EventsExpired, RetentionApplied
from contracts.events.system import SYSTEM_TENANT
from history_service.anchors import checkpoint_message
from history_service.hash_chain import (
    GENESIS,
    envelope_of,
    expected_hash,
    link_hash,
    retention_record,
)
from relaydesk.signing import signature_holds

Scope = Callable[[str, str], bool]  # (tenant, stream) → verified here


@dataclass(frozen=True, order=True)
class Finding:
    position: int
    # broken_link | edited | missing | extra | moved | checkpoint_mismatch | unsigned_chain |
    # bad_signature | ahead_of_history | no_checkpoint | expired
    kind: str
    tenant: str
    stream: str
    event_id: str | None
    detail: str

    def line(self) -> str:
        event = f" event {self.event_id}" if self.event_id else ""
        return (
            f"{self.kind} at position {self.position}: tenant {self.tenant}"
            f" stream {self.stream}{event}: {self.detail}"
        )


@dataclass
class Chain:
    hash: str = GENESIS
    count: int = 0
    agreed_at: int = -1  # position of the last checkpoint that signed this chain as it is
    changed_from: int | None = None  # first event not yet listed by a checkpoint


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0
    checkpoints: int = 0
    unanchored: dict[str, int] = field(default_factory=dict)  # tenant → events after its last

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return min(self.findings) if self.findings else None


@dataclass(frozen=True)
class _Group:
    """The checkpoints of one tenant at one position (large ones come in parts)."""

    tenant: str
    position: int
    heads: dict[str, tuple[str, int]]


def _every(tenant: str, stream: str) -> bool:
    return True


class ArchiveVerifier:
    """Feed archived events (documents with position, hashes) in log order; then finish.

    Args:
        checkpoints: every checkpoint event known (archive, log, export), JSON form; a
            copy found twice counts once. Its signature must hold under ``public_keys``.
        public_keys: key id → Ed25519 public key (current and previous keys).
        retention: archived ``history.retention_applied`` records (their purges verify).
        scope: which chains are verified (a tenant, a conversation); others are skipped.
        expired: archived ``history.events_expired`` records: each range is a finding
            whatever the scope (whose events the deleted positions held is unknown).
    """

    def __init__(
        self,
        checkpoints: Iterable[Mapping[str, Any]],
        public_keys: Mapping[str, Ed25519PublicKey],
        retention: Iterable[Mapping[str, Any]] = (),
        scope: Scope = _every,
        expired: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.report = Report()
        for record in expired:
            self._expired(record)
        self._scope = scope
        self._retained = {_id_of(doc): retention_record(dict(doc)) for doc in retention}
        self._chains: dict[tuple[str, str], Chain] = {}
        self._reported: set[tuple[str, str]] = set()
        self._last_checkpoint: dict[str, int] = {}
        self._groups = self._signed_groups(checkpoints, public_keys)
        self.report.checkpoints = sum(1 for _ in self._groups)

    def _signed_groups(
        self, checkpoints: Iterable[Mapping[str, Any]], public_keys: Mapping[str, Ed25519PublicKey]
    ) -> list[_Group]:
        groups: dict[tuple[str, int], dict[str, tuple[str, int]]] = {}
        seen: set[str] = set()
        for event in checkpoints:
            event_id = _id_of(event)
            data = event.get("data") or {}
            listed = [h.get("stream", "") for h in data.get("heads", ())]
            if event_id in seen or not any(self._scope(event["tenant"], s) for s in listed):
                continue
            seen.add(event_id)
            if not checkpoint_signed(event, public_keys):
                known = data.get("key_id") in public_keys
                self._find(
                    Finding(
                        int(event.get("position", data.get("position", 0))),
                        "bad_signature",
                        event["tenant"],
                        event["stream"],
                        event_id,
                        "the checkpoint's signature does not verify"
                        if known
                        else f"signed by an unknown key {data.get('key_id')!r}",
                    )
                )
                continue
            heads = groups.setdefault((event["tenant"], int(data["position"])), {})
            for head in data.get("heads", ()):
                heads[head["stream"]] = (head["hash"], int(head["count"]))
        return [
            _Group(tenant, position, heads)
            for (tenant, position), heads in sorted(groups.items(), key=lambda g: g[0][1])
        ]

    def feed(self, doc: Mapping[str, Any]) -> None:
        """One archived event, in log order."""
        position = int(doc["position"])
        while self._groups and self._groups[0].position < position:
            self._check(self._groups.pop(0))
        tenant, stream = doc["tenant"], doc["stream"]
        if not self._scope(tenant, stream):
            return
        self.report.checked += 1
        chain = self._chains.setdefault((tenant, stream), Chain())
        row = dict(doc)
        expected = expected_hash(row, chain.hash, self._retained)
        if doc.get("prev_hash") != chain.hash or doc.get("hash") != expected:
            self._find(
                Finding(
                    position,
                    "broken_link",
                    tenant,
                    stream,
                    _id_of(doc),
                    f"expected prev {chain.hash[:16]}… hash {expected[:16]}…, stored prev"
                    f" {str(doc.get('prev_hash'))[:16]}… hash {str(doc.get('hash'))[:16]}…",
                )
            )
        # Walk on from what is stored: one edit is one finding, not one per later event.
        chain.hash, chain.count = str(doc.get("hash")), chain.count + 1
        if chain.changed_from is None:
            chain.changed_from = position

    def finish(self) -> Report:
        """Check the checkpoints after the last event; report chains no checkpoint signed."""
        while self._groups:
            self._check(self._groups.pop(0))
        for (tenant, stream), chain in self._chains.items():
            last = self._last_checkpoint.get(tenant, -1)
            if chain.changed_from is None:
                continue
            if chain.changed_from <= last:
                self._find(
                    Finding(
                        chain.changed_from,
                        "unsigned_chain",
                        tenant,
                        stream,
                        None,
                        f"archived before the checkpoint at position {last}, which does not"
                        " list this chain: the events were added afterwards",
                    )
                )
            elif tenant != SYSTEM_TENANT:
                self.report.unanchored[tenant] = self.report.unanchored.get(tenant, 0) + 1
        return self.report

    def _check(self, group: _Group) -> None:
        before = self._last_checkpoint.get(group.tenant, -1)
        self._last_checkpoint[group.tenant] = group.position
        for stream, (signed_hash, signed_count) in group.heads.items():
            if not self._scope(group.tenant, stream):
                continue
            chain = self._chains.setdefault((group.tenant, stream), Chain())
            if (chain.hash, chain.count) == (signed_hash, signed_count):
                chain.agreed_at = group.position
            else:
                # What changed lies after the last checkpoint that agreed (a chain never
                # agreed with: after the tenant's checkpoint before this one, which had no
                # change of it to sign).
                self._find(
                    Finding(
                        (chain.agreed_at if chain.agreed_at >= 0 else before) + 1,
                        "checkpoint_mismatch",
                        group.tenant,
                        stream,
                        None,
                        f"the checkpoint at position {group.position} signs {signed_count}"
                        f" events ending in {signed_hash[:16]}…; the archive has {chain.count}"
                        f" ending in {chain.hash[:16]}… (it last agreed at position"
                        f" {chain.agreed_at})",
                    )
                )
            chain.changed_from = None

    def _expired(self, doc: Mapping[str, Any]) -> None:
        """History's record of positions the log's retention deleted before it read them:
        each range is a finding of its own (a gap, not a broken chain)."""
        data = doc.get("data") or {}
        first, last = int(data["first_position"]), int(data["last_position"])
        self.report.findings.append(
            Finding(
                first,
                "expired",
                doc["tenant"],
                doc["stream"],
                _id_of(doc),
                f"positions {first} to {last} ({last - first + 1}) were deleted by the log"
                " stream's retention before history archived them (history was behind by"
                " more than the retention): what they held is in no archive",
            )
        )

    def _find(self, finding: Finding) -> None:
        key = (finding.tenant, finding.stream)
        if key not in self._reported:  # the first problem of a chain; the rest follow from it
            self._reported.add(key)
            self.report.findings.append(finding)


def compare_with_log(
    logged: Iterable[tuple[int, Mapping[str, Any]]], archived: Iterable[Mapping[str, Any]]
) -> list[Finding]:
    """The archive against the log over the same positions, both in log order.

    ``logged``: (position, envelope JSON) of the log's first copies (``relaydesk.dedupe``);
    ``archived``: the archive's documents at the positions the log was read for. An event
    in the wrong place is ``moved``; one the archive lacks ``missing``; one the log never
    had there ``extra``; one whose content or hash differs from the log's ``edited``.
    """
    log_rows = iter(logged)
    archive_rows = iter(archived)
    missing: dict[str, tuple[int, Mapping[str, Any]]] = {}
    extra: dict[str, Mapping[str, Any]] = {}
    found: list[Finding] = []
    entry, doc = next(log_rows, None), next(archive_rows, None)
    while entry is not None or doc is not None:
        if doc is None or (entry is not None and entry[0] < int(doc["position"])):
            assert entry is not None
            missing[str(entry[1]["id"])] = entry
            entry = next(log_rows, None)
        elif entry is None or int(doc["position"]) < entry[0]:
            extra[str(doc["_id"])] = doc
            doc = next(archive_rows, None)
        else:
            position, envelope = entry
            if envelope["id"] != doc["_id"]:
                missing[str(envelope["id"])] = entry
                extra[str(doc["_id"])] = doc
            elif _differs(doc, envelope):
                found.append(
                    Finding(
                        position,
                        "edited",
                        doc["tenant"],
                        doc["stream"],
                        str(doc["_id"]),
                        "the archived event differs from the log's",
                    )
                )
            entry, doc = next(log_rows, None), next(archive_rows, None)
    for event_id, (position, envelope) in missing.items():
        moved = extra.pop(event_id, None)
        found.append(
            Finding(
                position if moved is None else min(position, int(moved["position"])),
                "missing" if moved is None else "moved",
                envelope["tenant"],
                envelope["stream"],
                event_id,
                "on the log, not in the archive"
                if moved is None
                else f"the log has it at position {position}, the archive at {moved['position']}",
            )
        )
    found.extend(
        Finding(
            int(doc["position"]),
            "extra",
            doc["tenant"],
            doc["stream"],
            event_id,
            "in the archive, never on the log at this position",
        )
        for event_id, doc in extra.items()
    )
    return sorted(found)


def past_the_log(archived: Iterable[Mapping[str, Any]], head: int) -> list[Finding]:
    """Archived events at positions the log has not reached (``head``: its newest entry,
    asked after the archive's highest position was read): nothing was ever logged there."""
    detail = f"in the archive past the log's head at position {head}: never on the log"
    return _archived_past(archived, head, "extra", detail)


def ahead_of_history(archived: Iterable[Mapping[str, Any]], archived_up_to: int) -> list[Finding]:
    """Archived events past the position history's checkpoint says it archived up to.

    History writes a batch's events before it moves its checkpoint past them, so an event
    stays there only while its batch is written (or if history stopped in the middle of
    one: it writes the same events again when it starts); anything else put it there.
    """
    detail = (
        f"history has archived up to position {archived_up_to} only: not written by history"
        " (or by a batch it never finished; compare with the log)"
    )
    return _archived_past(archived, archived_up_to, "ahead_of_history", detail)


def _archived_past(
    archived: Iterable[Mapping[str, Any]], limit: int, kind: str, detail: str
) -> list[Finding]:
    return [
        Finding(int(doc["position"]), kind, doc["tenant"], doc["stream"], _id_of(doc), detail)
        for doc in archived
        if int(doc["position"]) > limit
    ]


def _differs(doc: Mapping[str, Any], envelope: Mapping[str, Any]) -> bool:
    """The archived copy is not the logged event (a redacted copy keeps the original's hash)."""
    if link_hash(str(doc.get("prev_hash")), dict(envelope)) != doc.get("hash"):
        return True
    return doc.get("redacted") is None and envelope_of(dict(doc)) != dict(envelope)


def _id_of(row: Mapping[str, Any]) -> str:
    """An event's id: ``_id`` in the archive, ``id`` in an envelope."""
    return str(row.get("_id") or row.get("id"))


def checkpoint_signed(
    event: Mapping[str, Any], public_keys: Mapping[str, Ed25519PublicKey]
) -> bool:
    """The checkpoint's signature holds under one of ``public_keys`` (the one it names)."""
    data = event.get("data") or {}
    return signature_holds(
        public_keys,
        data.get("key_id", ""),
        checkpoint_message(dict(event)),
        data.get("signature", ""),
    )


def nothing_signed(first: Mapping[str, Any], checked: int) -> Finding:
    """Events that no valid checkpoint signs at all, ``first`` the first of them.

    Their links prove nothing: whoever wrote them can recompute every hash. (Events after a
    tenant's last checkpoint are different: only unsigned yet, the rest is anchored.)
    """
    return Finding(
        int(first["position"]),
        "no_checkpoint",
        first["tenant"],
        first["stream"],
        None,
        f"{checked} events and no checkpoint signed by the given key: nothing can be verified"
        " against the signer (history signs a tenant's events within"
        " RELAYDESK_AUDIT_CHECKPOINT_INTERVAL_S: export again)",
    )


def is_checkpoint(doc: Mapping[str, Any]) -> bool:
    return doc.get("type") == AuditCheckpoint.TYPE


def is_expired_record(doc: Mapping[str, Any]) -> bool:
    return doc.get("type") == EventsExpired.TYPE


def is_retention_record(doc: Mapping[str, Any]) -> bool:
    return doc.get("type") == RetentionApplied.TYPE
