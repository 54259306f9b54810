"""Tampering with the archive, or with an export of it, is reported with the first bad position.

One system and one tenant are built once for the module: two conversations (one with a
resent message: the same event twice on the log), closed and rated, archived and signed by
history's checkpoints. Each test mutates a copy of what was archived (or of the export
file) and runs the pure verification on it: against the signed checkpoints alone (the
range the stream no longer holds) and against the log as well (the range it still holds).
"""

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.events.audit import AuditCheckpoint
from contracts.events.conversation import ConversationRated
from history_service.hash_chain import link_hash
from history_service.verification import ArchiveVerifier, Finding, compare_with_log
from relaydesk.archived import envelope_of
from relaydesk.attachments import AttachmentStore
from relaydesk.keys import key_ring
from relaydesk.settings import Settings
from relaydesk.signing import Signer, keys_by_id, private_key, public_text
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually, new_agent, owner_session
from tests.gateway.test_attachments import PNG, upload
from tests.gateway.wsclient import Client
from tests.history_service.flows import served_conversation
from tests.servers import MongoServer, RabbitVhosts, stream_override
from tests.shared_system import shared_system
from tools import cli
from tools.commands.audit import print_verdict
from tools.replay import projections
from tools.replay.export_file import read_export
from tools.replay.sources import Progress, Slice, from_archive, from_stream, head_of_log
from tools.replay.verify import LogRead, read_log, verify_file, verify_online

pytestmark = pytest.mark.asyncio(loop_scope="module")
TENANT = "rep"
Doc = dict[str, Any]
ONE_AT_A_TIME = {"conversations": 1, "peak_concurrent": 1}


@dataclass
class Archived:
    settings: Settings
    docs: list[Doc]  # the tenant's archive, log order
    log: LogRead  # the log's first copies up to what history archived
    keys: dict[str, Ed25519PublicKey]
    conversation: str  # closed and rated
    export: Path
    resent_twice: bool  # the log holds the resent message twice


