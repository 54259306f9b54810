"""SaaS plans: prices and limits, from configuration.

The catalogue is read by billing_service (prices, invoices) and agent_service (the
conversation limit it enforces when it decides a new request). ``RELAYDESK_PLANS_FILE``
points at a JSON file ``{"plans": [{"plan_id": ..., "name": ..., "price_cents": ...,
"currency": ..., "limits": {...}, "extra_seat_cents": ...}], "default": "free"}``; without it
the built-in catalogue below applies. A limit of ``null`` means unlimited.
"""

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

LIMIT_KEYS = ("agent_seats", "conversations_per_month", "connectors")


@dataclass(frozen=True)
class Plan:
    plan_id: str
    name: str
    price_cents: int
    currency: str = "USD"
    limits: dict[str, int | None] = field(default_factory=dict)
    extra_seat_cents: int = 0

    def limit(self, key: str) -> int | None:
        return self.limits.get(key)

    def public(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "name": self.name,
            "price_cents": self.price_cents,
            "currency": self.currency,
            "limits": dict(self.limits),
            "extra_seat_cents": self.extra_seat_cents,
        }


BUILT_IN = (
    Plan(
        "free",
        "Free",
        0,
        limits={"agent_seats": 2, "conversations_per_month": 100, "connectors": 1},
    ),
    Plan(
        "team",
        "Team",
        4900,
        limits={"agent_seats": 10, "conversations_per_month": 5000, "connectors": 3},
        extra_seat_cents=900,
    ),
    Plan(
        "business",
        "Business",
        19900,
        limits={"agent_seats": 50, "conversations_per_month": None, "connectors": None},
        extra_seat_cents=700,
    ),
)


@dataclass(frozen=True)
class PlanCatalogue:
    plans: dict[str, Plan]
    default: str

    def get(self, plan_id: str | None) -> Plan:
        return self.plans.get(plan_id or self.default) or self.plans[self.default]

    @classmethod
    def load(cls, path: str | None = None) -> "PlanCatalogue":
        if not path:
            return cls({p.plan_id: p for p in BUILT_IN}, "free")
        raw = json.loads(Path(path).read_text())
        plans = {}
        for item in raw["plans"]:
            limits = {k: item.get("limits", {}).get(k) for k in LIMIT_KEYS}
            plans[item["plan_id"]] = Plan(
                item["plan_id"],
                item["name"],
                int(item["price_cents"]),
                item.get("currency", "USD"),
                limits,
                int(item.get("extra_seat_cents", 0)),
            )
        default = raw.get("default") or next(iter(plans))
        if default not in plans:
            raise ValueError(f"default plan {default!r} is not in {path}")
        return cls(plans, default)


def period_of(moment: datetime | date) -> str:
    """The billing period (calendar month, UTC) a moment falls in: ``YYYY-MM``."""
    return f"{moment.year:04d}-{moment.month:02d}"
