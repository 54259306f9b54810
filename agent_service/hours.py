"""Business hours: is the tenant open at a given moment?

Tenant setting ``business_hours`` (null = always open) maps weekday names (``mon`` … ``sun``)
to lists of ``["HH:MM", "HH:MM"]`` opening ranges in the tenant's ``timezone`` (default
UTC); a day that is missing is closed. A value routing cannot read counts as always open
(and is logged), so a typo never turns every chat away.
"""

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

log = structlog.get_logger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _ranges(value: Any) -> list[tuple[time, time]]:
    return [(time.fromisoformat(start), time.fromisoformat(end)) for start, end in value]


def is_open(business_hours: Any, timezone: Any, now: datetime) -> bool:
    if not business_hours:
        return True
    try:
        local = now.astimezone(ZoneInfo(str(timezone or "UTC")))
        today = business_hours.get(WEEKDAYS[local.weekday()]) or []
        moment = local.time().replace(tzinfo=None)
        return any(start <= moment < end for start, end in _ranges(today))
    except (AttributeError, TypeError, ValueError, OSError, ZoneInfoNotFoundError) as exc:
        log.warning("business_hours_unreadable", error=type(exc).__name__)
        return True
