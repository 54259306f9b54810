"""The whole system per test, as in the gateway tests."""

from collections.abc import AsyncIterator

import pytest

from relaydesk.settings import Settings
from tests.connectors.conftest import (  # noqa: F401 (the connectors' fixtures, for 14.8)
    agent_service,
    connector_settings,
    connectors,
    fake_messenger,
    fake_platforms,
    fake_telegram,
    fake_wechat,
    watch,
)
from tests.system import RunningSystem, running_system


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings) as running:
        yield running
