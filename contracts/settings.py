"""A tenant's settings: every setting, its one default, and what a valid value is.

Every reader takes its defaults from here — routing (greeting, offline text, routing mode,
offer timeout, business hours), administration (the settings page and its edits), the
gateway (origins, attachments, messages on entering, the audit view) — so the admin's
Settings page for a tenant that never saved anything shows exactly what its customers get.

Saved settings are the ``after`` dicts of ``tenant.settings_changed`` events, merged in log
order over the defaults. A change is validated when it is decided (:func:`edit_settings`);
folding a logged change (:func:`accepted_changes`) keeps what this model accepts and skips
the rest, so a log written under older rules stays readable.
"""

import re
from collections.abc import Mapping
from datetime import time
from itertools import pairwise
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RoutingMode = Literal["broadcast", "round_robin", "least_busy"]
# Greeting and offline text reach the chat as system notes, whose text is at most 200
# characters (contracts.events.message.SystemNote): a longer one would be cut there.
NoteText = Annotated[str, Field(max_length=200)]
Origin = Annotated[str, Field(max_length=300)]
MediaType = Annotated[str, Field(max_length=100)]
# type/subtype as RFC 6838 names them, in the lower case browsers send (no wildcards)
MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")
Range = tuple[str, str]

DEFAULT_ATTACHMENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)


class SettingsRefused(ValueError):
    """A settings change that cannot be saved; the message names the setting and why."""


def _clock_time(day: str, text: str) -> time:
    """``"09:00"`` as a time; anything else said as the admin wrote it, not as the parser
    found it ("Invalid isoformat string")."""
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{day}: {text!r} is not a time like 09:00 or 17:30") from None


class TenantSettings(BaseModel):
    """Attributes:
    routing_mode: who is offered a new conversation: everyone eligible (``broadcast``),
        one agent in turn (``round_robin``) or the least loaded one (``least_busy``).
    offer_timeout_s: seconds an offer stands before it goes to someone else; ``None``:
        the deployment's ``RELAYDESK_OFFER_TIMEOUT_S`` (60 unless configured).
    max_chats_default: conversations an agent without their own ``max_chats`` may hold.
    messages_on_enter: how many messages a conversation opens with in the console/widget.
    allowed_origins: sites the widget may run on (empty: any).
    business_hours: weekday (``mon`` … ``sun``) → ``[["HH:MM", "HH:MM"], …]`` opening
        ranges in ``timezone``; a missing day is closed; ``None``: always open.
    timezone: IANA zone the business hours are in.
    greeting: the system note a customer sees when their chat starts (empty: none).
    offline_text: the system note when nobody can take the chat (empty: none).
    retention_days: closed conversations lose their message contents after this many
        days; ``None``: kept for ever.
    attachment_max_bytes / attachment_types: what may be uploaded into a conversation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    routing_mode: RoutingMode = "broadcast"
    offer_timeout_s: int | None = Field(default=None, ge=5, le=3600)
    max_chats_default: int = Field(default=5, ge=1, le=100)
    messages_on_enter: int = Field(default=50, ge=0, le=1000)
    allowed_origins: tuple[Origin, ...] = Field(default=(), max_length=100)
    business_hours: dict[str, tuple[Range, ...]] | None = None
    timezone: str = "UTC"
    greeting: NoteText = "Hi! How can we help?"
    offline_text: NoteText = (
        "We are offline right now. Leave a message and we will get back to you."
    )
    retention_days: int | None = Field(default=None, ge=1, le=36500)
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=100 * 1024 * 1024)
    attachment_types: tuple[MediaType, ...] = Field(
        default=DEFAULT_ATTACHMENT_TYPES, max_length=100
    )

    @field_validator(
        "offer_timeout_s",
        "max_chats_default",
        "messages_on_enter",
        "retention_days",
        "attachment_max_bytes",
        mode="before",
    )
    @classmethod
    def _not_a_switch(cls, value: Any) -> Any:
        # pydantic takes true as 1: "max_chats_default": true saved a limit of one chat
        if isinstance(value, bool):
            raise ValueError("Input should be a number, not true or false")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        # OSError: a folder of the zone database ("America") or a name too long for a file
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("attachment_types")
    @classmethod
    def _media_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Uploads are matched exactly against these (relaydesk/attachments.py): "pdf",
        # "image/*" or "Image/PNG" would never match a file, an upload refused with a list
        # naming them.
        seen: set[str] = set()
        for media_type in value:
            if not MEDIA_TYPE.fullmatch(media_type):
                raise ValueError(f"{media_type!r} is not a media type like image/png")
            if media_type in seen:
                raise ValueError(f"{media_type} is named twice")
            seen.add(media_type)
        return value

    @field_validator("business_hours")
    @classmethod
    def _hours(
        cls, value: dict[str, tuple[Range, ...]] | None
    ) -> dict[str, tuple[Range, ...]] | None:
        for day, ranges in (value or {}).items():
            if day not in WEEKDAYS:
                raise ValueError(f"business_hours days are {', '.join(WEEKDAYS)}")
            for start, end in ranges:
                if _clock_time(day, start) >= _clock_time(day, end):
                    raise ValueError(f"{day}: {start} is not before {end}")
        return value

    def as_json(self) -> dict[str, Any]:
        """The settings as JSON values (lists, not tuples): what the bus and the log carry."""
        return self.model_dump(mode="json")

    def with_changes(self, after: Mapping[str, Any]) -> "TenantSettings":
        """These settings with a logged change applied (see :func:`accepted_changes`)."""
        return TenantSettings.model_validate({**self.as_json(), **accepted_changes(after)})

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any]) -> "TenantSettings":
        """Saved values (all of them, or only the changed ones) over the defaults."""
        return DEFAULTS.with_changes(saved)


SETTING_KEYS = frozenset(TenantSettings.model_fields)
DEFAULTS = TenantSettings()


def default_settings() -> dict[str, Any]:
    """A fresh copy of the defaults as JSON values (for state kept as a plain dict)."""
    return DEFAULTS.as_json()


def accepted_changes(after: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a logged change this model accepts, as JSON values.

    Keys that are not settings, and values the model refuses (each judged on its own: no
    setting depends on another), are left out: the change was validated when it was
    decided, so only a log written under older rules has any.
    """
    accepted: dict[str, Any] = {}
    for key, value in after.items():
        if key not in SETTING_KEYS:
            continue
        try:
            accepted[key] = TenantSettings.model_validate({key: value}).as_json()[key]
        except ValidationError:
            continue
    return accepted


