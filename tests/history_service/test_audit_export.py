"""`relaydesk audit verify` finds tampering; `export` + `import` rebuild the same read models."""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from contracts.events.conversation import ConversationRated
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually, owner_session
from tests.history_service.flows import served_conversation
from tests.keys import secret_env
from tests.system import running_system
from tools.replay.export_file import read_export


def command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
        **secret_env(settings),  # the audit signing key: verify checks the signed checkpoints
    }
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def rated(http: httpx.AsyncClient, auth: dict[str, str], conversation_id: str) -> dict | None:
    response = await http.get(f"/api/conversations/{conversation_id}/transcript", headers=auth)
    if response.status_code != 200:
        return None
    found = response.json()
    # History writes a batch's read models first and its archive second: a transcript read in
    # between shows the rating without the events of the same batch. It is whole once the
    # rating's own event is archived, and with it everything before it on the log.
    archived = {event["type"] for event in found["events"]}
    return (
        found
        if found["conversation"].get("rating") and ConversationRated.TYPE in archived
        else None
    )


async def test_audit_verify_reports_the_first_tampered_event(settings: Settings) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        _, conversation_id = await served_conversation(system, http, owner)
        transcript = await eventually(
            lambda: rated(http, owner, conversation_id), what="the archived conversation"
        )

        intact = await asyncio.to_thread(
            command, system.settings, "audit", "verify", "--tenant", "rep"
        )
        assert intact.returncode == 0 and "intact" in intact.stdout, intact.stdout + intact.stderr

        victim = next(e for e in transcript["events"] if e["type"] == "message.sent")
        client = make_client(system.settings.mongo_url or "")
        try:
            await database(client, system.settings.mongo_db)["events"].update_one(
                {"_id": victim["id"]}, {"$set": {"data.body": "I never said that"}}
            )
        finally:
            await client.close()
        broken = await asyncio.to_thread(
            command,
            system.settings,
            "audit",
            "verify",
            "--tenant",
            "rep",
            "--conversation",
            conversation_id,
        )
        assert broken.returncode == 1
        assert (
            f"at position {victim['position']}" in broken.stdout and victim["id"] in broken.stdout
        )
        timeline = (
            await http.get(f"/api/audit/conversations/{conversation_id}/timeline", headers=owner)
        ).json()
        assert timeline["chain_ok"] is False and timeline["broken_at"] == victim["position"]
        usage = await asyncio.to_thread(
            command, system.settings, "audit", "verify", "--conversation", conversation_id
        )
        assert usage.returncode == 2 and "--tenant" in usage.stderr


async def test_export_then_import_into_a_fresh_system_yields_the_same_read_models(
    settings: Settings, vhosts, tmp_path: Path
) -> None:
    exported = tmp_path / "rep.jsonl"
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        _, conversation_id = await served_conversation(system, http, owner)
        original = await eventually(
            lambda: rated(http, owner, conversation_id), what="the archived conversation"
        )
        done = await asyncio.to_thread(
            command, system.settings, "export", "--tenant", "rep", "--output", str(exported)
        )
        assert done.returncode == 0, done.stderr
        messages = (
            await http.get(f"/api/conversations/{conversation_id}/messages", headers=owner)
        ).json()
    records = read_export(exported).records
    conversation_lines = [r for r in records if r["stream"] == f"conv:{conversation_id}"]
    assert [line["_id"] for line in conversation_lines] == [
        event["id"] for event in original["events"]
    ]

    vhost = vhosts.create()
    fresh_settings = settings.model_copy(
        update={"amqp_url": vhosts.url_for(vhost), "mongo_db": f"t_{uuid.uuid4().hex[:12]}"}
    )
    try:
        async with (
            running_system(fresh_settings) as fresh,
            httpx.AsyncClient(base_url=fresh.gateway.base_url) as http,
        ):
            imported = await asyncio.to_thread(
                command, fresh.settings, "import", "--input", str(exported)
            )
            assert imported.returncode == 0, imported.stderr
            # The accounts came along with the log: the same owner signs in on the fresh system.
            login = await http.post(
                "/api/auth/login",
                json={"tenant": "rep", "email": "boss@rep.test", "password": "correct horse"},
            )
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            copy = await eventually(
                lambda: rated(http, auth, conversation_id), what="the imported conversation"
            )
            for field in (
                "status",
                "agent_id",
                "message_count",
                "rating",
                "channel",
                "visitor",
                "created_at",
                "closed_at",
            ):
                assert copy["conversation"][field] == original["conversation"][field], field
            assert [e["id"] for e in copy["events"]] == [e["id"] for e in original["events"]]
            copied = (
                await http.get(f"/api/conversations/{conversation_id}/messages", headers=auth)
            ).json()
            assert [m["event"] for m in copied] == [
                m["event"] for m in messages
            ]  # positions are the new log's

        bad = tmp_path / "bad.jsonl"
        header_and_first = exported.read_text().splitlines()[:2]
        bad.write_text("\n".join(header_and_first) + '\n{"type": "nonsense"}\n')
        refused = await asyncio.to_thread(command, fresh_settings, "import", "--input", str(bad))
        assert (
            refused.returncode == 2
            and "line 3" in refused.stderr
            and "nothing imported" in refused.stderr
        )
    finally:
        vhosts.delete(vhost)
