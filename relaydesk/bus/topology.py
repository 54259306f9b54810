"""Declares every exchange and queue; idempotent, safe to run from every process."""

from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue

from contracts import topology as names

log = structlog.get_logger(__name__)

# The stream keeps the live log; the MongoDB archive keeps everything forever.
LOG_MAX_AGE = "30D"
LOG_SEGMENT_BYTES = 50_000_000


async def declare_core(channel: AbstractChannel) -> None:
    """Events exchange, the log stream bound ``#``, commands/queries exchanges, dead letters."""
    events = await channel.declare_exchange(
        names.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    await channel.declare_exchange(
        names.COMMANDS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    await channel.declare_exchange(
        names.QUERIES_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_exchange(
        names.DEAD_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(
        names.DEAD_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_queue.bind(dead)
    log = await _log_stream(channel)
    await log.bind(events, routing_key="#")


async def _log_stream(channel: AbstractChannel) -> AbstractQueue:
    """The log as it stands; created with the default retention when there is none.

    Looked up first and created only when missing: a stream keeps the arguments it was
    created with, and a declare naming others is refused (PRECONDITION_FAILED), so a log an
    operator created with a retention of their own (or changed by policy,
    docs/deployment.md) would stop every process from connecting.
    """
    try:
        return await channel.declare_queue(names.LOG_STREAM, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        pass
    await channel.reopen()  # a failed passive declare closes its channel
    return await channel.declare_queue(
        names.LOG_STREAM,
        durable=True,
        arguments={
            "x-queue-type": "stream",
            "x-max-age": LOG_MAX_AGE,
            "x-stream-max-segment-size-bytes": LOG_SEGMENT_BYTES,
        },
    )


async def declare_command_queue(channel: AbstractChannel, service: str) -> AbstractQueue:
    """A quorum queue with single active consumer: exactly one process decides at a time."""
    queue = await channel.declare_queue(
        names.command_queue(service),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-delivery-limit": names.COMMAND_DELIVERY_LIMIT,
            "x-dead-letter-exchange": names.DEAD_EXCHANGE,
        },
    )
    await queue.bind(names.COMMANDS_EXCHANGE, routing_key=service)
    return queue


async def declare_query_queue(
    channel: AbstractChannel, service: str, *, replicated: bool
) -> AbstractQueue:
    """Queries may be answered by any instance, so many consumers share one queue.

    On a cluster (``replicated``) a quorum queue, like the command queues: a classic queue
    lives on one node, and every query of the service would time out while that node is
    down. On one node a classic queue: nothing to replicate to, and a query round trip takes
    about a third of the time (measured here: p50 0.9 ms against 2.7 ms). A query queue of
    the other type, left by the other setup, is replaced: it only ever holds requests in
    flight, which their askers time out and ask again.
    """
    name = names.query_queue(service)
    arguments: dict[str, Any] = {"x-queue-type": "quorum" if replicated else "classic"}
    try:
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed:
        log.warning("query_queue_replaced", queue=name, now=arguments["x-queue-type"])
        channel = await _reopened(channel)
        await channel.queue_delete(name)
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
    await queue.bind(names.QUERIES_EXCHANGE, routing_key=service)
    return queue


async def _reopened(channel: AbstractChannel) -> AbstractChannel:
    """The broker closes a channel on a failed declaration; the same channel object reopens."""
    await channel.reopen()
    return channel
