"""The command line against the suite's real RabbitMQ and MongoDB-protocol server: what an
operator gets from ``relaydesk <command>`` (a process of its own, tests/cli_process.py) when
the servers answer, but not as the command expects."""

import asyncio
import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from contracts.events.audit import CHECKPOINT_STREAM, AuditCheckpoint
from relaydesk.archived import ARCHIVE_COLLECTION
from relaydesk.settings import Settings
from relaydesk.store import Row, database, make_client
from tests.cli.test_command_line import one_line
from tests.cli_process import run_relaydesk
from tests.keys import secret_env
from tools.replay.verify import HISTORY
from tools.vhosts import RabbitVhosts

ROOT = Path(__file__).resolve().parents[2]
AGENT_PASSWORD = ("--password", "a-strong-pass-1")


def relaydesk(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
        **secret_env(settings),
    }
    if settings.stream_url:
        env["RELAYDESK_STREAM_URL"] = settings.stream_url
    return run_relaydesk(args, env, timeout=120, cwd=ROOT)


@contextlib.asynccontextmanager
async def store(settings: Settings) -> AsyncIterator[AsyncMongoClient[Row]]:
    client = make_client(settings.mongo_url or "")
    try:
        yield client
    finally:
        await client.close()


async def rows_in(settings: Settings, db_name: str) -> int:
    async with store(settings) as client:
        return await database(client, db_name)["kept"].count_documents({})


async def put_a_row(settings: Settings, db_name: str) -> None:
    async with store(settings) as client:
        await database(client, db_name)["kept"].insert_one({"_id": "precious"})


@pytest.fixture
async def other_db(settings: Settings) -> AsyncIterator[str]:
    """A database beside the live one; both dropped afterwards."""
    name = f"{settings.mongo_db}_other"
    yield name
    async with store(settings) as client:
        for db_name in (settings.mongo_db, name):
            await client.drop_database(db_name)


async def test_replay_refuses_a_scratch_database_it_did_not_make(
    settings: Settings, other_db: str
) -> None:
    """`--scratch-db relaydesk` (the live database) replayed into it, said "identical", and
    dropped it: the live archive, read models and positions. Any existing database is
    refused; a new one is made, and dropped afterwards."""
    for existing in (settings.mongo_db, other_db):
        await put_a_row(settings, existing)
    for existing, why in (
        (settings.mongo_db, "is the live database (RELAYDESK_MONGO_DB)"),
        (other_db, "already exists"),
    ):
        refused = await asyncio.to_thread(
            relaydesk, settings, "replay", "--projection", "history", "--scratch-db", existing
        )
        assert refused.returncode == 2 and refused.stdout == "", refused
        line = one_line(refused.stderr)
        assert line.startswith(f"relaydesk replay: --scratch-db {existing!r} {why}: "), line
        assert line.endswith("name one that does not exist"), line
        assert await rows_in(settings, existing) == 1
    fresh = f"{settings.mongo_db}_scratch"
    rebuilt = await asyncio.to_thread(
        relaydesk, settings, "replay", "--projection", "history", "--scratch-db", fresh
    )
    assert rebuilt.returncode == 0 and "identical" in rebuilt.stdout, rebuilt
    async with store(settings) as client:
        assert fresh not in await client.list_database_names()


