"""How every ``relaydesk`` command ends: its exit code, and one line when it cannot do its job.

Exit codes (README "Exit codes"):

- 0: done; a check found nothing wrong.
- 1: a check found a problem (``audit verify`` a broken link, ``replay --projection`` a
  difference, ``reseal-connectors`` a connector it could not re-seal), or the selection of
  ``replay`` / ``export`` (the conversation of ``audit verify``) matched no event (as
  ``grep`` does).
- 2: the command could not do its job: a usage error (an unknown option, a missing argument,
  a tenant or agent that does not exist, a command the service refused), a configuration
  error (a setting that cannot be read, a missing secret), or a dependency it cannot reach
  (RabbitMQ, MongoDB, a service that does not answer). Always one line on stderr naming what
  is wrong, never a traceback, never a password.
"""

import asyncio
import logging
import os
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
from aiormq.exceptions import AMQPConnectionError, AMQPError, ProbableAuthenticationError
from pymongo.errors import ConnectionFailure

from relaydesk.bus.endpoint import split_urls
from relaydesk.bus.rpc import RequestTimeout
from relaydesk.dependencies import refused_vhost, vhost_refused
from relaydesk.logging import configure_logging
from relaydesk.runtime import EXIT_CONFIG
from relaydesk.settings import ConfigurationError, Settings, load_settings

# One code for usage, configuration and unreachable dependencies, the services' included.
EXIT_UNUSABLE = EXIT_CONFIG

T = TypeVar("T")

_OS_ERROR = re.compile(r"\[Errno (-?\d+)\] ([^(,]+)")


class CommandFailed(click.ClickException):
    """The command cannot do its job (exit 2); ``message`` is the one line saying why."""

    exit_code = EXIT_UNUSABLE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # The command it ended, e.g. ``relaydesk admin list-agents``: its context is gone by
        # the time the error reaches the top.
        context = click.get_current_context(silent=True)
        self.where = context.command_path if context else None


def without_password(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (it is printed, and logs are kept)."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url or "")


def settings_of(ctx: click.Context) -> Settings:
    """The settings a test handed in (``main(argv, settings)``), else the environment's.

    Read only when a command runs, never for ``--help`` or completion."""
    if isinstance(ctx.obj, Settings):
        return ctx.obj
    try:
        ctx.obj = load_settings()
    except ConfigurationError as exc:
        raise CommandFailed(f"configuration: {exc}") from None
    assert isinstance(ctx.obj, Settings)
    return ctx.obj


def tool_logging(ctx: click.Context, name: str) -> None:
    """Tools print their results on stdout; their logs go to stderr, warnings only.

    Run in-process with settings handed in (tests), the host process keeps its own logging."""
    if isinstance(ctx.find_root().obj, Settings):
        return
    configure_logging(level="WARNING", fmt="console", service=name)
    # aiormq logs every failed connection attempt at ERROR before raising it; the command
    # reports the same failure in its one line.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)


def run_async(work: Coroutine[Any, Any, T], settings: Settings) -> T:
    """Run a tool's coroutine; an unreachable dependency, or one refusing the command's
    credentials or vhost, becomes one line and exit 2."""
    try:
        return asyncio.run(work)
    except ProbableAuthenticationError:
        raise _rabbitmq(settings, "user or password refused") from None
    except AMQPError as exc:
        # aiormq reports a refused vhost as a frame it did not expect, not as a failed
        # connection: waiting or retrying cannot mend it, the URL must change
        if vhost_refused(exc):
            raise CommandFailed(refused_vhost(split_urls(settings.amqp_url)[0])) from None
        if isinstance(exc, AMQPConnectionError):
            raise _rabbitmq(settings, _reason(exc)) from None
        raise
    except BrokenPipeError:  # stdout's reader left (`| head`): tools/cli.py ends quietly
        raise
    except ConnectionError as exc:
        # relaydesk.bus names the stream endpoint it could not reach in its own message
        raise CommandFailed(_first_line(exc)) from None
    except ConnectionFailure as exc:
        raise CommandFailed(
            f"cannot reach MongoDB at {without_password(settings.mongo_url)} ({_reason(exc)})"
        ) from None
    except RequestTimeout as exc:
        raise CommandFailed(
            f"{exc}: is `relaydesk up` (or that service) running on this broker?"
        ) from None
    except TimeoutError:  # the broker accepted the connection but did not finish opening it
        raise _rabbitmq(settings, "no answer within the connection timeout") from None


def _rabbitmq(settings: Settings, why: str) -> CommandFailed:
    return CommandFailed(f"cannot reach RabbitMQ at {without_password(settings.amqp_url)} ({why})")


def _reason(exc: BaseException) -> str:
    """A short reason: the operating system's words (``connection refused``), else the first
    line of the error."""
    found = _OS_ERROR.search(str(exc))
    if found:  # a negative number is a resolver error, whose text is its own
        number = int(found.group(1))
        return (os.strerror(number) if number > 0 else found.group(2).strip()).lower()
    if exc.args and isinstance(exc.args[0], int) and exc.args[0] > 0:  # aiormq: (errno, text)
        return os.strerror(exc.args[0]).lower()
    return _first_line(exc)[:200]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