async def resent_conversation(system: Any, http: httpx.AsyncClient, owner: dict[str, str]) -> str:
    """A conversation whose customer resends a message after a lost ack (same key)."""
    _, auth = await new_agent(http, owner, TENANT, "bob")
    agent = await Client.connect(system.gateway.ws_url, auth["Authorization"].split()[1])
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token(TENANT, "v-2"))
    conversation_id = (await customer.op("start"))["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    for _ in range(2):
        sent = await customer.op("send", key="resent", conversation_id=conversation_id, body="hi")
        assert sent["t"] == "ack"
    visitor = system.visitor_token(TENANT, "v-2")
    assert (await upload(http, visitor, conversation_id, "file-1", PNG)).status_code == 201
    assert (await agent.op("close", conversation_id=conversation_id))["t"] == "ack"
    await agent.close()
    await customer.close()
    return conversation_id


async def archive_of(settings: Settings) -> list[Doc]:
    client = make_client(settings.mongo_url or "")
    try:
        rows = database(client, settings.mongo_db)["events"].find({"tenant": TENANT})
        return [doc async for doc in rows.sort("position", 1)]
    finally:
        await client.close()


def signed_to_the_end(docs: list[Doc], conversation: str) -> bool:
    """The rating is archived and a checkpoint covers every event before it."""
    rated = [d for d in docs if d["type"] == ConversationRated.TYPE]
    covered = [d["data"]["position"] for d in docs if d["type"] == AuditCheckpoint.TYPE]
    last = max((d["position"] for d in docs if d["type"] != AuditCheckpoint.TYPE), default=0)
    return bool(rated) and bool(covered) and max(covered) >= last


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def archived(
    vhosts: RabbitVhosts, mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Archived]:
    async with (
        shared_system(vhosts, mongo_server, audit_checkpoint_interval_s=0.2) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, TENANT)
        _, conversation = await served_conversation(system, http, owner)
        resent = await resent_conversation(system, http, owner)
        settings = system.settings

        async def signed() -> list[Doc] | None:
            docs = await archive_of(settings)
            return docs if signed_to_the_end(docs, conversation) else None

        await eventually(signed, what="the rating archived and signed")
        client = make_client(settings.mongo_url or "")
        try:
            up_to = (
                await database(client, settings.mongo_db)["checkpoints"].find_one(
                    {"_id": "history"}
                )
            )["position"]
        finally:
            await client.close()
        docs = [d for d in await archive_of(settings) if d["position"] <= up_to]
        log = await read_log(settings, up_to, TENANT)
        export = tmp_path_factory.mktemp("export") / "rep.jsonl"
        exported = ["--tenant", TENANT, "--output", str(export)]
        assert await asyncio.to_thread(cli.main, ["export", *exported], settings) == 0
        keys = Signer(key_ring(settings, "audit_signing_key")).public_keys
        message = next(
            d for d in docs if d["stream"] == f"conv:{resent}" and d["type"] == "message.sent"
        )
        yield Archived(
            settings, docs, log, keys, conversation, export, message["_id"] in log.second_copies
        )


# --- helpers: mutate a copy, verify it -------------------------------------------------------


def rehash_from(docs: list[Doc], stream: str, position: int) -> None:
    """Recompute the links of ``stream`` from ``position`` on, as a forger would."""
    prev = None
    for doc in docs:
        if doc["stream"] != stream:
            continue
        if doc["position"] >= position and prev is not None:
            doc["prev_hash"] = prev
            doc["hash"] = link_hash(prev, envelope_of(doc))
        prev = doc["hash"]


def verify(
    docs: list[Doc], keys: dict[str, Ed25519PublicKey], log: LogRead | None = None
) -> list[Finding]:
    """The findings on ``docs``: against the checkpoints they carry, and the log if given."""
    verifier = ArchiveVerifier(
        [d for d in docs if d["type"] == AuditCheckpoint.TYPE],
        keys,
        scope=lambda tenant, stream: tenant == TENANT,
    )
    for doc in sorted(docs, key=lambda d: d["position"]):
        verifier.feed(doc)
    found = list(verifier.finish().findings)
    if log is not None and log.first is not None:
        first = log.first
        in_range = sorted((d for d in docs if d["position"] >= first), key=lambda d: d["position"])
        found += compare_with_log(log.events, in_range)
    return sorted(found)


def chain(archived: Archived, docs: list[Doc] | None = None) -> list[Doc]:
    stream = f"conv:{archived.conversation}"
    return [d for d in (docs or archived.docs) if d["stream"] == stream]


Mutation = Callable[[list[Doc]], int]  # mutates the copy, returns the first position it broke


def tampered(archived: Archived, mutate: Mutation) -> tuple[list[Doc], int]:
    docs = copy.deepcopy(archived.docs)
    return docs, mutate(docs)


def delete_tail(count: int) -> Callable[[Archived], Mutation]:
    def mutation(archived: Archived) -> Mutation:
        def apply(docs: list[Doc]) -> int:
            gone = chain(archived, docs)[-count:]
            for doc in gone:
                docs.remove(doc)
            return gone[0]["position"]

        return apply

    return mutation


def rehashed(change: Callable[[list[Doc], Doc], None]) -> Callable[[Archived], Mutation]:
    """``change`` applied to the conversation's first message, later hashes recomputed."""

    def mutation(archived: Archived) -> Mutation:
        def apply(docs: list[Doc]) -> int:
            victim = next(d for d in chain(archived, docs) if d["type"] == "message.sent")
            change(docs, victim)
            rehash_from(docs, victim["stream"], victim["position"])
            return int(victim["position"])

        return apply

    return mutation


def edit_body(docs: list[Doc], victim: Doc) -> None:
    victim["data"]["body"] = "I never said that"


def insert_and_rehash(archived: Archived) -> Mutation:
    def apply(docs: list[Doc]) -> int:
        model = next(d for d in chain(archived, docs) if d["type"] == "message.sent")
        taken = {d["position"] for d in docs}
        position = next(p for p in range(model["position"] + 1, 10**9) if p not in taken)
        forged = {**copy.deepcopy(model), "_id": uuid.uuid4().hex, "position": position}
        forged["data"]["body"] = "a message nobody sent"
        docs.append(forged)
        docs.sort(key=lambda d: d["position"])
        rehash_from(docs, model["stream"], position)
        return position

    return apply


def swap_and_rehash(archived: Archived) -> Mutation:
    def apply(docs: list[Doc]) -> int:
        first, second = chain(archived, docs)[1:3]
        first["position"], second["position"] = second["position"], first["position"]
        docs.sort(key=lambda d: d["position"])
        rehash_from(docs, first["stream"], second["position"])
        return int(second["position"])

    return apply


def forge_conversation(archived: Archived) -> Mutation:
    """A whole conversation added afterwards, consistently hashed, before the last checkpoint."""

    def apply(docs: list[Doc]) -> int:
        model = chain(archived, docs)[0]
        taken = {d["position"] for d in docs}
        position = next(p for p in range(model["position"] + 1, 10**9) if p not in taken)
        forged = {**copy.deepcopy(model), "_id": uuid.uuid4().hex, "position": position}
        forged["stream"] = "conv:forged"
        forged["prev_hash"] = "0" * 64
        forged["hash"] = link_hash("0" * 64, envelope_of(forged))
        docs.append(forged)
        docs.sort(key=lambda d: d["position"])
        return position

    return apply


REWRITES = {
    "the last event deleted": delete_tail(1),
    "the last five deleted (closed + rating)": delete_tail(5),
    "a body edited, later hashes recomputed": rehashed(edit_body),
    "an event deleted, later hashes recomputed": rehashed(lambda docs, victim: docs.remove(victim)),
    "an event inserted, later hashes recomputed": insert_and_rehash,
    "two positions swapped, hashes recomputed": swap_and_rehash,
    "a conversation added": forge_conversation,
}


# --- the tests -------------------------------------------------------------------------------


async def test_the_untouched_archive_verifies_against_its_checkpoints_and_the_log(
    archived: Archived,
) -> None:
    assert verify(archived.docs, archived.keys, archived.log) == []
    assert any(d["type"] == AuditCheckpoint.TYPE for d in archived.docs)
    verdict = await verify_online(archived.settings, TENANT, None, archived.keys)
    assert verdict.findings == [] and verdict.log_range is not None
    assert verdict.report.checked == len(archived.docs)


@pytest.mark.parametrize("how", list(REWRITES))
async def test_a_rewrite_with_consistent_hashes_is_caught_by_the_signed_checkpoints(
    archived: Archived, how: str
) -> None:
    docs, broken_at = tampered(archived, REWRITES[how](archived))
    found = verify(docs, archived.keys)
    assert found, f"{how}: reported intact"
    # Checkpoints alone narrow it to the events after the last checkpoint that agreed.
    assert found[0].position <= broken_at, (how, found[0].line())
    assert found[0].kind in ("checkpoint_mismatch", "unsigned_chain"), found[0].line()


@pytest.mark.parametrize("how", list(REWRITES))
async def test_against_the_log_the_first_bad_position_is_exact(
    archived: Archived, how: str
) -> None:
    docs, broken_at = tampered(archived, REWRITES[how](archived))
    from_log = [f for f in verify(docs, archived.keys, archived.log) if f.kind in LOG_KINDS]
    assert from_log and from_log[0].position == broken_at, (how, [f.line() for f in from_log])


LOG_KINDS = ("missing", "extra", "moved", "edited")


async def test_an_edit_left_unhashed_breaks_its_link_at_its_position(archived: Archived) -> None:
    docs = copy.deepcopy(archived.docs)
    victim = next(d for d in chain(archived, docs) if d["type"] == "message.sent")
    victim["data"]["body"] = "I never said that"
    found = verify(docs, archived.keys)
    assert [(f.kind, f.position, f.event_id) for f in found] == [
        ("broken_link", victim["position"], victim["_id"])
    ]


async def test_a_checkpoint_altered_or_signed_by_another_key_is_refused(
    archived: Archived,
) -> None:
    docs = copy.deepcopy(archived.docs)
    checkpoint = next(d for d in docs if d["type"] == AuditCheckpoint.TYPE)
    checkpoint["data"]["heads"][0]["count"] += 1
    assert "bad_signature" in {f.kind for f in verify(docs, archived.keys)}
    stranger = keys_by_id([private_key("someone else's key" * 3).public_key()])
    found = verify(archived.docs, stranger)
    assert found and all(f.kind == "bad_signature" for f in found)
    assert "unknown key" in found[0].detail


@asynccontextmanager
async def scratch_archive(
    archived: Archived, docs: list[Doc], *, history_checkpoint: bool = True
) -> AsyncIterator[Settings]:
    """The settings of a scratch database holding ``docs`` as its archive, with history's
    checkpoint copied from the system's (the live system's log stays the log)."""
    scratch = f"{archived.settings.mongo_db}_tampered"
    client = make_client(archived.settings.mongo_url or "")
    try:
        db = database(client, scratch)
        await db["events"].insert_many(docs)
        source = database(client, archived.settings.mongo_db)["checkpoints"]
        if history_checkpoint:
            await db["checkpoints"].insert_one(await source.find_one({"_id": "history"}))
        yield archived.settings.model_copy(update={"mongo_db": scratch})
    finally:
        await client.drop_database(scratch)
        await client.close()


async def test_deleting_a_tail_from_the_live_archive_is_reported_by_verify(
    archived: Archived,
) -> None:
    """Online: a copy of the tenant's archive in a scratch database, its rating deleted."""
    rating = chain(archived)[-1]
    kept = [d for d in archived.docs if d["_id"] != rating["_id"]]
    async with scratch_archive(archived, kept) as settings:
        verdict = await verify_online(settings, TENANT, None, archived.keys)
    first = verdict.findings[0]
    assert (first.kind, first.position, first.event_id) == (
        "missing",
        rating["position"],
        rating["_id"],
    )


async def test_without_historys_checkpoint_the_archive_is_still_compared_with_the_log(
    archived: Archived, capsys: pytest.CaptureFixture[str]
) -> None:
    """History's stored position removed as well as the rating: the log still finds it."""
    rating = chain(archived)[-1]
    kept = [d for d in archived.docs if d["_id"] != rating["_id"]]
    async with scratch_archive(archived, kept, history_checkpoint=False) as settings:
        verdict = await verify_online(settings, TENANT, None, archived.keys)
        assert await asyncio.to_thread(cli.main, ["audit", "verify"], settings) == 1
    first = verdict.findings[0]
    assert (first.kind, first.position) == ("missing", rating["position"])
    assert verdict.log_range is not None
    out = capsys.readouterr().out
    assert "note: history's checkpoint is missing" in out and "missing at position" in out


@pytest.mark.parametrize(
    ("selection", "code", "said"),
    [
        pytest.param(["--tenant", "nosuch"], 2, "no tenant 'nosuch'", id="unknown tenant"),
        pytest.param(
            ["--tenant", TENANT.upper()], 2, f"no tenant {TENANT.upper()!r}", id="tenant typo"
        ),
        pytest.param(
            ["--tenant", "nosuch", "--no-log"], 2, "no tenant 'nosuch'", id="unknown, no log"
        ),
        pytest.param(
            ["--tenant", TENANT, "--conversation", "nosuch"],
            1,
            "no match: conversation nosuch",
            id="unknown conversation",
        ),
    ],
)
async def test_a_selection_that_matches_nothing_is_not_reported_intact(
    archived: Archived,
    capsys: pytest.CaptureFixture[str],
    selection: list[str],
    code: int,
    said: str,
) -> None:
    assert (
        await asyncio.to_thread(cli.main, ["audit", "verify", *selection], archived.settings)
        == code
    )
    captured = capsys.readouterr()
    assert "intact" not in captured.out
    assert said in (captured.err if code == 2 else captured.out)


FAR_PAST_THE_HEAD = 900_000_000


def appended_far_ahead(archived: Archived) -> Doc:
    """A message appended to the rated conversation's chain, its links right, at a position
    the log will not reach for years: as a forger with write access to MongoDB adds one."""
    last = chain(archived)[-1]
    model = next(d for d in chain(archived) if d["type"] == "message.sent")
    forged = {
        **copy.deepcopy(model),
        "_id": uuid.uuid4().hex,
        "position": FAR_PAST_THE_HEAD,
        "prev_hash": last["hash"],
    }
    forged["data"]["body"] = "FORGED: refund approved"
    forged["hash"] = link_hash(last["hash"], envelope_of(forged))
    return forged


@pytest.mark.parametrize(
    ("with_log", "one_conversation", "kind"),
    [
        (True, False, "extra"),
        (True, True, "extra"),
        (False, False, "ahead_of_history"),
        (False, True, "ahead_of_history"),
    ],
)
async def test_an_event_archived_past_the_logs_head_is_reported_by_verify(
    archived: Archived, with_log: bool, one_conversation: bool, kind: str
) -> None:
    """Past every signed checkpoint its chain is only unsigned yet; but no event is archived
    where the log has none, nor (but for a batch being written) past history's checkpoint."""
    forged = appended_far_ahead(archived)
    conversation = archived.conversation if one_conversation else None
    async with scratch_archive(archived, [*archived.docs, forged]) as settings:
        verdict = await verify_online(
            settings, TENANT, conversation, archived.keys, with_log=with_log
        )
    assert [(f.kind, f.position, f.event_id) for f in verdict.findings] == [
        (kind, FAR_PAST_THE_HEAD, forged["_id"])
    ]


async def test_an_export_verifies_offline_and_its_tampered_copies_do_not(
    archived: Archived, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = public_text(next(iter(archived.keys.values())))
    export = read_export(archived.export)
    assert export.verifiable and verify_file(export, archived.keys).findings == []
    lines = archived.export.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    rated = max(
        i for i, r in enumerate(records) if r.get("event", {}).get("type") == "conversation.rated"
    )
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:rated] + lines[rated + 1 :]) + "\n")
    # No system: nothing but the file and the public key (no database, no broker, no secret).
    offline = Settings(mongo_url=None, amqp_url="amqp://nobody@192.0.2.1:1/")
    args = ["verify", "--public-key", key, "--file"]
    assert await asyncio.to_thread(cli.main, ["audit", *args, str(archived.export)], offline) == 0
    assert "intact" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["audit", *args, str(cut)], offline) == 1
    out = capsys.readouterr().out
    assert "checkpoint_mismatch" in out and f"conv:{archived.conversation}" in out


