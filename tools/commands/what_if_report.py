"""``relaydesk replay --what-if``: read the log, simulate, print reality beside the what-if.

The simulation is tools/replay/what_if.py (pure); this module reads the events, hands
them over with the deployment's defaults, and prints the comparison as a table or JSON.
"""

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.envelope import Envelope, LoggedEvent
from contracts.plans import PlanCatalogue
from relaydesk.settings import Settings
from tools.commands.outcomes import CommandFailed
from tools.replay.routing_outcome import PERCENTILES
from tools.replay.sources import Progress
from tools.replay.what_if import Comparison, Deployment, simulate, split
from tools.replay.what_if_changes import Changes, WhatIfRefused


@dataclass(frozen=True)
class WhatIf:
    tenant: str
    since: datetime | None
    until: datetime | None
    changes: Changes
    as_json: bool


async def run_what_if(
    request: WhatIf, settings: Settings, events: AsyncIterator[LoggedEvent], progress: Progress
) -> int:
    """Simulate and print; exit 1 when the tenant has no event in the range (as replay)."""
    logged: list[Envelope] = [event.envelope async for event in events]
    progress.done()
    if not split(logged, request.since, request.until)[1]:
        print(
            f"[replay] what-if: no event of tenant {request.tenant!r} in"
            f" {_span(_iso(request.since), _iso(request.until))}: nothing to decide again",
            file=sys.stderr,
        )
        return 1
    deployment = Deployment(
        offer_timeout_s=settings.offer_timeout_s,
        grace_s=settings.disconnect_grace_s,
        plans=PlanCatalogue.load(settings.plans_file),
    )
    try:
        comparison = simulate(
            request.tenant, logged, request.since, request.until, request.changes, deployment
        )
    except WhatIfRefused as exc:
        raise CommandFailed(f"what-if: {exc}") from None
    report = _report(request, comparison)
    print(json.dumps(report, ensure_ascii=False) if request.as_json else _table(report))
    return 0


def _report(request: WhatIf, comparison: Comparison) -> dict[str, Any]:
    return {
        "tenant": request.tenant,
        "since": _iso(request.since),
        "until": _iso(request.until),
        "changes": request.changes.described(),
        "actual": comparison.actual.as_json(),
        "what_if": comparison.simulated.as_json(),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _span(since: str | None, until: str | None) -> str:
    return f"{since or 'the beginning'} .. {until or 'the end'}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(report: dict[str, Any]) -> str:
    actual, simulated = report["actual"], report["what_if"]
    changed = ", ".join(f"{k}={_value(v)}" for k, v in report["changes"].items()) or "nothing"
    lines = [
        f"what-if for tenant {report['tenant']}, {_span(report['since'], report['until'])};"
        f" changed: {changed}",
        f"{'':<22}{'actual':>10}{'what-if':>10}",
    ]
    for name in ("requests", "accepted", "missed"):
        lines.append(f"{name:<22}{actual[name]:>10}{simulated[name]:>10}")
    for key in [*(f"p{p}" for p in PERCENTILES), "max"]:
        label = f"wait {key} (s)"
        lines.append(
            f"{label:<22}{_seconds(actual['wait_s'][key]):>10}"
            f"{_seconds(simulated['wait_s'][key]):>10}"
        )
    lines.append(f"{'agent':<22}{'conversations':>20}{'peak at once':>20}")
    for agent_id in sorted({*actual["agents"], *simulated["agents"]}):
        was, would = (_load(o["agents"].get(agent_id)) for o in (actual, simulated))
        lines.append(
            f"{agent_id:<22}{f'{was[0]} -> {would[0]}':>20}{f'{was[1]} -> {would[1]}':>20}"
        )
    return "\n".join(lines)


def _load(agent: dict[str, int] | None) -> tuple[int, int]:
    return (agent["conversations"], agent["peak_concurrent"]) if agent else (0, 0)


def _value(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)
