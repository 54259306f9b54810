"""Two agents racing for one request (after one of them reloaded); the gateway restarting
under a live conversation; a customer's messages racing the rate limit."""

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.browser.pages import (
    TIMEOUT_MS,
    accept_next,
    agent_says,
    console_login,
    customer_says,
    make_tenant,
    online_agent,
    open_demo,
    start_chat,
    visitor_history,
    widget,
)
from tests.system import RunningSystem, running_system, start_gateway

pytestmark = pytest.mark.browser


# Counts the chime's tones and records notifications (granted), before the console's scripts.
# Audio stays suspended until resumed during a click or key press, as desktop browsers do
# (headless Chromium lets any page play, and a reload after a click keeps that permission).
ALERTS_PROBE = """
window.tones = 0;
const RealAudioContext = window.AudioContext;
window.AudioContext = class extends RealAudioContext {
  constructor() { super(); this.locked = true; }
  get state() { return this.locked ? "suspended" : super.state; }
  resume() {
    if (navigator.userActivation.isActive && this.locked) {
      this.locked = false;
      this.dispatchEvent(new Event("statechange"));
    }
    return super.resume();
  }
  createOscillator() { window.tones += 1; return super.createOscillator(); }
};
window.notified = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.notified.push(`${title}: ${options && options.body}`); }
  close() {}
};
"""


async def test_two_agents_race_to_accept_and_exactly_one_wins(system, browser, artifacts) -> None:
    await make_tenant(system, "race", "alice", "bob")
    alice_context = await browser.new_context()
    await alice_context.add_init_script(ALERTS_PROBE)
    consoles = [
        await console_login(context, system, "race", name)
        for context, name in ((alice_context, "alice"), (await browser.new_context(), "bob"))
    ]
    demo = await open_demo(await browser.new_context(), system, "race")
    await start_chat(demo, "Riley")
    requests = [page.locator(".request").filter(has_text="Riley") for page in consoles]
    for request in requests:
        await request.wait_for(timeout=TIMEOUT_MS)

    # Alice reloads: the offer she holds is shown again (routing still counts it as hers).
    frames: dict[str, list[dict[str, Any]]] = {"sent": [], "received": []}
    consoles[0].on("websocket", lambda socket: record_frames(socket, frames))
    await consoles[0].reload()
    await (
        consoles[0].get_by_role("status").filter(has_text="connected").wait_for(timeout=TIMEOUT_MS)
    )
    await requests[0].wait_for(timeout=TIMEOUT_MS)
    # Each op goes out once on the new socket (its status was sent twice on every reconnect):
    # counted once the status is acknowledged, so every frame sent before it was reported.
    status_ids = [f["id"] for f in frames["sent"] if f.get("op") == "status"]
    await eventually(
        lambda: acknowledged(frames, status_ids), what="the reloaded console's status ack"
    )
    sent_ids = Counter(f["id"] for f in frames["sent"] if "op" in f)
    assert set(sent_ids.values()) == {1}, sent_ids
    # The reload lost the page's permission to play sound: the console offers to turn it on.
    sound = consoles[0].get_by_role("button", name="Enable sound")
    await sound.click()
    await consoles[0].get_by_role("button", name="Sound on").wait_for(timeout=TIMEOUT_MS)
    await consoles[0].screenshot(path=str(artifacts / "console-incoming-request.png"))

    # Take both buttons first, then press them together: whichever card the first accept
    # withdraws, the second press still reaches the server (a handler on a detached node runs).
    buttons = [
        await request.get_by_role("button", name="Accept").element_handle() for request in requests
    ]
    await asyncio.gather(*(button.evaluate("button => button.click()") for button in buttons))

    for request in requests:
        await request.wait_for(state="detached", timeout=TIMEOUT_MS)
    await widget(demo).get_by_text("has entered the chat").wait_for(timeout=TIMEOUT_MS)
    winner = await eventually(
        lambda: first_showing(consoles, "#chat-title", "Riley"),
        what="the winner's open conversation",
    )
    loser = consoles[1 - consoles.index(winner)]
    assert await winner.get_by_label("Reply").is_visible()
    await loser.get_by_role("tab", name="Mine").click()
    await loser.get_by_text("Nothing here yet.").wait_for(timeout=TIMEOUT_MS)
    assert await loser.locator("#conversations button").filter(has_text="Riley").count() == 0
    assert (
        await widget(demo).locator(".system").filter(has_text="has entered the chat").count() == 1
    )

    # The next request chimes and notifies on the reloaded console (sound enabled above).
    await start_chat(await open_demo(await browser.new_context(), system, "race"), "Sky")
    await consoles[0].locator(".request").filter(has_text="Sky").wait_for(timeout=TIMEOUT_MS)
    # a function, not an expression: polling an expression needs eval, which the CSP refuses
    await consoles[0].wait_for_function(
        "() => window.tones >= 2 && window.notified.length >= 1", timeout=TIMEOUT_MS
    )
    assert "Sky" in (await consoles[0].evaluate("window.notified"))[-1]


