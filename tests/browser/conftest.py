"""Browser fixtures: Debian's Chromium driven by Playwright against the real system.

By default each test gets the whole system (agent, history services and a real uvicorn
gateway on its own vhost and database) and a headless Chromium. The modules whose tests
leave the system running as they found it (each with its own tenants) share one system and
one Chromium instead, all of them together: they set ``SHARES_ONE_SYSTEM = True`` and run
on the package's event loop (``pytest.mark.asyncio(loop_scope="package")``), one system
start and one browser launch for the whole directory, not one per module or test (~10 s
each on the suite's busy machine). Each test still gets fresh browser contexts, closed
when it ends. They run after the modules that start their own (tests/conftest.py), so the
shared system starts once and stops as soon as the last of them is done, never left frozen
on an idle loop while other modules run. Screenshots go to ``test-artifacts/screenshots``
(kept by CI as artifacts).
"""

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from relaydesk.settings import Settings
from tests.browser.load import background_load, requested_rate
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem, running_system

# Debian's chromium-headless-shell: the same Chromium build in its old headless mode, which
# is what Playwright itself runs for headless tests. `/usr/bin/chromium --headless` is the
# full browser without a window (its own UI, tab strip and all): on the suite's browser tests
# its browser process used ~3x the CPU (22 against 8 s on test_chat_flow.py). Set
# RELAYDESK_TEST_CHROMIUM=/usr/bin/chromium to run them in the full browser.
CHROMIUM = os.environ.get("RELAYDESK_TEST_CHROMIUM", "/usr/bin/chromium-headless-shell")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.browser


@pytest.fixture
async def own_system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings) as running, loaded(running):
        yield running


@contextlib.asynccontextmanager
async def loaded(running: RunningSystem) -> AsyncIterator[None]:
    """A background chat load on the system when RELAYDESK_BROWSER_LOAD asks for one (a
    busy system: the read models lag, tests/browser/load.py)."""
    rate = requested_rate()
    if not rate:
        yield
        return
    async with background_load(running, rate):
        yield


@pytest.fixture
def system(request: pytest.FixtureRequest) -> RunningSystem:
    """The test's own system, or its module's when the module sets ``SHARES_ONE_SYSTEM``."""
    shared = getattr(request.module, "SHARES_ONE_SYSTEM", False)
    running: RunningSystem = request.getfixturevalue("module_system" if shared else "own_system")
    return running


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 - one stat, before anything runs
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/bootstrap.sh --test`"
            " (installs Debian's chromium-headless-shell)"
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
async def own_browser() -> AsyncIterator[object]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Any:
    """A Chromium of the test's own, or its module's (``SHARES_ONE_SYSTEM``: contexts closed
    after each test)."""
    shared = getattr(request.module, "SHARES_ONE_SYSTEM", False)
    return request.getfixturevalue("module_browser" if shared else "own_browser")


class ContextsOfOneTest:
    """A shared Chromium as one test sees it: the contexts it opens are closed when it ends
    (pages left open would keep their sockets and timers running into the next test)."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self._contexts: list[Any] = []

    async def new_context(self, **options: Any) -> Any:
        context = await self._browser.new_context(**options)
        self._contexts.append(context)
        return context

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def module_system(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[Any]:
    async with shared_system(vhosts, mongo_server) as running, loaded(running):
        yield running


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def module_chromium() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="package")
async def module_browser(module_chromium: Any) -> AsyncIterator[ContextsOfOneTest]:
    contexts = ContextsOfOneTest(module_chromium)
    yield contexts
    await contexts.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