@pytest.mark.parametrize("how", ["a body edited, later hashes recomputed", "a conversation added"])
async def test_a_tampered_export_is_reported(archived: Archived, how: str, tmp_path: Path) -> None:
    export = read_export(archived.export)
    records = copy.deepcopy(export.records)
    broken_at = REWRITES[how](archived)(records)
    export.records = records
    found = verify_file(export, archived.keys).findings
    assert found and min(found).position <= broken_at


async def test_an_export_without_a_signed_checkpoint_is_not_intact(
    archived: Archived, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body edited, every later hash recomputed and every checkpoint line dropped: the links
    alone prove nothing (whoever edits the file recomputes them), so nothing is verified."""
    export = read_export(archived.export)
    records = copy.deepcopy(export.records)
    REWRITES["a body edited, later hashes recomputed"](archived)(records)
    export.records = [r for r in records if r["type"] != AuditCheckpoint.TYPE]
    verdict = verify_file(export, archived.keys)
    assert [f.kind for f in verdict.findings] == ["no_checkpoint"], verdict.findings
    assert print_verdict(verdict) == 1
    assert "BROKEN: no_checkpoint" in capsys.readouterr().out


async def test_an_export_whose_last_events_are_not_signed_yet_verifies_with_a_note(
    archived: Archived,
) -> None:
    """An export made before history signed its newest events (cut here before the last
    checkpoint of the rated conversation) is honest: its tail is only unsigned yet."""
    export = read_export(archived.export)
    stream = f"conv:{archived.conversation}"
    last_signing = max(
        r["position"]
        for r in export.records
        if r["type"] == AuditCheckpoint.TYPE
        and any(head["stream"] == stream for head in r["data"]["heads"])
    )
    export.records = [r for r in export.records if r["position"] < last_signing]
    verdict = verify_file(export, archived.keys)
    assert verdict.findings == [] and verdict.report.checkpoints > 0
    assert verdict.report.unanchored.get(TENANT, 0) >= 1


async def test_replay_from_either_source_equals_every_live_projection(archived: Archived) -> None:
    """The log holds the resent message twice; live services and replay count it once."""
    settings = archived.settings
    assert archived.resent_twice
    everything = Slice()

    def events(source: str) -> Any:
        progress = Progress(source)
        if source == "stream":
            return from_stream(settings.amqp_url, everything, progress, idle_timeout=1.0)
        return from_archive(settings.mongo_url or "", settings.mongo_db, everything, progress)

    runs = []
    for source in ("stream", "archive"):
        scratch = f"{settings.mongo_db}_replay_{source}"
        runs += [
            projections.history(settings, events(source), scratch),
            projections.routing(settings, events(source)),
            projections.billing(settings, events(source)),
        ]
    results = await asyncio.gather(*runs)
    assert all(not r.moved_on for r in results)  # a system at rest
    assert [r.differences for r in results] == [[]] * 6, results


@asynccontextmanager
async def import_target(archived: Archived, vhosts: RabbitVhosts) -> AsyncIterator[Settings]:
    """The settings of a fresh system to import into: a vhost and a database of its own."""
    vhost = vhosts.create()
    target = archived.settings.model_copy(
        update={
            "amqp_url": vhosts.url_for(vhost),
            "mongo_db": f"t_{uuid.uuid4().hex[:12]}",
            **stream_override(vhosts, vhost),
        }
    )
    client = make_client(target.mongo_url or "")
    try:
        yield target
    finally:
        await client.drop_database(target.mongo_db)
        await client.close()
        vhosts.delete(vhost)


async def test_attachment_files_travel_with_their_hashes_checked_on_import(
    archived: Archived, vhosts: RabbitVhosts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (attachment,) = read_export(archived.export).attachments
    assert attachment.content == PNG and attachment.tenant == TENANT
    lines = archived.export.read_text().splitlines()
    swapped = [
        json.dumps({"attachment": {**json.loads(line)["attachment"], "content": "AAAA"}})
        if line.startswith('{"attachment"')
        else line
        for line in lines
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(swapped) + "\n")
    async with import_target(archived, vhosts) as target:
        refused = await asyncio.to_thread(cli.main, ["import", "--input", str(bad)], target)
        err = capsys.readouterr().err
        assert refused == 2 and "nothing imported" in err and "sha256" in err
        done = ["--input", str(archived.export)]
        assert await asyncio.to_thread(cli.main, ["import", *done], target) == 0
        # the file is on the target system before its event: its link will not answer 404
        client = make_client(target.mongo_url or "")
        try:
            store = AttachmentStore(database(client, target.mongo_db))
            stored = await store.find(attachment.id)
            content = await store.read(attachment.id)
        finally:
            await client.close()
        assert stored is not None and stored.tenant == TENANT
        assert stored.conversation_id == attachment.conversation_id
        assert content == PNG


async def test_an_export_whose_hash_chain_is_broken_is_not_imported(
    archived: Archived, vhosts: RabbitVhosts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body edited in the file, its hash left alone: the target would sign the forgery into
    an archive of its own, where every chain links."""
    records = [json.loads(line) for line in archived.export.read_text().splitlines()]
    victim = next(
        r
        for r in records
        if r.get("event", {}).get("type") == "message.sent"
        and r["event"]["stream"] == f"conv:{archived.conversation}"
    )
    victim["event"]["data"]["body"] = "I never said that"
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(r) + "\n" for r in records))
    async with import_target(archived, vhosts) as target:
        refused = await asyncio.to_thread(cli.main, ["import", "--input", str(edited)], target)
        err = capsys.readouterr().err
        assert refused == 2 and "nothing imported" in err, err
        assert f"hash chain broken at position {victim['position']}" in err, err
        assert await head_of_log(target.amqp_url, target.stream_url) is None  # nothing published