@pytest.mark.parametrize(
    "argv",
    [
        ("audit", "verify"),
        ("replay", "--source", "stream"),
        ("replay", "--projection", "agent"),
        ("admin", "list-agents", "--tenant", "acme"),
    ],
)
async def test_a_vhost_the_broker_refuses_is_one_line_and_exit_2(
    settings: Settings, vhosts: RabbitVhosts, argv: tuple[str, ...]
) -> None:
    """RabbitMQ closes the connection in place of opening the vhost; aiormq reported that as
    InvalidFrameError "Expected one of ['Connection.OpenOk']…", a traceback and exit 1."""
    async with store(settings) as client:  # history archived up to 0: verify reads the log
        await database(client, settings.mongo_db)["checkpoints"].insert_one(
            {"_id": HISTORY, "position": 0}
        )
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    nowhere = settings.model_copy(
        update={"amqp_url": vhosts.url_for(missing), "stream_url": vhosts.stream_url_for(missing)}
    )
    refused = await asyncio.to_thread(relaydesk, nowhere, *argv)
    assert refused.returncode == 2 and refused.stdout == "", refused
    where = " ".join(("relaydesk", *argv[: 1 if argv[0] == "replay" else 2]))
    assert one_line(refused.stderr) == (
        f"{where}: RabbitMQ refused the vhost {missing!r} to the user 'guest': it does not"
        " exist, or the user may not use it (RELAYDESK_AMQP_URL)"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("create-tenant", "--tenant", "bad id!", "--name", "X"),
        ("create-tenant", "--tenant", "", "--name", "X"),
        ("list-agents", "--tenant", "bad!"),
        ("create-agent", "--tenant", "bad!", "--email", "a@b.c", "--name", "A", *AGENT_PASSWORD),
    ],
)
async def test_an_invalid_tenant_id_is_one_line_saying_what_one_may_contain(
    settings: Settings, argv: tuple[str, ...]
) -> None:
    """On a broker that answers, the command or query carrying it was refused by its own
    model: a pydantic ValidationError traceback and exit 1."""
    refused = await asyncio.to_thread(relaydesk, settings, "admin", *argv)
    assert refused.returncode == 2 and refused.stdout == "", refused
    tenant = argv[argv.index("--tenant") + 1]
    assert one_line(refused.stderr) == (
        f"relaydesk admin {argv[0]}: Invalid value for '--tenant': {tenant!r}: a tenant id is"
        " 1 to 128 ASCII letters, digits or the characters _ . : - @"
        f" (see `relaydesk admin {argv[0]} --help`)"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("replay", "--tenant", "bad!"),
        ("export", "--tenant", "bad id", "--output", "x.jsonl"),
        ("audit", "verify", "--tenant", "bad!"),
    ],
)
async def test_the_audit_commands_refuse_an_invalid_tenant_id_too(
    settings: Settings, argv: tuple[str, ...]
) -> None:
    """They took it and matched nothing (replay's "no match", verify's "no tenant")."""
    refused = await asyncio.to_thread(relaydesk, settings, *argv)
    assert refused.returncode == 2 and refused.stdout == "", refused
    tenant = argv[argv.index("--tenant") + 1]
    command = " ".join(argv[: 2 if argv[0] == "audit" else 1])
    assert one_line(refused.stderr) == (
        f"relaydesk {command}: Invalid value for '--tenant': {tenant!r}: a tenant id is"
        " 1 to 128 ASCII letters, digits or the characters _ . : - @"
        f" (see `relaydesk {command} --help`)"
    )


def archived(position: int, tenant: str, stream: str, type_name: str) -> dict[str, object]:
    """An archive row, with what an export reads of it."""
    return {
        "_id": f"e{position}",
        "position": position,
        "type": type_name,
        "tenant": tenant,
        "stream": stream,
    }


@pytest.mark.parametrize(
    ("conversation", "matched"), [("c1", True), ("doesnotexist", False), ("g1", False)]
)
async def test_export_of_a_conversation_the_tenant_does_not_have_matches_nothing(
    settings: Settings, tmp_path: Path, conversation: str, matched: bool
) -> None:
    """An unknown conversation, or another tenant's (g1 is globex's), wrote the tenant's
    checkpoints on their own and exited 0: as an export of that conversation."""
    async with store(settings) as client:
        await database(client, settings.mongo_db)[ARCHIVE_COLLECTION].insert_many(
            [
                archived(1, "acme", "conv:c1", "conversation.requested"),
                archived(2, "acme", CHECKPOINT_STREAM, AuditCheckpoint.TYPE),
                archived(3, "globex", "conv:g1", "conversation.requested"),
            ]
        )
    output = tmp_path / "export.jsonl"
    argv = ("export", "--tenant", "acme", "--conversation", conversation, "--output", str(output))
    done = await asyncio.to_thread(relaydesk, settings, *argv)
    if matched:
        assert done.returncode == 0, done
        header, *lines = output.read_text().splitlines()
        assert [json.loads(line)["event"]["id"] for line in lines] == ["e1", "e2"], header
        return
    assert done.returncode == 1 and done.stdout == "", done
    assert one_line(done.stderr) == (
        f"[export] no archived event of conversation {conversation!r} of tenant 'acme'"
    )
    assert not output.exists()  # nothing to mistake for an export of it


@pytest.mark.parametrize("what_if", [(), ("--what-if", "max_chats_default=2")])
async def test_replay_says_why_a_range_gives_nothing(
    settings: Settings, what_if: tuple[str, ...]
) -> None:
    """Both exited 1 saying nothing: a range ending before it begins (now a usage error), and
    a what-if range without the tenant's events (still exit 1: a selection matching none)."""
    backwards = ("--since", "2026-03-02", "--until", "2026-03-01")
    refused = await asyncio.to_thread(
        relaydesk, settings, "replay", "--tenant", "acme", *backwards, *what_if
    )
    assert refused.returncode == 2 and refused.stdout == "", refused
    assert one_line(refused.stderr) == (
        "relaydesk replay: --since 2026-03-02T00:00:00+00:00 is after"
        " --until 2026-03-01T00:00:00+00:00 (see `relaydesk replay --help`)"
    )
    if not what_if:
        return
    empty = ("--since", "2026-03-01", "--until", "2026-03-02")
    nothing = await asyncio.to_thread(
        relaydesk, settings, "replay", "--tenant", "acme", *empty, *what_if
    )
    assert nothing.returncode == 1 and nothing.stdout == "", nothing
    assert nothing.stderr.splitlines()[-1] == (
        "[replay] what-if: no event of tenant 'acme' in 2026-03-01T00:00:00+00:00 .."
        " 2026-03-02T00:00:00+00:00: nothing to decide again"
    )
