"""Routing tests run the real AgentService in-process over RabbitMQ.

Modules marked ``shared_service`` share one AgentService per module (one vhost, one
database, one bus for their desks): starting and stopping a service per test was most of
their time. Each of their tests works in a tenant of its own (``tenant``), and its desk
and log watch see only that tenant, so the tests cannot see each other. A test marked
``own_service`` (it names its tenant in its body, or breaks its service) and every test of
an unmarked module get a service of their own on the test's own vhost, in tenant "acme".
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from agent_service.service import AgentService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.agent_service.helpers import TENANT, Desk, LogWatch
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import throwaway_settings

# Short timers so expiry and grace behaviour is observable within a test.
SHORT_TIMERS = {"offer_timeout_s": 1, "disconnect_grace_s": 1}


@dataclass
class SharedRouting:
    service: AgentService
    bus: Bus


def shares_the_module_service(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return (
        node.get_closest_marker("shared_service") is not None
        and node.get_closest_marker("own_service") is None
    )


@pytest.fixture
def routing_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=SHORT_TIMERS)


@pytest.fixture(scope="module")
async def shared_routing(
    vhosts: RabbitVhosts, mongo_server: MongoServer
) -> AsyncIterator[SharedRouting]:
    async with throwaway_settings(vhosts, mongo_server, **SHORT_TIMERS) as settings:
        service = AgentService(settings)
        await service.start()
        bus = await Bus(settings.amqp_url, service="test", stream_url=settings.stream_url).connect()
        try:
            yield SharedRouting(service, bus)
        finally:
            await bus.close()
            await service.stop()


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> str:
    """The test's tenant: its own on a shared service, "acme" on a service of its own."""
    if shares_the_module_service(request):
        return f"t-{uuid.uuid4().hex[:10]}"
    return TENANT


@pytest.fixture
async def service(request: pytest.FixtureRequest) -> AsyncIterator[AgentService]:
    if shares_the_module_service(request):
        shared: SharedRouting = request.getfixturevalue("shared_routing")
        yield shared.service
        return
    started = AgentService(request.getfixturevalue("routing_settings"))
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def desk_bus(request: pytest.FixtureRequest) -> Bus:
    """The bus the test's desk and watch use: the module's, or the test's own."""
    if shares_the_module_service(request):
        shared: SharedRouting = request.getfixturevalue("shared_routing")
        return shared.bus
    return request.getfixturevalue("bus")


@pytest.fixture
async def desk(desk_bus: Bus, service: AgentService, tenant: str) -> Desk:
    return Desk(desk_bus, tenant=tenant)


@pytest.fixture
async def watch(
    request: pytest.FixtureRequest, desk_bus: Bus, tenant: str
) -> AsyncIterator[LogWatch]:
    only = tenant if shares_the_module_service(request) else None  # a shared log holds others'
    started = await LogWatch(desk_bus, tenant=only).start()
    yield started
    await started.stop()