async def test_what_if_routing_reports_the_tenants_range_beside_what_happened(
    archived: Archived, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chat limit of 1 on two chats that never overlapped: the same waits and load."""
    events = [envelope_of(d) for d in archived.docs if d["type"] != AuditCheckpoint.TYPE]
    since, until = events[0]["occurred_at"], events[-1]["occurred_at"]
    requested = {
        e["data"]["conversation_id"]: datetime.fromisoformat(e["occurred_at"])
        for e in events
        if e["type"] == "conversation.requested"
    }
    accepted = [e for e in events if e["type"] == "conversation.accepted"]
    waits = sorted(
        round(
            (
                datetime.fromisoformat(e["occurred_at"]) - requested[e["data"]["conversation_id"]]
            ).total_seconds(),
            3,
        )
        for e in accepted
    )
    argv = ["replay", "--tenant", TENANT, "--since", since, "--until", until, "--json"]
    argv += ["--what-if", "max_chats_default=1"]
    assert await asyncio.to_thread(cli.main, argv, archived.settings) == 0
    # stdout also holds the log lines of the system running in this process: the report is
    # the one JSON line.
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    report = json.loads(line)
    assert report["changes"] == {"max_chats_default": 1}
    actual = report["actual"]
    assert (actual["requests"], actual["accepted"], actual["missed"]) == (2, 2, 0)
    assert (actual["wait_s"]["p50"], actual["wait_s"]["max"]) == (waits[0], waits[-1])
    assert actual["agents"] == {e["data"]["agent_id"]: ONE_AT_A_TIME for e in accepted}
    assert report["what_if"] == actual
