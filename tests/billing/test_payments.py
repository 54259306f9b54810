"""The payment-provider boundary: providers confirm payments, billing_service records them.

billing_service runs alone on the test's real log; the tenant's creation is published as
the admin service would have published it last month (a month is invoiced once it is over),
and every payment is checked on the log and in the balance.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_service.payments import ManualProvider, Payment, PaymentRefused
from billing_service.service import BillingService
from contracts import Actor, Envelope
from contracts.commands.billing import RecordPayment
from contracts.replies import CommandReply
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.connectors.helpers import LogWatch

OPERATOR = Actor(kind="admin", id="cli")


class VoucherProvider:
    """A second provider, like an adapter: confirms only vouchers it issued, for their value."""

    method = "voucher"

    def __init__(self, vouchers: dict[str, int]) -> None:
        self._vouchers = vouchers

    async def confirm(
        self, request: RecordPayment, actor: Actor, invoice: dict[str, Any]
    ) -> Payment:
        value = self._vouchers.get(request.reference or "")
        if value is None:
            raise PaymentRefused("invalid_payload", "unknown voucher")
        return Payment(value, self.method, request.reference)


@pytest.fixture
async def billing(settings: Settings, bus: Bus) -> AsyncIterator[tuple[BillingService, LogWatch]]:
    """billing_service with a second provider injected, and a watch on the whole log."""
    service = BillingService(
        settings, close_check_s=3600, payments=(ManualProvider(), VoucherProvider({"V-3": 3}))
    )
    await service.start()
    watch = await LogWatch(bus).start()
    try:
        yield service, watch
    finally:
        await watch.stop()
        await service.stop()


async def send(
    bus: Bus, tenant: str, type_name: str, data: dict[str, Any], actor: Actor = OPERATOR
) -> CommandReply:
    envelope = Envelope(
        type=type_name, tenant=tenant, stream=f"billing:{tenant}", actor=actor, data=data
    )
    return await RpcClient(bus).command("billing", envelope, timeout=10)


async def account(bus: Bus, tenant: str) -> dict[str, Any]:
    return await RpcClient(bus).query("billing", "billing.account", {"tenant": tenant}, timeout=10)


async def test_manual_and_injected_providers_record_payments_on_the_log_and_change_the_balance(
    billing: tuple[BillingService, LogWatch], bus: Bus
) -> None:
    service, watch = billing
    now = datetime.now(UTC)
    last_month = (
        datetime(now.year - 1, 12, 1, tzinfo=UTC)
        if now.month == 1
        else datetime(now.year, now.month - 1, 1, tzinfo=UTC)
    )
    await bus.publish(
        Envelope(
            type="tenant.created",
            tenant="payer",
            stream="tenant",
            actor=OPERATOR,
            occurred_at=last_month,  # signed up on the 1st of last month, an ended month
            data={"tenant_id": "payer", "name": "Payer", "mode": "saas", "plan": "team"},
        )
    )
    period = f"{last_month:%Y-%m}"
    await eventually(
        lambda: (
            "payer" in service.ledger.tenants and service.ledger.tenants["payer"].mode == "saas"
        ),
        what="the tenant in the ledger",
    )
    assert (await send(bus, "payer", "billing.close_period", {"period": period})).ok
    opened = await eventually(lambda: _with_invoice(bus), what="the invoice")
    invoice = opened["invoices"][0]
    total = invoice["total_cents"]
    assert invoice["period"] == period and opened["balance_cents"] == total
    assert total == service.catalogue.get("team").price_cents  # the whole month on Team

    # Manual: an operator's payment lands as an event and lowers the balance.
    manual = total - 10  # keep the amounts below the total (the month's plan price)
    paid = await send(
        bus,
        "payer",
        "billing.record_payment",
        {
            "number": invoice["number"],
            "amount_cents": manual,
            "method": "manual",
            "reference": "bank-1",
        },
    )
    assert paid.ok, paid.message
    [event] = await watch.wait_for("billing.payment_recorded", method="manual")
    assert event.id == paid.event_ids[0] and event.data == {
        "invoice_id": invoice["invoice_id"],
        "amount_cents": manual,
        "method": "manual",
        "reference": "bank-1",
    }
    assert (await eventually(lambda: _balance_below(bus, total), what="the balance")) == 10

    # Manual payments come from operators only: a tenant's agent is refused, nothing recorded.
    agent = await send(
        bus,
        "payer",
        "billing.record_payment",
        {"number": invoice["number"], "amount_cents": 1, "method": "manual"},
        actor=Actor(kind="agent", id="boss"),
    )
    assert not agent.ok and agent.code == "forbidden"

    # The injected provider decides the amount (its voucher's value, not what was asked).
    voucher = await send(
        bus,
        "payer",
        "billing.record_payment",
        {"number": invoice["number"], "amount_cents": 5, "method": "voucher", "reference": "V-3"},
    )
    assert voucher.ok, voucher.message
    [by_voucher] = await watch.wait_for("billing.payment_recorded", method="voucher")
    assert by_voucher.data["amount_cents"] == 3
    assert (await eventually(lambda: _balance_below(bus, 10), what="the second payment")) == 7
    unknown = await send(
        bus,
        "payer",
        "billing.record_payment",
        {
            "number": invoice["number"],
            "amount_cents": 5,
            "method": "voucher",
            "reference": "forged",
        },
    )
    assert not unknown.ok and unknown.code == "invalid_payload"
    nobody = await send(
        bus,
        "payer",
        "billing.record_payment",
        {"number": invoice["number"], "amount_cents": 5, "method": "card"},
    )
    assert not nobody.ok and "no payment provider" in (nobody.message or "")
    too_much = await send(
        bus,
        "payer",
        "billing.record_payment",
        {"number": invoice["number"], "amount_cents": 8, "method": "manual"},
    )
    assert not too_much.ok and "outstanding" in (too_much.message or "")
    assert (
        len(watch.of("billing.payment_recorded")) == 2
        and (await account(bus, "payer"))["balance_cents"] == 7
    )


async def _with_invoice(bus: Bus) -> dict[str, Any] | None:
    found = await account(bus, "payer")
    return found if found["invoices"] else None


async def _balance_below(bus: Bus, previous: int) -> int | None:
    balance = (await account(bus, "payer"))["balance_cents"]
    return balance if balance < previous else None
