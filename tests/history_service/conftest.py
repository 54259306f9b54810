"""Fixtures for history_service tests: a database handle and a running service."""

from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from history_service.service import HistoryService
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.history_service.helpers import running


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncDatabase]:
    client = make_client(settings.mongo_url or "")
    yield database(client, settings.mongo_db)
    await client.close()


@pytest.fixture
async def history(settings: Settings) -> AsyncIterator[HistoryService]:
    async with running(settings) as service:
        yield service


@pytest.fixture
def rpc(bus: Bus) -> RpcClient:
    return RpcClient(bus)
