"""Invoice arithmetic (integer cents, deterministic) and the printable HTML page."""

import calendar
import html
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from contracts import derive_event_id
from contracts.plans import PlanCatalogue

if TYPE_CHECKING:
    from billing_service.ledger import TenantBilling

PAYMENT_TERMS_DAYS = 14


def prorate(price_cents: int, days: int, days_in_month: int) -> int:
    """price × days / days_in_month, rounded half up, in integers (no float ever touches money)."""
    return (2 * price_cents * days + days_in_month) // (2 * days_in_month)


def _days(period: str) -> list[date]:
    year, month = (int(part) for part in period.split("-"))
    return [date(year, month, day) for day in range(1, calendar.monthrange(year, month)[1] + 1)]


def compute_invoice(
    state: "TenantBilling", period: str, catalogue: PlanCatalogue, *, sequence: int
) -> dict[str, Any]:
    """The invoice for ``period`` from the ledger now: plan days prorated, extra seats, usage."""
    days = [d for d in _days(period) if state.created is None or d >= state.created]
    month_length = len(_days(period))
    segments: list[tuple[str, list[date]]] = []
    for day in days:
        plan_id = state.plan_on(day, catalogue)
        if segments and segments[-1][0] == plan_id:
            segments[-1][1].append(day)
        else:
            segments.append((plan_id, [day]))
    lines = []
    for plan_id, span in segments:
        plan = catalogue.get(plan_id)
        dates = f"{span[0]:%b %d} – {span[-1]:%b %d}"
        description = f"{plan.name} plan, {dates} ({len(span)}/{month_length} days)"
        lines.append(
            {
                "description": description,
                "quantity": len(span),
                "unit_cents": plan.price_cents,
                "amount_cents": prorate(plan.price_cents, len(span), month_length),
            }
        )
    final = catalogue.get(state.plan_on(_days(period)[-1], catalogue))
    usage = state.usage.get(period)
    seats = len(usage.active_agents) if usage else 0
    included = final.limit("agent_seats")
    if included is not None and seats > included and final.extra_seat_cents:
        extra = seats - included
        lines.append(
            {
                "description": f"Extra agent seats beyond {included}",
                "quantity": extra,
                "unit_cents": final.extra_seat_cents,
                "amount_cents": extra * final.extra_seat_cents,
            }
        )
    if usage:
        for label, count in (
            ("Conversations", usage.conversations),
            ("Messages", usage.messages),
            ("Connector messages", usage.connector_messages),
        ):
            lines.append(
                {
                    "description": f"{label} (included)",
                    "quantity": count,
                    "unit_cents": 0,
                    "amount_cents": 0,
                }
            )
    return {
        "invoice_id": derive_event_id(state.tenant, "billing", f"invoice:{period}"),
        "number": f"{state.tenant.upper()}-{sequence:04d}",
        "period": period,
        "lines": lines,
        "total_cents": sum(line["amount_cents"] for line in lines),
        "currency": final.currency,
    }


def due_date(invoice: dict[str, Any]) -> date:
    return date.fromisoformat(invoice["issued_at"][:10]) + timedelta(days=PAYMENT_TERMS_DAYS)


def money(cents: int, currency: str) -> str:
    sign = "-" if cents < 0 else ""
    return f"{currency} {sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


STYLE = (
    "body{font:14px/1.5 system-ui,sans-serif;max-width:760px;margin:40px auto;color:#1c2330}"
    "table{width:100%;border-collapse:collapse}"
    "td,th{padding:8px;border-bottom:1px solid #e3e8f2;text-align:left}"
    ".n{text-align:right}h1{margin-bottom:0}@media print{body{margin:0}}"
)


def invoice_html(tenant: str, invoice: dict[str, Any]) -> str:
    """A printable invoice page; every value is escaped."""
    e = html.escape
    currency = invoice["currency"]

    def amount(cents: int) -> str:
        return e(money(cents, currency))

    rows = "".join(
        f"<tr><td>{e(line['description'])}</td><td class=n>{line['quantity']}</td>"
        f"<td class=n>{amount(line['unit_cents'])}</td>"
        f"<td class=n>{amount(line['amount_cents'])}</td></tr>"
        for line in invoice["lines"]
    )
    number, total, paid = e(invoice["number"]), invoice["total_cents"], invoice.get("paid_cents", 0)
    issued = invoice.get("issued_at", "")[:10]
    due = str(due_date(invoice)) if invoice.get("issued_at") else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Invoice {number}</title><style>{STYLE}</style></head>
<body><h1>Invoice {number}</h1>
<p>relaydesk · account <strong>{e(tenant)}</strong> · period {e(invoice["period"])}<br>
Issued {e(issued)} · due {e(due)}</p>
<table><thead><tr><th>Item</th><th class=n>Qty</th><th class=n>Unit</th><th class=n>Amount</th>
</tr></thead><tbody>{rows}</tbody>
<tfoot><tr><th colspan=3>Total</th><th class=n>{amount(total)}</th></tr>
<tr><td colspan=3>Paid</td><td class=n>{amount(paid)}</td></tr>
<tr><th colspan=3>Balance due</th><th class=n>{amount(total - paid)}</th></tr></tfoot></table>
</body></html>"""
