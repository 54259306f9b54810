"""Issue 14, item 9: what browsers are told about our pages, and who sees health details.

Over HTTP: the headers of every kind of answer. In Chromium: a script that made its way
into the console page as text does not run, and neither does one in an invoice the admin
page opens as a blob document (which no response header reaches).
"""

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from relaydesk.settings import Settings
from tests.admin.helpers import admin_command, bearer, eventually
from tests.browser.conftest import browser, own_browser  # noqa: F401 - the Chromium fixtures
from tests.browser.pages import TIMEOUT_MS
from tests.system import (
    RunningGateway,
    RunningSystem,
    next_month_start,
    running_system,
    start_gateway,
)

PAGES = ("/console", "/admin", "/demo")
INJECTED = """() => {
  const script = document.createElement("script");
  script.textContent = "window.injected = true";
  document.head.append(script);
  return window.injected === true;
}"""


@pytest.fixture
async def https_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    """A gateway alone, published at an https URL, with a health token."""
    gateway = await start_gateway(
        settings.model_copy(
            update={
                "public_url": "https://support.example",
                "trusted_proxies": "127.0.0.1",
                "health_token": SecretStr("health-token-for-the-monitor"),
            }
        )
    )
    try:
        yield gateway
    finally:
        await gateway.stop()


def directives(policy: str) -> dict[str, list[str]]:
    return {parts[0]: parts[1:] for parts in (d.split() for d in policy.split(";") if d.strip())}


