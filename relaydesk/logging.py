"""Structured JSON logs (structlog) with correlation ids and secret redaction.

Log lines are events: a snake_case name plus keyword fields. Message bodies, tokens,
passwords and connector secrets are never logged; the redactor below is a second line
of defence for fields that slip through.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED_KEYS = frozenset(
    {
        "body",
        "text",
        "password",
        "password_hash",
        "token",
        "access_token",
        "refresh_token",
        "secret",
        "app_secret",
        "bot_token",
        "page_token",
        "authorization",
        "jwt",
        "sealed_config",
        "encoding_aes_key",
        "comment",
    }
)


def redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in REDACTED_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(
    *, level: str = "INFO", fmt: str = "json", service: str | None = None
) -> None:
    """Configure structlog once per process; ``service`` is bound to every line."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def bind_correlation(correlation_id: str | None) -> None:
    """Bind the correlation id for the current task (contextvars are task-local)."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
