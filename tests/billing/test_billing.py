"""Billing folded from the log: plans, proration, limits, invoices, payments, recompute."""

import asyncio
import calendar
import json
import os
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_service.service import BillingService
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from tests.admin.helpers import admin_command, bearer, cli, eventually
from tests.cli_process import run_relaydesk
from tests.gateway.wsclient import Client
from tests.system import next_month_start, running_system

PLANS = {
    "default": "tiny",
    "plans": [
        {
            "plan_id": "tiny",
            "name": "Tiny",
            "price_cents": 3001,
            "currency": "EUR",
            "limits": {"agent_seats": 1, "conversations_per_month": 2, "connectors": 1},
            "extra_seat_cents": 500,
        },
        {
            "plan_id": "big",
            "name": "Big",
            "price_cents": 6007,
            "currency": "EUR",
            "limits": {"agent_seats": 10, "conversations_per_month": None, "connectors": None},
        },
    ],
}


def expected_amount(price_cents: int, days: int, month_days: int) -> int:
    return int(
        (Decimal(price_cents) * days / month_days).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    )


@pytest.fixture
def billing_settings(settings: Settings, tmp_path: Path) -> Settings:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps(PLANS))
    return settings.model_copy(update={"plans_file": str(plans)})


async def account(http: httpx.AsyncClient, owner: dict[str, str]) -> dict[str, Any]:
    response = await http.get("/api/billing/account", headers=owner)
    assert response.status_code == 200, response.text
    return response.json()


async def new_visitor(system: Any, tenant: str, name: str) -> tuple[Client, dict[str, Any]]:
    customer = await Client.connect(
        system.gateway.ws_url, system.visitor_token(tenant, name), origin="https://shop.example"
    )
    return customer, await customer.op("start", visitor={"name": name})


