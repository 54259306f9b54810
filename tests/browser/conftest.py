"""Browser fixtures: Debian's Chromium driven by Playwright against the real system.

Each test gets the whole system (agent, history services and a real uvicorn gateway on
its own vhost and database) and a headless Chromium. Screenshots go to
``test-artifacts/screenshots`` (kept by CI as artifacts).
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaydesk.settings import Settings
from tests.browser.load import background_load, requested_rate
from tests.system import RunningSystem, running_system

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.browser


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings) as running:
        rate = requested_rate()  # RELAYDESK_BROWSER_LOAD: a busy system (tests/browser/load.py)
        if not rate:
            yield running
            return
        async with background_load(running, rate):
            yield running


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 - one stat, before anything runs
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/bootstrap.sh --test`"
            " (installs Debian's chromium)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
