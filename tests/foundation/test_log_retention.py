"""State older than the log stream's retention survives a restart.

The stream keeps 30 days; administration, billing and the connectors fold their state
from its start, and routing from a snapshot. On a log older than that, a restart folded
only what the stream still held: agents, settings, plans and connectors made earlier were
gone (logins refused, connectors silent). The positions the stream no longer holds are
read from history's archive now (relaydesk/archived.py, relaydesk/bus/catch_up.py).

Here the log is created with a retention of seconds and tiny segments (a stream keeps the
arguments it was created with; the services find it and leave it as it is), so filler
events age the account's first events out of the stream while everything runs.
"""

from typing import Any

import aio_pika
import httpx
import pytest

from contracts import topology as names
from relaydesk.bus import Bus
from relaydesk.bus.catch_up import marker_event
from relaydesk.bus.log_reader import LogReader
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import admin_command, bearer, eventually, owner_session
from tests.system import ConnectorsRunning, running_system

TENANT = "elder"


async def short_lived_log(settings: Settings) -> None:
    """The log created ahead of the services with a retention of seconds and tiny segments."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(
            names.LOG_STREAM,
            durable=True,
            arguments={
                "x-queue-type": "stream",
                "x-max-age": "2s",
                "x-stream-max-segment-size-bytes": 2000,
            },
        )


async def first_retained(bus: Bus) -> int:
    """The position of the oldest entry the stream still holds."""
    async with LogReader(bus, start="first", name="probe", measured=False) as reader:
        async for batch in reader.batches(idle_timeout=5):
            return batch[0].position
    raise AssertionError("the log is empty")


async def archived_position(settings: Settings, event_id: str) -> int | None:
    """Where history archived the event, once it has."""
    client = make_client(settings.mongo_url or "")
    try:
        found = await database(client, settings.mongo_db)["events"].find_one({"_id": event_id})
        return None if found is None else int(found["position"])
    finally:
        await client.close()


async def published_and_archived(bus: Bus, settings: Settings) -> int:
    """A marker's position in the log, once history archived it (and all before it)."""
    marker = marker_event("filler")
    await bus.publish(marker)
    position: int = await eventually(
        lambda: archived_position(settings, marker.id), what="history archived the log"
    )
    return position


async def account_view(http: httpx.AsyncClient, owner: dict[str, str]) -> dict[str, Any]:
    views: dict[str, Any] = {}
    for path in ("/api/admin/agents", "/api/admin/connectors", "/api/billing/account"):
        answer = await http.get(path, headers=owner)
        assert answer.status_code == 200, (path, answer.text)
        views[path] = answer.json()
    return views


async def test_an_account_older_than_the_streams_retention_is_whole_after_a_restart(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await short_lived_log(settings)
    async with (
        running_system(settings) as system,
        ConnectorsRunning(system.settings),
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, TENANT, "saas", plan="business")
        configured = await http.put(
            "/api/admin/connectors/elder-page",
            headers=owner,
            json={
                "platform": "messenger",
                "public_config": {"page_id": "4242"},
                "secrets": {"app_secret": "s" * 32, "page_token": "t", "verify_token": "v"},
            },
        )
        assert configured.status_code == 200, configured.text
        before = await account_view(http, owner)
        bus = await Bus.from_settings(settings, service="filler").connect()
        try:
            account_end = await published_and_archived(bus, settings)

            # Filler until the stream no longer holds anything of the account (each new
            # segment lets the broker drop those older than the retention).
            async def aged_out() -> bool:
                await bus.publish(marker_event("filler"))
                return await first_retained(bus) > account_end

            await eventually(aged_out, timeout=60, what="the account aged out of the stream")
            await published_and_archived(bus, settings)  # history holds all of it
        finally:
            await bus.close()

    async with (
        running_system(settings) as system,
        ConnectorsRunning(system.settings),
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await bearer(http, TENANT, f"boss@{TENANT}.test", "correct horse")
        assert await account_view(http, owner) == before
        # A key rotation's re-seal folds the connectors as the service does: it found none.
        capsys.readouterr()
        assert await admin_command(settings, "reseal-connectors") == 0
        assert "0 re-sealed, 1 already under the current key" in capsys.readouterr().out
