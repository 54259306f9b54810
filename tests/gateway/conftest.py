from collections.abc import AsyncIterator

import pytest

from relaydesk.settings import Settings
from tests.system import RunningSystem, running_system


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings) as running:
        yield running
