"""Before a service starts: wait for its broker (and store) to answer, or refuse to start.

A service started before RabbitMQ or MongoDB answers (a machine booting, compose starting
everything at once, a broker slow to come back) used to fail its first connect and exit; under
``relaydesk up`` a slow broker then looked like a crash loop and stopped the whole system. Now
the process waits: it tries again with jittered exponential backoff, logs
``waiting_for_broker`` / ``waiting_for_store`` with the attempt count, its ``/readyz`` answers
503 ``starting`` naming what it waits for, and it starts as soon as both answer.

What waiting cannot mend ends the start at once (:class:`Misconfigured`, exit code 2 with one
line, relaydesk/runtime.py): RabbitMQ refusing the user or password, a vhost that does not
exist or that the user may not use, MongoDB refusing its credentials or an unreadable
MongoDB URL. A URL of the wrong scheme is refused earlier, when the settings are read.

The check is a connection opened and closed (AMQP on every node given until one answers, the
stream protocol, a MongoDB ping); the service then connects its own way. A broker lost in the
moment between is the ordinary reconnect case (or a restart).
"""

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq.exceptions
import structlog
from pymongo.errors import ConfigurationError as MongoConfigurationError
from pymongo.errors import OperationFailure, PyMongoError
from rstream import Producer
from rstream.exceptions import AuthenticationFailure, SASLError, VirtualHostAccessFailure
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from relaydesk.bus.endpoint import StreamEndpoint, close_quietly, split_urls
from relaydesk.cancellation import raise_if_cancel_requested
from relaydesk.settings import Settings
from relaydesk.store import make_client

log = structlog.get_logger(__name__)

# The services whose start reads or writes MongoDB. The gateway starts without it (its
# store binds on first use); billing keeps no store.
NEEDS_STORE = frozenset({"agent", "history", "connectors"})
ATTEMPT_TIMEOUT_S = 5.0  # one connection attempt
FIRST_WAIT_S, LONGEST_WAIT_S = 0.5, 10.0  # between attempts: doubling, jittered, capped
MONGO_AUTH_FAILED = 18  # MongoDB's AuthenticationFailed

# Told what is awaited, the attempt and why it failed (Health.waiting: /readyz says it).
Progress = Callable[[str, int, str], None]


class Misconfigured(Exception):
    """A dependency refused this service for a reason waiting cannot mend. One line for an
    operator, naming what to fix, never a password."""


class Unreachable(Exception):
    """Not answering yet: try again."""


async def broker_answers(settings: Settings, service: str) -> None:
    """RabbitMQ answers on AMQP (some node of the list) and on the stream protocol."""
    failures = []
    for url in split_urls(settings.amqp_url):
        try:
            connection = await aio_pika.connect(
                url,
                timeout=ATTEMPT_TIMEOUT_S,
                client_properties={"connection_name": f"relaydesk-{service}-waiting"},
            )
        except aiormq.exceptions.ProbableAuthenticationError:
            raise Misconfigured(
                f"RabbitMQ refused the user {_user(url)!r}: wrong user or password "
                "(RELAYDESK_AMQP_URL)"
            ) from None
        except aiormq.exceptions.AMQPError as exc:
            if vhost_refused(exc):
                raise Misconfigured(refused_vhost(url)) from None
            failures.append(_why(exc))
            continue
        except (OSError, TimeoutError) as exc:
            failures.append(_why(exc))
            continue
        await connection.close()
        break
    else:
        raise Unreachable("AMQP: " + "; ".join(failures))
    await _stream_answers(StreamEndpoint.from_urls(settings.amqp_url, settings.stream_url))


