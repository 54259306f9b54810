"""`relaydesk replay` of a whole tenant and of a time range; one conversation exported, imported."""

import asyncio
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from agent_service.service import AgentService
from contracts.events.audit import CHECKPOINT_STREAM
from history_service.service import HistoryService
from relaydesk.settings import Settings
from tests.admin.helpers import eventually, owner_session
from tests.history_service.flows import served_conversation
from tests.history_service.test_audit_export import command, rated
from tests.history_service.test_replay import replay
from tests.servers import RabbitVhosts, stream_override
from tests.system import running_system
from tools.replay.export_file import read_export

COMPARED = (
    "status",
    "agent_id",
    "message_count",
    "rating",
    "channel",
    "visitor",
    "created_at",
    "accepted_at",
    "closed_at",
)


def json_lines(done: Any) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def ids(events: list[dict]) -> list[str]:
    return [e["id"] for e in events]


async def tenant_events(system: Any, source: str, *window: str) -> list[dict]:
    """Tenant rep's events as `relaydesk replay --json` prints them from ``source``."""
    return json_lines(
        await asyncio.to_thread(
            replay, system.settings, "--tenant", "rep", *window, "--json", "--source", source
        )
    )


async def test_replay_of_a_tenant_and_of_a_time_range_from_archive_and_stream(
    settings: Settings,
) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        agent_id, conversation_id = await served_conversation(system, http, owner)
        await owner_session(system, http, "other")  # another tenant's events must stay out
        routing = next(s for s in system.services if isinstance(s, AgentService))
        await eventually(  # the last event the flow causes: its agent's socket closed
            lambda: routing.state.tenants["rep"].agents[agent_id].disconnected_at,
            what="the agent's lost connection",
        )
        await eventually(
            lambda: rated(http, owner, conversation_id), what="the archived conversation"
        )

        # Events go on arriving after the flow (the agent's lost connection, its grace period,
        # checkpoints), and one decided earlier can land after one decided later in another
        # process, so a time window of the log can still gain an event. Each round reads the
        # tenant from the stream, waits until history holds it, reads the archive, cuts the
        # window from both and reads the stream again: a round in which the log did not move
        # is compared; a round in which it moved is tried again.
        history = next(s for s in system.services if isinstance(s, HistoryService))
        for _ in range(3):
            streamed = await tenant_events(system, "stream")
            await history.wait_for_position(streamed[-1]["position"], timeout=30)
            tenant = await tenant_events(system, "archive")
            since, until = tenant[2]["occurred_at"], tenant[-3]["occurred_at"]
            windows = {
                source: await tenant_events(system, source, "--since", since, "--until", until)
                for source in ("archive", "stream")
            }
            if ids(await tenant_events(system, "stream")) == ids(streamed) == ids(tenant):
                break
        assert {e["tenant"] for e in tenant} == {"rep"}
        assert {
            "tenant.created",
            "agent.created",
            "conversation.requested",
            "conversation.rated",
        } <= {e["type"] for e in tenant}
        assert [e["position"] for e in tenant] == sorted(
            {e["position"] for e in tenant}
        )  # log order, each once
        assert ids(streamed) == ids(tenant)

        # A window cut out of the middle: bounds inclusive, nothing outside, nothing inside missed.
        expected = [
            e["id"]
            for e in tenant
            if datetime.fromisoformat(since)
            <= datetime.fromisoformat(e["occurred_at"])
            <= datetime.fromisoformat(until)
        ]
        assert 0 < len(expected) < len(tenant)
        for source, window in windows.items():
            assert ids(window) == expected, source

        empty = await asyncio.to_thread(
            replay,
            system.settings,
            "--tenant",
            "rep",
            "--since",
            "2001-01-01",
            "--until",
            "2001-01-02",
        )
        assert (
            empty.returncode == 1 and empty.stdout == ""
        )  # nothing matched: said by the exit code


async def test_one_conversation_exported_and_imported_into_a_fresh_system_gives_the_same_read_models(  # noqa: E501 - a test's name says what it proves
    settings: Settings, vhosts: RabbitVhosts, tmp_path: Path
) -> None:
    exported = tmp_path / "conversation.jsonl"
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        _, conversation_id = await served_conversation(system, http, owner)
        await eventually(
            lambda: rated(http, owner, conversation_id), what="the archived conversation"
        )

        async def exported_as_archived() -> dict[str, Any] | None:
            # Sockets closing at the end of the flow still add notes to the conversation: an
            # export is compared with the archive as it stands right after it was written.
            done = await asyncio.to_thread(
                command,
                system.settings,
                "export",
                "--tenant",
                "rep",
                "--conversation",
                conversation_id,
                "--output",
                str(exported),
            )
            assert done.returncode == 0, done.stderr
            transcript = (
                await http.get(f"/api/conversations/{conversation_id}/transcript", headers=owner)
            ).json()
            ids = [
                r["_id"]
                for r in read_export(exported).records
                if r["stream"] == f"conv:{conversation_id}"
            ]
            return transcript if ids == [event["id"] for event in transcript["events"]] else None

        original = await eventually(
            exported_as_archived, what="an export equal to the archived conversation"
        )
        messages = (
            await http.get(f"/api/conversations/{conversation_id}/messages", headers=owner)
        ).json()
    records = read_export(exported).records
    # that conversation only, with what verifies it: the tenant's signed checkpoints
    streams = {r["stream"] for r in records}
    assert f"conv:{conversation_id}" in streams <= {f"conv:{conversation_id}", CHECKPOINT_STREAM}

    vhost = vhosts.create()
    fresh_settings = settings.model_copy(
        update={
            "amqp_url": vhosts.url_for(vhost),
            "mongo_db": f"t_{uuid.uuid4().hex[:12]}",
            **stream_override(vhosts, vhost),
        }
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
            auth = {"Authorization": f"Bearer {fresh.agent_token('rep', 'auditor', role='owner')}"}
            copy = await eventually(
                lambda: rated(http, auth, conversation_id), what="the imported conversation"
            )
            for field in COMPARED:
                assert copy["conversation"][field] == original["conversation"][field], field
            assert [e["id"] for e in copy["events"]] == [e["id"] for e in original["events"]]
            copied = (
                await http.get(f"/api/conversations/{conversation_id}/messages", headers=auth)
            ).json()
            assert [m["event"] for m in copied] == [m["event"] for m in messages]
            again = await asyncio.to_thread(
                command, fresh.settings, "replay", "--projection", "history"
            )
            assert again.returncode == 0, again.stdout + again.stderr
    finally:
        vhosts.delete(vhost)