def edit_settings(
    current: Mapping[str, Any], changes: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(before, after)`` of a change to ``current``; raises SettingsRefused when it is bad.

    ``after`` holds the changed settings as the model reads them (``"60"`` becomes ``60``),
    so what reaches the log is what every reader understands.
    """
    known = ", ".join(sorted(SETTING_KEYS))
    if not changes:  # an empty edit would be logged as a change of nothing
        raise SettingsRefused(f"name at least one setting to change: the settings are {known}")
    unknown = sorted(set(changes) - SETTING_KEYS)
    if unknown:
        raise SettingsRefused(f"cannot change {', '.join(unknown)}: the settings are {known}")
    if "allowed_origins" in changes:
        _check_sites(changes["allowed_origins"])
        if isinstance(changes["allowed_origins"], list | tuple):
            changes = {
                **changes,
                "allowed_origins": [
                    site_origin(site) if isinstance(site, str) else site
                    for site in changes["allowed_origins"]
                ],
            }
    saved = {k: v for k, v in current.items() if k in SETTING_KEYS}
    try:
        merged = TenantSettings.model_validate({**saved, **changes}).as_json()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsRefused(f"{where}: {reason}") from None
    if "business_hours" in changes:
        _check_no_overlap(merged["business_hours"])
    return {k: current.get(k) for k in changes}, {k: merged[k] for k in changes}


def _check_no_overlap(hours: Mapping[str, Any] | None) -> None:
    """A day's opening ranges do not overlap: 09:00-12:00 and 11:00-13:00 on one day is a
    typing mistake the console's "open now" would hide. Checked when a change is decided
    only (like the sites): hours already on the log stay readable as they were."""
    for day, ranges in (hours or {}).items():
        ordered = sorted((start, end) for start, end in ranges)  # "HH:MM" sorts as time
        for (start, end), (next_start, next_end) in pairwise(ordered):
            if next_start < end:
                raise SettingsRefused(
                    f"business_hours: {day}: {start}-{end} overlaps {next_start}-{next_end}"
                )


def site_origin(site: str) -> str:
    """A site as browsers send it in ``Origin``: scheme and host in lower case, no trailing
    slash. ``HTTPS://Shop.Example/`` was saved as typed and compared as it stood, so a
    widget on https://shop.example was refused although its site was listed."""
    site = site.strip().rstrip("/")
    scheme, separator, rest = site.partition("://")
    return f"{scheme.lower()}{separator}{rest.lower()}" if separator else site.lower()


def _valid_port(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - reading it checks it (0 to 65535)
    except ValueError:
        return False
    return True


def _check_sites(sites: Any) -> None:
    """Each allowed site must be an origin as browsers send it (``https://shop.example``,
    a port at most): anything else matches no page, and a list of such entries would shut
    the widget out of every site (a name without its scheme was the easy mistake). Checked
    when a change is decided only: a logged list stays readable as it was."""
    if not isinstance(sites, list | tuple):
        return  # the model's own check says what is wrong
    for site in sites:
        if not isinstance(site, str):
            continue
        parts = urlsplit(site.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or not _valid_port(parts)
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise SettingsRefused(
                f"allowed_origins: {site!r} is not a site address like https://www.example.com"
            )