def record_frames(socket: Any, frames: dict[str, list[dict[str, Any]]]) -> None:
    """The JSON frames a page's websocket sends and receives, in order."""
    socket.on("framesent", lambda payload: frames["sent"].append(json.loads(payload)))
    socket.on("framereceived", lambda payload: frames["received"].append(json.loads(payload)))


async def acknowledged(frames: dict[str, list[dict[str, Any]]], ids: list[str]) -> bool:
    acked = {f.get("id") for f in frames["received"] if f.get("t") == "ack"}
    return bool(ids) and all(op_id in acked for op_id in ids)


async def first_showing(pages, selector: str, text: str):  # type: ignore[no-untyped-def]
    for page in pages:
        if text in await page.locator(selector).inner_text():
            return page
    return None


async def test_widget_survives_a_gateway_restart_without_losing_or_repeating(
    system, browser
) -> None:
    await make_tenant(system, "restart", "alice")
    console = await console_login(await browser.new_context(), system, "restart", "alice")
    demo = await open_demo(await browser.new_context(), system, "restart")
    chat = widget(demo)
    await start_chat(demo, "Sam")
    await console.locator(".request").get_by_role("button", name="Accept").click()
    # The console has opened the accepted chat (its reply box shows): what the customer says
    # from now on is shown live. Said earlier, it could land while the console is still
    # opening the chat, before the history has it (the console's own race, not this test's).
    await console.get_by_label("Reply").wait_for(timeout=TIMEOUT_MS)
    await customer_says(demo, "before the restart")
    log = console.get_by_role("log", name="Messages")
    await log.get_by_text("before the restart").wait_for(timeout=TIMEOUT_MS)

    port = system.gateway.settings.gateway_port
    await system.gateway.stop()
    await chat.get_by_text("Connection lost").wait_for(timeout=TIMEOUT_MS)
    await customer_says(demo, "typed while the gateway was down")
    assert await chat.locator(".msg.pending").count() == 1

    replacement = await start_gateway(system.settings, port=port)
    try:
        await log.get_by_text("typed while the gateway was down").wait_for(timeout=30_000)
        await chat.locator(".msg.pending").wait_for(state="detached", timeout=TIMEOUT_MS)
        await console.get_by_role("status").filter(has_text="connected").wait_for(timeout=30_000)
        await agent_says(console, "after the restart")
        await chat.get_by_text("after the restart").wait_for(timeout=TIMEOUT_MS)
        for text in ("before the restart", "typed while the gateway was down", "after the restart"):
            assert await chat.locator(".msg").filter(has_text=text).count() == 1, text
            assert await log.locator(".msg").filter(has_text=text).count() == 1, text
        # A reload is a returning visitor: the same conversation, each message once.
        await demo.reload()
        await chat.get_by_text("after the restart").wait_for(timeout=TIMEOUT_MS)
        for text in ("before the restart", "typed while the gateway was down", "after the restart"):
            assert await chat.locator(".msg").filter(has_text=text).count() == 1, text
    finally:
        await replacement.stop()


# A tight op budget so that the messages below are certain to run into it: 5 at once, then 10
# a second (the default 40 / 20 a second would take 200 messages to show the same thing).
TIGHT = {"ws_rate_per_s": 10.0, "ws_rate_burst": 5}
# Typed in one go, as fast as a script can: each one a keystroke (a typing signal) and Enter.
TYPE_ALL = """(texts) => {
  const root = document.querySelector("#relaydesk-widget").shadowRoot;
  const box = root.querySelector(".composer textarea");
  for (const text of texts) {
    box.value = text;
    box.dispatchEvent(new Event("input"));
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  }
}"""


@pytest_asyncio.fixture(loop_scope="module")
async def tight_system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings.model_copy(update=TIGHT)) as running:
        yield running


async def test_messages_typed_faster_than_the_rate_limit_are_stored_in_typed_order(
    tight_system, browser
) -> None:
    """Refused sends used to be retried one by one after random delays (and typing signals
    used up the budget too): history held 4, 7, 5, 12… while the widget showed 1, 2, 3."""
    system = tight_system
    await make_tenant(system, "burst")
    agent = await online_agent(system, "burst")
    refusals: list[str] = []
    demo = await open_demo(
        await browser.new_context(),
        system,
        "burst",
        on_socket=lambda socket: socket.on(
            "framereceived",
            lambda payload: refusals.append(payload) if "rate_limited" in str(payload) else None,
        ),
    )
    await start_chat(demo, "Tess")
    await accept_next(agent)
    typed = [f"message {n:02d}" for n in range(1, 31)]
    await demo.evaluate(TYPE_ALL, typed)

    chat = widget(demo)
    await eventually(
        lambda: chat.locator(".msg.customer:not(.pending)").count(),
        what="the first message to be confirmed",
    )
    await chat.locator(".msg.customer.pending").first.wait_for(
        state="detached", timeout=4 * TIMEOUT_MS
    )
    shown = await chat.locator(".msg.customer").all_inner_texts()
    stored = [
        e["data"]["body"]
        for e in await visitor_history(demo, system, "burst")
        if e["type"] == "message.sent" and e["data"]["author_kind"] == "customer"
    ]
    assert refusals, "the rate limit was never hit: the test did not test the refusal path"
    assert shown == typed
    assert stored == typed
    await agent.close()