async def test_pages_forbid_inline_script_and_framing_and_every_answer_says_nosniff(
    https_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=https_gateway.base_url) as http:
        for path in PAGES:
            page = await http.get(path)
            assert page.status_code == 200
            policy = directives(page.headers["content-security-policy"])
            assert policy["script-src"] == ["'self'"], (path, policy)  # no inline, no eval
            assert policy["default-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
            assert (
                policy["frame-ancestors"] == ["'none'"]
                and page.headers["x-frame-options"] == "DENY"
            )
            assert "'unsafe-inline'" not in " ".join(policy["connect-src"])
            assert _inline_scripts(page.text) == [], path
        console = directives((await http.get("/console")).headers["content-security-policy"])
        assert console["style-src"] == ["'self'"]
        answers = [
            await http.get("/console"),
            await http.get("/static/js/console.js"),
            await http.get("/api/conversations"),  # 401
            await http.post("/api/auth/login", content=b"{"),  # 400
            await http.get("/healthz"),
            await http.get("/no/such/page"),  # 404
        ]
        for answer in answers:
            assert answer.headers["x-content-type-options"] == "nosniff", answer.url
            assert answer.headers["referrer-policy"] == "no-referrer", answer.url
            assert answer.headers["strict-transport-security"] == "max-age=31536000"


async def test_no_hsts_while_the_public_url_is_plain_http(settings: Settings) -> None:
    gateway = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            answer = await http.get("/console")
        assert "strict-transport-security" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
    finally:
        await gateway.stop()


async def test_health_details_only_for_loopback_clients_or_with_the_token(
    https_gateway: RunningGateway,
) -> None:
    outside = {"X-Forwarded-For": "203.0.113.50"}  # through the trusted proxy, from afar
    async with httpx.AsyncClient(base_url=https_gateway.base_url) as http:
        assert (await http.get("/healthz", headers=outside)).json() == {"status": "alive"}
        wrong = {**outside, "Authorization": "Bearer not-the-token"}
        assert (await http.get("/healthz", headers=wrong)).json() == {"status": "alive"}
        token = {**outside, "Authorization": "Bearer health-token-for-the-monitor"}
        assert {"sockets", "log_position"} <= set(
            (await http.get("/healthz", headers=token)).json()
        )
        assert {"sockets", "log_position"} <= set((await http.get("/healthz")).json())
        # The same for readiness (this gateway runs without routing: not ready), whose
        # checks say what the gateway depends on.
        public = await http.get("/readyz", headers=outside)
        assert public.status_code == 503 and public.json() == {"status": "not_ready"}
        assert not (await http.get("/readyz", headers=token)).json()["checks"]["routing"]["ok"]


def _inline_scripts(page: str) -> list[str]:
    """Script elements without ``src`` and ``on…=`` handler attributes in an HTML page."""

    class Finder(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {name for name, _ in attrs}
            if tag == "script" and "src" not in names:
                self.found.append("<script> without src")
            self.found += [f"{tag} {name}=" for name in names if re.fullmatch(r"on\w+", name)]

    finder = Finder()
    finder.feed(page)
    return finder.found


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    """Billing on the 1st of next month: the month the test's tenant began is over, and its
    invoice can be issued."""
    async with running_system(settings, billing_clock=next_month_start) as running:
        yield running


@pytest.mark.browser
async def test_injected_script_runs_neither_in_the_console_nor_in_an_invoice_opened_as_a_blob(
    system: RunningSystem,
    browser: Any,  # noqa: F811 - the fixture imported above
) -> None:
    await _saas_tenant_with_an_invoice(system, "inv")
    context = await browser.new_context()
    console = await context.new_page()
    await console.goto(f"{system.gateway.base_url}/console?tenant=inv")
    await console.get_by_label("Email").wait_for(timeout=TIMEOUT_MS)  # its own script ran
    assert await console.evaluate(INJECTED) is False

    admin = await context.new_page()
    await admin.goto(f"{system.gateway.base_url}/admin?tenant=inv")
    await admin.get_by_label("Email").fill("boss@inv.test")
    await admin.get_by_label("Password").fill("boss-secret-pw")
    await admin.get_by_role("button", name="Sign in").click()
    await admin.get_by_role("button", name="Billing").click()
    async with context.expect_page() as opened:
        await admin.get_by_role("button", name="Print").click()
    invoice = await opened.value
    await invoice.wait_for_load_state()
    assert invoice.url.startswith("blob:")
    assert "Invoice INV-0001" in await invoice.title()
    assert await invoice.evaluate(INJECTED) is False
    own = await invoice.evaluate(
        """() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.content"""
    )
    assert own is not None and "default-src 'none'" in own
    # Styled all the same: the invoice's own stylesheet applies.
    assert await invoice.evaluate("getComputedStyle(document.body).maxWidth") == "760px"
    await context.close()


async def _saas_tenant_with_an_invoice(system: RunningSystem, tenant: str) -> None:
    assert (
        await admin_command(
            system.settings, "create-tenant", "--tenant", tenant, "--name", "Inv", "--mode", "saas"
        )
        == 0
    )
    assert (
        await admin_command(
            system.settings,
            "create-agent",
            "--tenant",
            tenant,
            "--email",
            f"boss@{tenant}.test",
            "--name",
            "Boss",
            "--role",
            "owner",
            "--password",
            "boss-secret-pw",
        )
        == 0
    )
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        headers = await bearer(http, tenant, f"boss@{tenant}.test", "boss-secret-pw")

        async def account() -> dict[str, Any] | None:
            answer = await http.get("/api/billing/account", headers=headers)
            return answer.json() if answer.status_code == 200 else None

        await eventually(account, what="the billing account")
        period = f"{datetime.now(UTC):%Y-%m}"  # the tenant's first month, over for billing
        assert (
            await admin_command(
                system.settings, "close-period", "--tenant", tenant, "--period", period
            )
            == 0
        )

        async def invoiced() -> bool:
            found = await account()
            return bool(found and found["invoices"])

        await eventually(invoiced, what="the invoice")
        page = await http.get(f"/api/billing/invoices/{tenant.upper()}-0001.html", headers=headers)
        assert page.status_code == 200
        assert page.text.index('http-equiv="Content-Security-Policy"') < page.text.index("<title>")
