from collections.abc import AsyncIterator

import pytest

from relaydesk.settings import Settings
from tests.system import RunningSystem, running_system


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    """Admin + routing services and a gateway (tool mode), on this test's vhost and database."""
    async with running_system(settings, with_history=False) as running:
        yield running


@pytest.fixture(scope="module")
def module_system_history() -> bool:
    """``module_system`` without the history service, as ``system`` here."""
    return False