async def test_plan_change_limit_invoice_payment_and_identical_recompute_after_restarts(
    billing_settings: Settings,
) -> None:
    # The test's billing is the system's only one: its restarts below are billing's restarts.
    billing = BillingService(billing_settings, close_check_s=3600)
    async with (
        running_system(billing_settings, with_billing=False) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        await billing.start()
        try:
            created = datetime.now(UTC).date()
            period = f"{created:%Y-%m}"
            assert (
                await admin_command(
                    system.settings,
                    "create-tenant",
                    "--tenant",
                    "paid",
                    "--name",
                    "Paid",
                    "--mode",
                    "saas",
                    "--plan",
                    "tiny",
                )
                == 0
            )
            assert (
                await admin_command(
                    system.settings,
                    "create-agent",
                    "--tenant",
                    "paid",
                    "--email",
                    "boss@paid.test",
                    "--name",
                    "Boss",
                    "--role",
                    "owner",
                    "--password",
                    "correct horse",
                )
                == 0
            )
            owner = await bearer(http, "paid", "boss@paid.test", "correct horse")
            start = await eventually(lambda: account(http, owner), what="the billing account")
            assert (
                start["plan"]["plan_id"] == "tiny"
                and start["usage"]["conversations"] == 0
                and start["blocked"] is None
            )

            # Two conversations fit the plan; the third visitor is turned away, on the record.
            for name in ("v1", "v2"):
                _, ack = await new_visitor(system, "paid", name)
                assert ack["t"] == "ack"
            third, ack = await new_visitor(system, "paid", "v3")
            assert ack["t"] == "ack"
            missed = await third.wait_event(
                "conversation.missed", conversation_id=ack["conversation_id"]
            )
            assert missed["event"]["data"]["reason"] == "over_limit"
            note = await third.wait_event("message.system", kind="missed")
            assert "unavailable" in note["event"]["data"]["text"]
            blocked = await eventually(lambda: _blocked(http, owner), what="the limit to show")
            assert (
                "limit of 2 conversations" in blocked["blocked"]
                and blocked["usage"]["conversations"] == 2
            )

            # The month under way is not closed: the upgrade below and the rest of the month
            # would fall in no invoice.
            early = await cli(
                system.settings, "close-period", "--tenant", "paid", "--period", period
            )
            assert early.returncode == 2 and "has not ended" in early.stderr, early.stderr

            # Upgrade mid-period (effective a few days after the account was opened).
            month_days = calendar.monthrange(created.year, created.month)[1]
            last_day = date(created.year, created.month, month_days)
            effective = min(created + timedelta(days=3), last_day)
            changed = await http.post(
                "/api/billing/plan",
                headers=owner,
                json={"plan": "big", "effective": effective.isoformat()},
            )
            assert changed.status_code == 200, changed.text
            assert (
                await http.post("/api/billing/plan", headers=owner, json={"plan": "gold"})
            ).status_code == 400

            # billing_service goes down mid-period and comes back on the 1st of next month: it
            # rebuilds from the log and closes the month that ended (its periodic closer).
            await billing.stop()
            billing = BillingService(billing_settings, close_check_s=3600, clock=next_month_start)
            await billing.start()
            issued = await eventually(lambda: _with_invoice(http, owner), what="the invoice")
            [invoice] = issued["invoices"]
            # Closing it by hand as well changes nothing: one close, one invoice.
            again_closed = await cli(
                system.settings, "close-period", "--tenant", "paid", "--period", period
            )
            assert again_closed.returncode == 0, again_closed.stderr
            assert f"done: {period} closed for paid (0 event(s) on the log)" in again_closed.stdout

            tiny_days = (effective - created).days
            big_days = month_days - created.day + 1 - tiny_days
            expected_lines = []
            if tiny_days:
                expected_lines.append(expected_amount(3001, tiny_days, month_days))
            expected_lines.append(expected_amount(6007, big_days, month_days))
            plan_lines = [
                line
                for line in invoice["lines"]
                if line["amount_cents"] or "plan" in line["description"]
            ]
            assert [line["amount_cents"] for line in plan_lines] == expected_lines
            assert invoice["total_cents"] == sum(expected_lines) and invoice["currency"] == "EUR"
            assert invoice["number"] == "PAID-0001" and invoice["period"] == period
            usage_lines = {
                line["description"]: line["quantity"]
                for line in invoice["lines"]
                if not line["amount_cents"] and "plan" not in line["description"]
            }
            assert usage_lines["Conversations (included)"] == 2

            # Recomputed from the log after another restart: identical to the cent.
            await billing.stop()
            billing = BillingService(billing_settings, close_check_s=3600, clock=next_month_start)
            await billing.start()
            again = await account(http, owner)
            assert again["invoices"] == issued["invoices"]
            assert await _recompute_differences(system.settings) == []
            replayed = await asyncio.to_thread(_replay_billing, system.settings)
            assert (
                replayed.returncode == 0 and "identical to the live projection" in replayed.stdout
            ), replayed.stdout + replayed.stderr

            page = await http.get(f"/api/billing/invoices/{invoice['number']}.html", headers=owner)
            assert page.status_code == 200 and invoice["number"] in page.text and "EUR" in page.text

            # A manual payment by a system admin settles it; paying more than is owed is refused.
            too_much = await cli(
                system.settings,
                "record-payment",
                "--tenant",
                "paid",
                "--invoice",
                invoice["number"],
                "--amount-cents",
                str(invoice["total_cents"] + 1),
            )
            assert too_much.returncode == 2 and "outstanding" in too_much.stderr
            assert (
                await admin_command(
                    system.settings,
                    "record-payment",
                    "--tenant",
                    "paid",
                    "--invoice",
                    invoice["number"],
                    "--amount-cents",
                    str(invoice["total_cents"]),
                    "--reference",
                    "bank-123",
                )
                == 0
            )
            settled = await eventually(lambda: _settled(http, owner), what="the payment")
            assert (
                settled["balance_cents"] == 0
                and settled["invoices"][0]["status"] == "paid"
                and settled["overdue"] is False
            )
        finally:
            await billing.stop()


async def test_tool_mode_tenants_have_no_billing(billing_settings: Settings) -> None:
    billing = BillingService(billing_settings, close_check_s=3600)
    async with (
        running_system(billing_settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        await billing.start()
        try:
            assert (
                await admin_command(
                    system.settings, "create-tenant", "--tenant", "tooly", "--name", "Tooly"
                )
                == 0
            )
            assert (
                await admin_command(
                    system.settings,
                    "create-agent",
                    "--tenant",
                    "tooly",
                    "--email",
                    "boss@tooly.test",
                    "--name",
                    "Boss",
                    "--role",
                    "owner",
                    "--password",
                    "correct horse",
                )
                == 0
            )
            owner = await bearer(http, "tooly", "boss@tooly.test", "correct horse")
            for route in ("/api/billing/account", "/api/billing/plans"):
                response = await http.get(route, headers=owner)
                assert response.status_code == 404, route
                assert response.json()["error"]["code"] == "not_found"
            # No limit applies either: many conversations are routed normally.
            for index in range(4):
                customer, ack = await new_visitor(system, "tooly", f"t{index}")
                assert ack["t"] == "ack"
                await customer.wait_event(
                    "conversation.missed", conversation_id=ack["conversation_id"]
                )  # nobody online
                assert all(
                    e["event"]["data"]["reason"] == "no_agent_online"
                    for e in customer.events("conversation.missed")
                )
        finally:
            await billing.stop()


async def _blocked(http: httpx.AsyncClient, owner: dict[str, str]) -> dict[str, Any] | None:
    state = await account(http, owner)
    return state if state["blocked"] else None


async def _with_invoice(http: httpx.AsyncClient, owner: dict[str, str]) -> dict[str, Any] | None:
    state = await account(http, owner)
    return state if state["invoices"] else None


async def _settled(http: httpx.AsyncClient, owner: dict[str, str]) -> dict[str, Any] | None:
    state = await account(http, owner)
    return state if state["balance_cents"] == 0 else None


async def _recompute_differences(settings: Settings) -> list[str]:
    bus = await Bus(settings.amqp_url, service="test", stream_url=settings.stream_url).connect()
    try:
        answer = await RpcClient(bus).query("billing", "billing.recompute", {}, timeout=10)
    finally:
        await bus.close()
    return list(answer["differences"])


def _replay_billing(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
        "RELAYDESK_PLANS_FILE": settings.plans_file or "",
    }
    return run_relaydesk(["replay", "--projection", "billing"], env, timeout=120)