async def _stream_answers(endpoint: StreamEndpoint) -> None:
    host, port = endpoint.address(0)

    async def closed(info: object) -> None:  # rstream calls it when the connection ends
        return None

    producer = Producer(host, port, **endpoint.client_options("relaydesk-waiting", closed))
    try:
        await asyncio.wait_for(producer.start(), ATTEMPT_TIMEOUT_S)
    except (AuthenticationFailure, SASLError):
        raise Misconfigured(
            f"RabbitMQ's stream protocol refused the user {endpoint.username!r}: wrong user or "
            "password (RELAYDESK_STREAM_URL, or RELAYDESK_AMQP_URL's)"
        ) from None
    except VirtualHostAccessFailure:
        raise Misconfigured(
            f"RabbitMQ's stream protocol refused the vhost {endpoint.vhost!r} to the user "
            f"{endpoint.username!r} (RELAYDESK_STREAM_URL, or RELAYDESK_AMQP_URL's)"
        ) from None
    except (OSError, TimeoutError, ConnectionError) as exc:
        raise Unreachable(
            f"stream protocol at {host}:{port} (is the rabbitmq_stream plugin enabled?): "
            + _why(exc)
        ) from None
    finally:
        await close_quietly(producer, ATTEMPT_TIMEOUT_S)


async def store_answers(settings: Settings) -> None:
    """MongoDB answers a ping (within its server selection timeout)."""
    try:
        client = make_client(settings.mongo_url or "")
    except MongoConfigurationError as exc:  # an unreadable URL (never printed: a password)
        raise Misconfigured(f"MONGO_URL cannot be used: {type(exc).__name__}") from None
    try:
        await client.admin.command("ping")
    except OperationFailure as exc:
        if exc.code == MONGO_AUTH_FAILED:
            raise Misconfigured("MongoDB refused the user or password (MONGO_URL)") from None
        raise Unreachable(_why(exc)) from None
    except PyMongoError as exc:
        raise Unreachable(_why(exc)) from None
    finally:
        await client.close()


async def wait_for_dependencies(service: str, settings: Settings, progress: Progress) -> None:
    """Return once the service's broker (and store) answer; raise :class:`Misconfigured`.

    Waits as long as it takes: the caller cancels it when asked to stop."""
    await _until("broker", lambda: broker_answers(settings, service), service, progress)
    if service in NEEDS_STORE and settings.mongo_url:
        await _until("store", lambda: store_answers(settings), service, progress)
    # A cancel lost by a library's wait_for is one still (relaydesk/cancellation.py).
    raise_if_cancel_requested()


async def _until(
    what: str, answers: Callable[[], Awaitable[None]], service: str, progress: Progress
) -> None:
    def waiting(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        why = str(failure)[:300] if failure else ""
        log.warning(
            f"waiting_for_{what}",
            service=service,
            attempt=state.attempt_number,
            error=why,
            retry_in_s=round(state.upcoming_sleep, 1),
        )
        progress(what, state.attempt_number, why)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Unreachable),
        wait=wait_exponential_jitter(multiplier=FIRST_WAIT_S, max=LONGEST_WAIT_S),
        before_sleep=waiting,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await answers()
            tries = attempt.retry_state.attempt_number
            if tries > 1:
                log.info(f"{what}_answers", service=service, attempts=tries)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__


def vhost_refused(exc: BaseException) -> bool:
    """RabbitMQ answered the connection's open of the vhost by closing it: 530 NOT_ALLOWED
    (``vhost x not found``, ``access to vhost 'x' refused for user 'y'``). aiormq reports
    that Connection.Close in place of Connection.OpenOk as an InvalidFrameError that names
    the frame only; any other close reaches it as ConnectionClosed with the reply code."""
    if isinstance(exc, aiormq.exceptions.ConnectionClosed):
        return exc.args[:1] == (530,)
    return isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in str(exc)


def refused_vhost(url: str) -> str:
    """The line saying RabbitMQ refused ``url``'s vhost (:func:`vhost_refused`), for a service
    and for the command line alike."""
    return (
        f"RabbitMQ refused the vhost {_vhost(url)!r} to the user {_user(url)!r}: "
        "it does not exist, or the user may not use it (RELAYDESK_AMQP_URL)"
    )


def _user(url: str) -> str:
    return unquote(urlsplit(url).username or "guest")


def _vhost(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:] if path.startswith("/") else path) or "/"
