"""Validation of tenant settings changes: bad values are refused before they reach the log.

Routing reads these values (``agent_service/hours.py`` for business hours), so the
shapes here are the ones it understands.
"""

from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Text = Annotated[str, Field(max_length=2000)]


class TenantSettings(BaseModel):
    model_config = ConfigDict(
        extra="allow"
    )  # which keys exist is decided by state.DEFAULT_SETTINGS
    routing_mode: Literal["broadcast", "round_robin", "least_busy"]
    offer_timeout_s: int = Field(ge=5, le=3600)
    max_chats_default: int = Field(ge=1, le=100)
    messages_on_enter: int = Field(ge=0, le=1000)
    allowed_origins: list[Annotated[str, Field(max_length=300)]] = Field(max_length=100)
    business_hours: dict[str, list[tuple[str, str]]] | None
    timezone: str
    greeting: Text
    offline_text: Text
    retention_days: int | None = Field(ge=1, le=36500)
    attachment_max_bytes: int = Field(ge=1, le=100 * 1024 * 1024)
    attachment_types: list[Annotated[str, Field(max_length=100)]] = Field(max_length=100)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("business_hours")
    @classmethod
    def _hours(
        cls, value: dict[str, list[tuple[str, str]]] | None
    ) -> dict[str, list[tuple[str, str]]] | None:
        for day, ranges in (value or {}).items():
            if day not in WEEKDAYS:
                raise ValueError(f"business_hours days are {', '.join(WEEKDAYS)}")
            for start, end in ranges:
                if time.fromisoformat(start) >= time.fromisoformat(
                    end
                ):  # ValueError on a bad "HH:MM" too
                    raise ValueError(f"{day}: {start} is not before {end}")
        return value


def settings_problem(merged: dict[str, Any]) -> str | None:
    """None when ``merged`` (current settings with the changes applied) is valid, else why not."""
    try:
        TenantSettings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return None
