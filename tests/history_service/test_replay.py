"""`relaydesk replay` over the real log: timelines, and projections rebuilt and compared."""

import asyncio
import json
import os
import subprocess

import httpx

from contracts.events.conversation import ConversationRated
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually, owner_session
from tests.cli_process import run_relaydesk
from tests.history_service.flows import served_conversation
from tests.system import running_system


def replay(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
    }
    return run_relaydesk(["replay", *args], env, timeout=120)


async def test_replay_prints_a_conversation_and_rebuilt_projections_match_until_tampered(
    settings: Settings,
) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        _, conversation_id = await served_conversation(system, http, owner)

        async def archived_and_rated() -> bool:
            answer = await http.get(
                f"/api/conversations/{conversation_id}/transcript", headers=owner
            )
            if answer.status_code == 404:
                return False  # history has not archived the conversation yet
            answer.raise_for_status()
            # The read models are written before the archive: wait for the rated event itself.
            found = answer.json()
            return found["conversation"].get("rating") is not None and any(
                event["type"] == ConversationRated.TYPE for event in found["events"]
            )

        await eventually(archived_and_rated, what="the rating in the read model and the archive")

        timeline = await asyncio.to_thread(
            replay, system.settings, "--tenant", "rep", "--conversation", conversation_id
        )
        assert timeline.returncode == 0, timeline.stderr
        kinds = [line.split()[3] for line in timeline.stdout.splitlines()]
        assert (
            kinds[0] == "conversation.requested"
            and "conversation.accepted" in kinds
            and "conversation.rated" in kinds
        )
        assert "Hello Vera" not in timeline.stdout  # the timeline names sizes, not message bodies
        assert "events/s" in timeline.stderr  # progress with the rate

        from_stream = await asyncio.to_thread(
            replay,
            system.settings,
            "--source",
            "stream",
            "--conversation",
            conversation_id,
            "--json",
        )
        assert from_stream.returncode == 0, from_stream.stderr
        streamed = [json.loads(line) for line in from_stream.stdout.splitlines()]
        assert [e["type"] for e in streamed] == kinds
        assert [e["position"] for e in streamed] == sorted(e["position"] for e in streamed)

        for projection in ("history", "agent"):
            same = await asyncio.to_thread(replay, system.settings, "--projection", projection)
            assert same.returncode == 0, same.stdout + same.stderr
            assert "identical to the live projection" in same.stdout

        client = make_client(system.settings.mongo_url or "")
        try:
            await database(client, system.settings.mongo_db)["conversations"].update_one(
                {"conversation_id": conversation_id}, {"$set": {"status": "queued"}}
            )
        finally:
            await client.close()
        tampered = await asyncio.to_thread(replay, system.settings, "--projection", "history")
        assert tampered.returncode == 1
        assert (
            "status live 'queued' != replayed 'closed'" in tampered.stdout
            and conversation_id in tampered.stdout
        )
