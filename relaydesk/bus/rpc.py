"""Request/reply over RabbitMQ's direct reply-to, for queries and commands.

Queries (design decision 4) go to ``relaydesk.queries`` → a shared queue per service.
Commands (design decision 3) go to ``relaydesk.commands`` → a quorum queue with single
active consumer per service; the handler decides, publishes its events, replies, and only
then acks. A command that cannot be parsed is dead-lettered with a reason and answered
with an error; a handler that crashes is redelivered up to the delivery limit.
"""

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aio_pika
import aiormq
import orjson
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import BaseModel, ValidationError

from contracts import topology as names
from contracts.envelope import Envelope
from contracts.errors import ContractError
from contracts.queries import Query
from contracts.replies import CommandReply
from relaydesk.bus.codec import decode_envelope, encode_envelope
from relaydesk.bus.connection import Bus
from relaydesk.bus.topology import declare_command_queue, declare_query_queue
from relaydesk.logging import bind_correlation
from relaydesk.metrics import REQUEST_SECONDS, REQUESTS, series
from relaydesk.tracing import inject, span

log = structlog.get_logger(__name__)

REPLY_TO = "amq.rabbitmq.reply-to"
# What aio-pika raises while its connection is down or being restored: "Connection was not
# opened" (RuntimeError), a closed channel (aiormq's ChannelInvalidStateError, a
# RuntimeError too), a connection error.
BROKER_DOWN = (RuntimeError, ConnectionError, aiormq.exceptions.AMQPError)
SEND_RETRY_FIRST_S = 0.05
SEND_RETRY_MAX_S = 0.5
R = TypeVar("R")


class RequestTimeout(TimeoutError):
    """No reply within the timeout: the owner is down or overloaded."""


class RemoteError(RuntimeError):
    """The owner answered with an error; ``code`` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


QueryHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
CommandHandler = Callable[[Envelope], Awaitable[CommandReply]]


class RpcClient:
    """Sends requests and awaits replies on the pseudo-queue ``amq.rabbitmq.reply-to``."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._channel: AbstractChannel | None = None
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AbstractChannel:
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._bus.channel()
                reply_queue = await self._channel.get_queue(REPLY_TO, ensure=False)
                await reply_queue.consume(self._on_reply, no_ack=True)
            return self._channel

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._waiting.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def _timed_call(
        self,
        kind: str,
        name: str,
        exchange_name: str,
        routing_key: str,
        message: aio_pika.Message,
        timeout: float,
    ) -> tuple[bytes, float]:
        """``_call``, and how long it took; a timeout is counted here (relaydesk/metrics.py)."""
        started = asyncio.get_running_loop().time()
        try:
            body = await self._call(exchange_name, routing_key, message, timeout)
        except RequestTimeout:
            series(REQUESTS, kind, routing_key, name, "timeout").inc()
            raise
        return body, asyncio.get_running_loop().time() - started

    async def _call(
        self, exchange_name: str, routing_key: str, message: aio_pika.Message, timeout: float
    ) -> bytes:
        # One deadline for everything: a channel being restored after a broker outage must
        # not hang the caller (an HTTP request) past its timeout.
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        assert message.correlation_id is not None
        self._waiting[message.correlation_id] = future
        try:
            async with asyncio.timeout(timeout):
                await self._send(exchange_name, routing_key, message)
                return await future
        except TimeoutError:
            await (
                self._reset()
            )  # the reply consumer may not have survived a reconnect: start afresh
            raise RequestTimeout(f"no reply from {routing_key} within {timeout}s") from None
        finally:
            self._waiting.pop(message.correlation_id, None)

    async def _send(self, exchange_name: str, routing_key: str, message: aio_pika.Message) -> None:
        """Publish the request; while the broker connection is down, again and again until
        the caller's deadline. aio-pika restores the connection every second; without the
        retries a request in that window failed at once with "Connection was not opened"
        (a 500 from the API), where a few hundred milliseconds later it would be answered.
        A resent command is the same command (its id): its owner decides it once."""
        backoff = SEND_RETRY_FIRST_S
        while True:
            try:
                channel = await self._ensure()
                exchange = await channel.get_exchange(exchange_name, ensure=False)
                await exchange.publish(message, routing_key=routing_key, mandatory=False)
                return
            except BROKER_DOWN as exc:
                log.info("request_waits_for_broker", error=type(exc).__name__)
                await self._reset()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, SEND_RETRY_MAX_S)

    async def _reset(self) -> None:
        async with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 2)

    async def query(
        self, service: str, name: str, params: dict[str, Any], *, timeout: float = 5.0
    ) -> Any:
        """Ask ``service`` the query ``name``; returns its JSON answer or raises RemoteError."""
        message = aio_pika.Message(
            body=orjson.dumps({"name": name, "params": params}),
            correlation_id=uuid.uuid4().hex,
            reply_to=REPLY_TO,
            content_type="application/json",
            expiration=timeout,
            headers=_traced({}) or None,  # no header table at all while tracing is off
        )
        raw, took = await self._timed_call(
            "query", name, names.QUERIES_EXCHANGE, service, message, timeout
        )
        answer = orjson.loads(raw)
        _measured("query", service, name, took, "error" if "error" in answer else "ok")
        if "error" in answer:
            raise RemoteError(answer["error"]["code"], answer["error"]["message"])
        return answer["result"]

    async def ask(self, query: Query[R], *, timeout: float = 5.0) -> R:
        """Ask ``query`` of its service; its answer validated into the query's answer type.

        Raises RemoteError when the service refuses (``not_found``, ``bad_request``, …),
        RequestTimeout when nobody answers, and pydantic's ValidationError when the answer
        does not fit the contract (a bug on one side, never the caller's input).
        """
        answer = await self.query(query.SERVICE, query.NAME, query.params(), timeout=timeout)
        return cast(R, type(query).parse_answer(answer))

    async def command(
        self, service: str, envelope: Envelope, *, timeout: float = 5.0
    ) -> CommandReply:
        """Send a command to its single writer and wait for the decision."""
        message = encode_envelope(envelope, reply_to=REPLY_TO)
        message.correlation_id = uuid.uuid4().hex
        _traced(message.headers)
        raw, took = await self._timed_call(
            "command", envelope.type, names.COMMANDS_EXCHANGE, service, message, timeout
        )
        reply = CommandReply.model_validate_json(raw)
        _measured("command", service, envelope.type, took, "ok" if reply.ok else "rejected")
        return reply


