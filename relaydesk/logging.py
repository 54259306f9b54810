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
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(shared, renderer, level)
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def _route_standard_logging(shared: list[Any], renderer: Any, level: str) -> None:
    """Libraries' own logs (aio-pika, aiormq, uvicorn, pymongo…) as the same one-line
    events: left to the standard library they came out as plain text, tracebacks over many
    lines, in the middle of the JSON stream (during a broker outage, aiormq's
    "Unexpected connection close"). Their message becomes the event, the logger its field."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    root = logging.getLogger()
    # Configured again (a command run in-process after another): ours is replaced, anyone
    # else's handler (a test runner's capture) stays.
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StructuredHandler)]
    handler = _StructuredHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    # Warnings and errors only: at INFO httpx logs every request's URL, and a Telegram URL
    # holds its bot's token.
    root.setLevel(max(logging.getLevelName(level.upper()), logging.WARNING))


class _StructuredHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The standard library's records, rendered by structlog (``configure_logging``), on
    whatever ``sys.stderr`` is when each is written: one taken at configuration may be
    closed since (a test runner swaps it per test; structlog's own lines look it up too)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        """``StreamHandler.__init__`` sets one: the current one is used instead."""


def bind_correlation(correlation_id: str | None) -> None:
    """Bind the correlation id for the current task (contextvars are task-local)."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
