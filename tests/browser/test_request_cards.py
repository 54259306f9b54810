"""A request card names the customer from the request itself, whatever the read models do.

The console used to take the card's name from the history read model (the conversation
list); with history behind the log (here: stopped, the extreme of a lagging read model) the
card read "Visitor" and never changed. The request event the agent already receives carries
the name the customer gave.
"""

import pytest

from history_service.service import HistoryService
from tests.browser.pages import TIMEOUT_MS, console_login, make_tenant, open_demo, start_chat

pytestmark = pytest.mark.browser


async def test_the_card_names_the_customer_while_history_lags(system, browser) -> None:  # type: ignore[no-untyped-def]
    await make_tenant(system, "lagging", "alice")
    console = await console_login(await browser.new_context(), system, "lagging", "alice")
    history = next(s for s in system.services if isinstance(s, HistoryService))
    await history.stop()  # the read models stop following the log from here on

    demo = await open_demo(await browser.new_context(), system, "lagging")
    await start_chat(demo, "Quinn")

    card = console.locator(".request")
    await card.wait_for(timeout=TIMEOUT_MS)
    await card.filter(has_text="Quinn").wait_for(timeout=TIMEOUT_MS)