def _measured(kind: str, target: str, name: str, took: float, outcome: str) -> None:
    series(REQUEST_SECONDS, kind, target, name).observe(took)
    series(REQUESTS, kind, target, name, outcome).inc()


async def _reply(channel: AbstractChannel, request: AbstractIncomingMessage, body: bytes) -> None:
    if request.reply_to:
        await channel.default_exchange.publish(
            aio_pika.Message(
                body=body, correlation_id=request.correlation_id, content_type="application/json"
            ),
            routing_key=request.reply_to,
            # RabbitMQ returns mandatory publishes to direct reply-to even when delivered
            mandatory=False,
        )


async def serve_queries(
    bus: Bus, service: str, handler: QueryHandler, *, prefetch: int = 50
) -> AbstractChannel:
    """Answer queries for ``service``. Errors become ``{"error": {code, message}}`` replies."""
    channel = await bus.channel(prefetch=prefetch)
    queue = await declare_query_queue(channel, service, replicated=bus.clustered)

    async def on_message(message: AbstractIncomingMessage) -> None:
        async with message.process(ignore_processed=True):
            try:
                request = orjson.loads(message.body)
                name = str(request["name"])
                with span(f"query {name}", parent=message.headers, kind="server"):
                    result = await handler(name, dict(request.get("params") or {}))
                body = orjson.dumps({"result": result}, default=_json_default)
            except RemoteError as exc:
                body = orjson.dumps({"error": {"code": exc.code, "message": exc.message}})
            except (ContractError, ValidationError, KeyError, TypeError, ValueError) as exc:
                body = orjson.dumps({"error": {"code": "bad_request", "message": str(exc)[:300]}})
            except Exception as exc:  # answer instead of leaving the caller to time out
                log.exception("query_failed", service=service)
                body = orjson.dumps({"error": {"code": "internal", "message": type(exc).__name__}})
            await _reply(channel, message, body)

    await queue.consume(on_message)
    return channel


async def serve_commands(bus: Bus, service: str, handler: CommandHandler) -> AbstractChannel:
    """Be the single active consumer deciding ``service``'s commands, one at a time."""
    channel = await bus.channel(prefetch=1)  # one at a time: decisions must be serial
    queue = await declare_command_queue(channel, service)

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            envelope = decode_envelope(message.body)
        except (ValueError, ValidationError) as exc:
            await bus.dead_letter(
                message.body, reason=f"undecodable command: {exc}"[:500], source=service
            )
            await _reply(
                channel,
                message,
                CommandReply(ok=False, code="invalid_payload", message=str(exc)[:300])
                .model_dump_json()
                .encode(),
            )
            await message.ack()
            return
        bind_correlation(envelope.correlation_id or envelope.id)
        try:
            with span(
                f"command {envelope.type}",
                parent=message.headers,
                kind="server",
                attributes={"relaydesk.correlation_id": envelope.correlation_id or envelope.id},
            ):
                reply = await handler(envelope)
        except ContractError as exc:
            await bus.dead_letter(message.body, reason=f"{exc.code}: {exc}"[:500], source=service)
            reply = CommandReply(ok=False, code=exc.code, message=str(exc)[:300])
        except Exception:
            log.exception("command_failed", command_type=envelope.type)
            await message.nack(
                requeue=True
            )  # redelivered until x-delivery-limit, then dead-lettered
            return
        await _reply(channel, message, reply.model_dump_json().encode())
        await message.ack()

    await queue.consume(on_message)
    return channel


def _traced(headers: dict[str, Any]) -> dict[str, Any]:
    """``headers`` with the current trace context (nothing added while tracing is off)."""
    inject(headers)
    return headers


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
