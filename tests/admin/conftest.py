from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem, running_system


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    """Admin + routing services and a gateway (tool mode), on this test's vhost and database."""
    async with running_system(settings, with_history=False) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_system(
    vhosts: RabbitVhosts, mongo_server: MongoServer
) -> AsyncIterator[RunningSystem]:
    """The same as ``system``, built once and shared by all tests of a module (its tests run on
    the module's event loop: ``pytest.mark.asyncio(loop_scope="module")``). Starting and
    stopping a system costs ~0.75 s of CPU; a module's tests each use tenants of their own
    (tests/shared_system.py)."""
    async with shared_system(vhosts, mongo_server, with_history=False) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_bus(module_system: RunningSystem) -> AsyncIterator[Bus]:
    """A bus on ``module_system``'s vhost, for the tests of a module that share it."""
    connected = await Bus(
        module_system.settings.amqp_url,
        service="test",
        stream_url=module_system.settings.stream_url,
    ).connect()
    yield connected
    await connected.close()
