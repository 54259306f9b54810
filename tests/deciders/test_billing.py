"""Billing decisions, pure: given events on the log, when a command, then events or a rejection."""

from datetime import UTC, datetime

from contracts import Actor, Envelope, derive_event_id
from tests.deciders.harness import NOW, Clock, billing_desk, command, event

SIGNED_UP = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)  # the account's first month: 2026-01


def tenant_created(mode: str = "saas", plan: str = "team", at: datetime = SIGNED_UP) -> Envelope:
    data = {"tenant_id": "acme", "name": "Acme", "mode": mode, "plan": plan}
    return event("tenant.created", data, at=at)


def period_closed(period: str) -> Envelope:
    return event("billing.period_closed", {"period": period}, stream="billing:acme")


def invoice_issued(total_cents: int = 4900) -> Envelope:
    data = {
        "invoice_id": "inv-1",
        "number": "ACME-0001",
        "period": "2026-02",
        "lines": [],
        "total_cents": total_cents,
    }
    return event("billing.invoice_issued", data, stream="billing:acme")


def pay(amount_cents: int, *, actor: Actor | None = None, number: str = "ACME-0001") -> Envelope:
    data = {"number": number, "amount_cents": amount_cents, "method": "manual", "reference": "b1"}
    return command("billing.record_payment", data, actor=actor or Actor(kind="admin", id="ops"))


class TestChangePlan:
    async def test_a_plan_change_names_the_plan_it_replaces(self) -> None:
        desk = billing_desk().given(tenant_created(plan="team"))
        reply = await desk.when(command("billing.change_plan", {"plan": "business"}))
        assert desk.of("billing.subscription_changed") == [
            {"plan": "business", "previous_plan": "team", "effective": NOW.date().isoformat()}
        ]
        [changed] = desk.published.events
        assert changed.stream == "billing:acme" and changed.actor.id == "billing"
        assert reply.ok and reply.event_ids == (changed.id,)

    async def test_an_unknown_plan_is_refused(self) -> None:
        desk = billing_desk().given(tenant_created())
        reply = await desk.when(command("billing.change_plan", {"plan": "gold"}))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"

    async def test_a_tool_mode_tenant_has_no_billing(self) -> None:
        desk = billing_desk().given(tenant_created(mode="tool"))
        reply = await desk.when(command("billing.change_plan", {"plan": "business"}))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"

    async def test_a_change_dated_before_today_is_refused(self) -> None:
        # a downgrade dated back to the 1st made the days already had on Business free
        desk = billing_desk().given(tenant_created(plan="business"))
        data = {"plan": "free", "effective": "2026-03-01"}
        reply = await desk.when(command("billing.change_plan", data))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == (
            "effective: 2026-03-01 has passed; a plan change takes effect today (2026-03-02)"
            " or later"
        )

    async def test_a_change_from_a_later_day_is_taken(self) -> None:
        desk = billing_desk().given(tenant_created(plan="business"))
        data = {"plan": "free", "effective": "2026-03-15"}
        assert (await desk.when(command("billing.change_plan", data))).ok
        assert [e["effective"] for e in desk.of("billing.subscription_changed")] == ["2026-03-15"]


class TestClosePeriod:
    async def test_closing_a_period_uses_the_id_the_periodic_closer_uses(self) -> None:
        desk = billing_desk().given(tenant_created())
        reply = await desk.when(command("billing.close_period", {"period": "2026-02"}))
        [closed] = desk.published.events
        assert closed.type == "billing.period_closed" and closed.data == {"period": "2026-02"}
        assert closed.id == derive_event_id("acme", "billing", "close:2026-02")
        assert reply.ok and "already_closed" not in reply.data

    async def test_closing_a_closed_period_again_changes_nothing(self) -> None:
        desk = billing_desk().given(tenant_created(), period_closed("2026-02"))
        reply = await desk.when(command("billing.close_period", {"period": "2026-02"}))
        assert desk.types == [] and reply.ok and reply.data == {"already_closed": True}

    async def test_a_month_that_has_not_begun_is_not_closed(self) -> None:
        # its invoice charged a month ahead, and that month could not be closed when it ended
        desk = billing_desk().given(tenant_created())
        reply = await desk.when(command("billing.close_period", {"period": "2026-04"}))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == "period: 2026-04 has not begun (this month is 2026-03)"

    async def test_a_month_before_the_account_existed_is_not_closed(self) -> None:
        # it issued an invoice of nothing, numbered before the account's real first one
        desk = billing_desk().given(tenant_created())
        reply = await desk.when(command("billing.close_period", {"period": "2025-12"}))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == (
            "period: 2025-12 is before the account existed (it began on 2026-01-15)"
        )
        assert (await desk.when(command("billing.close_period", {"period": "2026-01"}))).ok

    async def test_the_month_under_way_is_not_closed(self) -> None:
        # its invoice charged the usage so far; the rest of the month (and a plan change later
        # in it) fell in no invoice, as the periodic closer skips a closed month
        desk = billing_desk().given(tenant_created())
        reply = await desk.when(command("billing.close_period", {"period": "2026-03"}))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == (
            "period: 2026-03 has not ended (it ends on 2026-04-01); a month is closed once it"
            " is over"
        )

    async def test_december_ends_on_the_first_of_january(self) -> None:
        clock = Clock(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
        desk = billing_desk(clock).given(tenant_created())
        reply = await desk.when(command("billing.close_period", {"period": "2026-12"}))
        assert reply.code == "invalid_payload" and reply.message == (
            "period: 2026-12 has not ended (it ends on 2027-01-01); a month is closed once it"
            " is over"
        )

    async def test_a_month_is_closed_from_the_first_instant_after_it(self) -> None:
        clock = Clock(datetime(2026, 4, 1, 0, 0, tzinfo=UTC))
        desk = billing_desk(clock).given(tenant_created())
        assert (await desk.when(command("billing.close_period", {"period": "2026-03"}))).ok
        assert desk.of("billing.period_closed") == [{"period": "2026-03"}]


class TestRecordPayment:
    async def test_a_payment_within_what_is_outstanding_is_recorded(self) -> None:
        desk = billing_desk().given(tenant_created(), period_closed("2026-02"), invoice_issued())
        reply = await desk.when(pay(4900))
        assert desk.of("billing.payment_recorded") == [
            {"invoice_id": "inv-1", "amount_cents": 4900, "method": "manual", "reference": "b1"}
        ]
        assert reply.ok

    async def test_a_payment_over_what_is_outstanding_is_rejected_on_the_log(self) -> None:
        desk = billing_desk().given(tenant_created(), period_closed("2026-02"), invoice_issued())
        desk.given(
            event(
                "billing.payment_recorded",
                {"invoice_id": "inv-1", "amount_cents": 4000},
                stream="billing:acme",
            )
        )
        reply = await desk.when(pay(901))
        assert desk.types == ["command.rejected"]
        assert desk.of("command.rejected")[0]["reason"] == "invalid_payload"
        assert reply.message == "only 900 cents are outstanding on ACME-0001"

    async def test_a_manual_payment_from_a_tenants_agent_is_refused(self) -> None:
        desk = billing_desk().given(tenant_created(), period_closed("2026-02"), invoice_issued())
        reply = await desk.when(pay(100, actor=Actor(kind="agent", id="boss")))
        assert desk.types == ["command.rejected"] and reply.code == "forbidden"

    async def test_a_payment_of_an_unknown_invoice_is_not_found(self) -> None:
        desk = billing_desk().given(tenant_created())
        reply = await desk.when(pay(100, number="ACME-0009"))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"
