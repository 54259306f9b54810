"""`relaydesk replay` over the real log: timelines, and projections rebuilt and compared."""

import asyncio
import contextlib
import functools
import io
import json
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx

from contracts.envelope import LoggedEvent
from contracts.events.conversation import ConversationRated
from contracts.events.system import LogMarker
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually, owner_session
from tests.cli_process import run_relaydesk
from tests.history_service.flows import served_conversation
from tests.system import RunningSystem, running_system
from tools.replay import projections
from tools.replay.sources import Progress, Slice, Touched, from_archive, touched_after


def replay(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
    }
    return run_relaydesk(["replay", *args], env, timeout=120)


@contextlib.asynccontextmanager
async def rated_conversation(
    settings: Settings,
) -> AsyncIterator[tuple[RunningSystem, str]]:
    """A running system with one served conversation of tenant ``rep``, its rating in the read
    model and in the archive: the system and the conversation's id."""
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
        yield system, conversation_id


async def test_replay_prints_a_conversation_and_rebuilt_projections_match_until_tampered(
    settings: Settings,
) -> None:
    async with rated_conversation(settings) as (system, conversation_id):
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
            conversations = database(client, system.settings.mongo_db)["conversations"]
            row = await conversations.find_one({"conversation_id": conversation_id})
            assert row is not None
            await conversations.update_one(
                {"conversation_id": conversation_id},
                {"$set": {"status": "queued", "visitor.name": "Mallory", "topic": "refund"}},
            )
            # a row no event made (it passed as identical, as did fields left uncompared)
            await conversations.insert_one(
                {**row, "_id": "rep|cphantom", "conversation_id": "cphantom"}
            )
        finally:
            await client.close()
        tampered = await asyncio.to_thread(replay, system.settings, "--projection", "history")
        assert tampered.returncode == 1
        assert (
            "status live 'queued' != replayed 'closed'" in tampered.stdout
            and conversation_id in tampered.stdout
        )
        assert "'Mallory'" in tampered.stdout and "topic live 'refund'" in tampered.stdout
        assert "conversation rep|cphantom: in the live read model, made by no event" in (
            tampered.stdout
        )


async def test_conversations_that_moved_on_after_the_replayed_events_are_not_differences(
    settings: Settings,
) -> None:
    """A replay reads the log while the system runs on: a conversation the live read model
    has taken past the last replayed event is left out of the comparison (found under load:
    400 "differences" for customers' conversations that went on to "missed" meanwhile), but
    a live position past the log's head is a difference still (a read model edited ahead)."""
    async with rated_conversation(settings) as (_, conversation_id):
        everything = Slice(conversation=conversation_id)
        archived = [
            event
            async for event in from_archive(
                settings.mongo_url or "",
                settings.mongo_db,
                everything,
                Progress("t", io.StringIO()),
            )
        ]
        assert len(archived) >= 6, [e.envelope.type for e in archived]
        head = archived[-1].position

        async def first_half() -> AsyncIterator[LoggedEvent]:  # the log as a replay found it
            for event in archived[: len(archived) // 2]:
                yield event

        async def log_head() -> int:
            return head

        moved = await projections.history(
            settings, first_half(), "rep_replay_moved", log_head=log_head
        )
        assert moved.differences == [] and moved.moved_on == [f"rep|{conversation_id}"], moved

        # Routing's live state went on as well (closed, rated): the log after the replayed
        # half names the conversation, so it is set aside, not reported.
        since = functools.partial(touched_after, settings.amqp_url, settings.stream_url)
        routed = await projections.routing(settings, first_half(), touched_after=since)
        assert routed.differences == [] and routed.moved_on == [f"rep|{conversation_id}"], routed

        async def nothing_after(position: int) -> Touched:  # a log that ended there
            assert position == archived[len(archived) // 2 - 1].position
            return Touched()

        stale = await projections.routing(settings, first_half(), touched_after=nothing_after)
        assert stale.moved_on == [] and any(
            line.startswith(f"rep/{conversation_id}: status live 'closed' != replayed")
            for line in stale.differences
        ), stale

        client = make_client(settings.mongo_url or "")
        try:
            await database(client, settings.mongo_db)["conversations"].update_one(
                {"conversation_id": conversation_id}, {"$set": {"last_position": head + 1000}}
            )
        finally:
            await client.close()
        ahead = await projections.history(
            settings, first_half(), "rep_replay_ahead", log_head=log_head
        )
        assert ahead.moved_on == [] and ahead.differences == [
            f"conversation rep|{conversation_id}: last_position live {head + 1000}"
            f" is past the log's head {head}"
        ]


async def test_a_live_row_is_judged_by_a_head_asked_after_it_was_read() -> None:
    """Rows are compared one after another while the log goes on: a row past the head asked
    for an earlier row asks again (found under load: 24 conversations "past the log's head"
    that a head asked 10 s earlier did not hold yet)."""
    answers = iter([120, 140, 145])
    asked = []

    async def log_head() -> int:
        asked.append(True)
        return next(answers)

    heads = projections.LogHead(log_head)
    assert await heads.holds(110)  # asks: 120
    assert await heads.holds(115) and len(asked) == 1  # within the known head: not asked
    assert await heads.holds(130)  # past 120: asked again, 140 holds it
    assert not await heads.holds(150) and heads.known == 145  # past even a fresh head
    assert await projections.LogHead(None).holds(10**9)  # nothing to judge by


async def test_archive_time_ranges_are_exact_to_the_microsecond(settings: Settings) -> None:
    """The archive's ``ts`` keeps milliseconds, events microseconds: a range ending a
    microsecond before an event of the same millisecond still had it, one starting at the
    event did not (the stream's replay, exact, gave the other answer). Markers (service
    starts) are not part of a replay from either source."""
    async with rated_conversation(settings) as (_, conversation_id):

        async def replayed(**bounds: datetime) -> list[str]:
            selection = Slice(conversation=conversation_id, **bounds)
            progress = Progress("t", io.StringIO())
            source = from_archive(settings.mongo_url or "", settings.mongo_db, selection, progress)
            return [event.envelope.id async for event in source]

        everything = await replayed()
        async for event in from_archive(
            settings.mongo_url or "", settings.mongo_db, Slice(), Progress("t", io.StringIO())
        ):
            assert event.envelope.type != LogMarker.TYPE
        archived = [
            e
            async for e in from_archive(
                settings.mongo_url or "",
                settings.mongo_db,
                Slice(conversation=conversation_id),
                Progress("t", io.StringIO()),
            )
        ]
        inside = next(e for e in archived if e.envelope.occurred_at.microsecond % 1000)
        at = inside.envelope.occurred_at
        micro = timedelta(microseconds=1)
        same_moment = [e.envelope.id for e in archived if e.envelope.occurred_at == at]
        assert await replayed(since=at, until=at) == same_moment  # one decision's events
        assert inside.envelope.id not in await replayed(until=at - micro)
        assert inside.envelope.id not in await replayed(since=at + micro)
        assert await replayed(since=at) == everything[everything.index(same_moment[0]) :]
