"""Routing tests run the real AgentService in-process against the per-test RabbitMQ vhost."""

from collections.abc import AsyncIterator

import pytest

from agent_service.service import AgentService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.agent_service.helpers import Desk, LogWatch


@pytest.fixture
def routing_settings(settings: Settings) -> Settings:
    # Short timers so expiry and grace behaviour is observable within a test.
    return settings.model_copy(update={"offer_timeout_s": 1, "disconnect_grace_s": 1})


@pytest.fixture
async def service(routing_settings: Settings) -> AsyncIterator[AgentService]:
    started = AgentService(routing_settings)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def desk(bus: Bus, service: AgentService) -> Desk:
    return Desk(bus)


@pytest.fixture
async def watch(bus: Bus) -> AsyncIterator[LogWatch]:
    started = await LogWatch(bus).start()
    yield started
    await started.stop()
