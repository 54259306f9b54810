"""The decider runtime: every service decides its commands the same way (docs/architecture.md).

One command goes through, in order:

1. **parse** the payload with the contracts' registry (a ``ContractError`` is raised, and
   the bus dead-letters the command as for any poison message);
2. **answer a redelivered command** from its recorded reply, without deciding again;
3. **prepare**: the service's own I/O and checks that feed the decision (a payment
   provider's confirmation, opening sealed secrets); it may reject;
4. **decide**: a pure handler reads the state, the command and what ``prepare`` found,
   and emits events or one rejection through a :class:`Decision`;
5. **fold** the events into the state (while deciding, or once published);
6. **publish** them, confirmed, in one batch;
7. **reply** with :class:`contracts.replies.CommandReply`.

A rejection is an event too (``command.rejected``), so after a restart a redelivered
command gets the same "no". Which events answer a command is declared on the event
classes (``DECIDED_BY``, see contracts/decisions.py); emitting a type the deciding service
has not declared raises :class:`UndeclaredDecision`, so no list of decision types can be
forgotten. Event ids derive from the command id: a command redelivered after a crash
between publishing and acking re-emits the same ids, and every reader's dedupe absorbs them.
"""

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

import structlog

from contracts.decisions import answered_command, command_service, decided_by
from contracts.envelope import Actor, Envelope
from contracts.errors import ContractError, UnknownType
from contracts.events.admin import CommandRejected
from contracts.ids import derive_event_id
from contracts.registry import EVENTS, parse_command_data
from contracts.replies import CommandReply
from relaydesk.metrics import COMMAND_DECIDE_SECONDS, COMMANDS_DECIDED, series

log = structlog.get_logger(__name__)

# Recorded replies kept per service. Redeliveries come within minutes; the oldest (in log
# order, so every replay forgets the same ones) are forgotten beyond this.
MAX_REPLIES = 200_000
DETAIL_MAX = 200  # command.rejected's ``detail`` is ShortText

S = TypeVar("S")
D = TypeVar("D", bound="Decision[Any]")
Publish = Callable[[Sequence[Envelope]], Awaitable[None]]
Handler = Callable[[D, Any], None]


class Rejected(Exception):
    """A decision's "no": a stable ``code`` (docs/protocol.md) and a message for people.

    Raised by a handler or a prepare step; the runtime puts it on the log as
    ``command.rejected`` and answers with it.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UndeclaredDecision(RuntimeError):
    """A decider emitted an event type it does not declare as ``DECIDED_BY`` itself."""


class DecisionError(RuntimeError):
    """A handler broke the shape of a decision (events and a rejection mixed)."""


def record_answer(
    replies: MutableMapping[str, CommandReply],
    event: Envelope,
    service: str,
    *,
    limit: int = MAX_REPLIES,
) -> None:
    """Record ``event`` as (part of) the answer to the command of ``service`` it answers.

    Called for every event a service folds, from the log or from its own decision, so a
    redelivered command finds its reply even after a restart. Idempotent by event id;
    beyond ``limit`` commands the oldest recorded one is forgotten.
    """
    command_id = answered_command(event, service)
    if command_id is None:
        return
    reply = replies.get(command_id) or CommandReply(ok=True)
    if event.id in reply.event_ids:
        return
    update: dict[str, Any] = {"event_ids": (*reply.event_ids, event.id)}
    if event.type == CommandRejected.TYPE:
        update.update(ok=False, code=event.data.get("reason"), message=event.data.get("detail"))
    replies[command_id] = reply.model_copy(update=update)
    while len(replies) > limit:
        del replies[next(iter(replies))]


def parsed_or_skipped(envelope: Envelope, position: int | None = None) -> Any | None:
    """A logged event's payload as its contract has it, or None (logged as skipped) for one
    that does not match: a fold that read its fields unchecked would raise on a missing one
    and stop following the log; skipped, it is never half-applied and the next one folds."""
    try:
        return EVENTS.parse_envelope(envelope)
    except ContractError as exc:
        log.warning(
            "fold_skipped_invalid_event",
            event_id=envelope.id,
            event_type=envelope.type,
            position=position,
            code=exc.code,
        )
        return None


def conversation_or_tenant_stream(data: Mapping[str, Any]) -> str:
    """``conv:<id>`` for data about a conversation, else the tenant's own stream."""
    conversation_id = data.get("conversation_id")
    return f"conv:{conversation_id}" if isinstance(conversation_id, str) else "tenant"


class Decision(Generic[S]):
    """One command's decision in the making: the events it emits, checked and built here.

    Args:
        service: the deciding service; every emitted type must be ``DECIDED_BY`` it.
        state: what the handlers read.
        command: the command envelope; its id seeds the event ids, its actor signs them.
        now: the decision time, every event's ``occurred_at``.
        fold: folds each event into ``state`` as it is emitted, so the rest of the
            decision sees it (routing); None leaves folding to the runtime, after the
            events are published.
        stream: the stream of an event from its data, when ``emit`` names none.
        actor: who signs the events (default: the command's actor).
        context: what the service's prepare step found for this command.

    Attributes:
        events: the emitted envelopes, in order.
        reply_data: extra data for the reply (e.g. ``already_closed``).
    """

    def __init__(
        self,
        service: str,
        state: S,
        command: Envelope,
        *,
        now: datetime,
        fold: Callable[[Envelope], None] | None = None,
        stream: Callable[[Mapping[str, Any]], str] = conversation_or_tenant_stream,
        actor: Actor | None = None,
        context: object = None,
    ) -> None:
        self.service = service
        self.state = state
        self.command = command
        self.now = now
        self.context = context
        self.events: list[Envelope] = []
        self.reply_data: dict[str, Any] = {}
        self.rejected = False
        self._fold = fold
        self._stream = stream
        self._actor = actor or command.actor

    @property
    def folds_as_emitted(self) -> bool:
        return self._fold is not None

    def emit(
        self,
        type_name: str,
        data: Mapping[str, Any],
        *,
        stream: str | None = None,
        actor: Actor | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        """Validate, build, fold (when folding as emitted) and keep one event.

        Raises:
            UndeclaredDecision: the type is not declared ``DECIDED_BY`` this service.
            DecisionError: the decision already rejected the command.
            ContractError: the data does not fit the event's model.
        """
        if decided_by(type_name) != self.service:
            raise UndeclaredDecision(
                f"{self.service} emitted {type_name!r}, whose DECIDED_BY is "
                f"{decided_by(type_name)!r}: declare it on the event class"
            )
        if self.rejected:
            raise DecisionError(f"{type_name!r} emitted after the command was rejected")
        return self._append(type_name, data, stream=stream, actor=actor, event_id=event_id)

    def reject(self, code: str, detail: str) -> None:
        """Say no, on the log (``command.rejected``): the decision's one and only event.

        Raises:
            DecisionError: events were already emitted (a rejection comes first or never).
        """
        if self.events:
            raise DecisionError(f"rejected ({code}) after {len(self.events)} event(s)")
        self._append(
            CommandRejected.TYPE,
            {
                "command_id": self.command.id,
                "command_type": self.command.type,
                "reason": code,
                "detail": detail[:DETAIL_MAX],
            },
            stream=conversation_or_tenant_stream(self.command.data),
            actor=None,
            event_id=None,
        )
        self.rejected = True

    def _append(
        self,
        type_name: str,
        data: Mapping[str, Any],
        *,
        stream: str | None,
        actor: Actor | None,
        event_id: str | None,
    ) -> Envelope:
        model = EVENTS.model_for(type_name)
        payload = EVENTS.parse(type_name, model.V, data).model_dump(mode="json")
        command = self.command
        envelope = Envelope(
            id=event_id or derive_event_id(command.tenant, command.id, str(len(self.events))),
            type=type_name,
            v=model.V,
            tenant=command.tenant,
            stream=stream or self._stream(data),
            actor=actor or self._actor,
            occurred_at=self.now,
            correlation_id=command.correlation_id or command.id,
            causation_id=command.id,
            data=payload,
        )
        if self._fold is not None:
            self._fold(envelope)
        self.events.append(envelope)
        return envelope


class Decider(ABC, Generic[D]):
    """What one service gives the runtime: its handlers, its state and its own steps.

    ``handlers`` maps each command type the service decides to a pure function of the
    :class:`Decision` and the parsed payload. The hooks default to doing nothing.
    """

    service: ClassVar[str]
    handlers: Mapping[str, Handler[D]]

    @property
    @abstractmethod
    def replies(self) -> MutableMapping[str, CommandReply]:
        """The replies recorded so far (by the state's fold of the log, and the runtime)."""

    @abstractmethod
    def decision(self, command: Envelope, context: object) -> D:
        """A fresh decision for ``command`` over the current state."""

    @abstractmethod
    def fold(self, event: Envelope) -> None:
        """Fold one of our own events once it is published (unless folded as emitted)."""

    async def refresh(self) -> None:
        """Bring the state up to the log before a command is answered (routing: sync)."""

    async def prepare(self, command: Envelope, payload: Any) -> object:
        """The I/O and checks the decision needs (may raise :class:`Rejected`)."""
        return None

    def discard(self) -> None:
        """The state may hold events the log does not (a failed decision): rebuild it."""

    async def after(self, events: Sequence[Envelope]) -> None:
        """Effects of published events outside the state (timers, webhook workers)."""

    def reply(self, command: Envelope, reply: CommandReply, decision: D | None) -> CommandReply:
        """The reply sent; ``decision`` is None when answering a redelivery from the record."""
        if decision is None or not decision.reply_data:
            return reply
        return reply.model_copy(update={"data": {**reply.data, **decision.reply_data}})


class DeciderRuntime(Generic[D]):
    """Decides one command at a time for ``decider``, publishing with ``publish``.

    Args:
        decider: the service's decider.
        publish: publishes a batch of events, returning once the broker confirmed them
            all (``Bus.publish_many``).

    Raises:
        ValueError: a handler is registered for a command type of another service.
    """

    def __init__(self, decider: Decider[D], publish: Publish) -> None:
        for type_name in decider.handlers:
            if command_service(type_name) != decider.service:
                raise ValueError(f"{decider.service} cannot decide {type_name!r}")
        self.decider = decider
        self._publish = publish

    @property
    def service(self) -> str:
        return self.decider.service

    async def handle(self, command: Envelope) -> CommandReply:
        """Decide ``command``: a redelivery gets the same answer; events are published first."""
        decider = self.decider
        await decider.refresh()
        payload = parse_command_data(command)
        handler = decider.handlers.get(command.type)
        if handler is None:
            raise UnknownType(
                f"{self.service} does not decide {command.type!r}", type_name=command.type
            )
        recorded = decider.replies.get(command.id)
        if recorded is not None:
            log.info("command_redelivered", command_type=command.type, command_id=command.id)
            series(COMMANDS_DECIDED, self.service, command.type, "redelivered").inc()
            return decider.reply(command, recorded, None)
        started = time.perf_counter()
        decision = await self._decided(command, payload, handler)
        if not decision.folds_as_emitted:
            for event in decision.events:
                decider.fold(event)
        for event in decision.events:
            record_answer(decider.replies, event, self.service)
        await decider.after(decision.events)
        reply = decider.replies.get(command.id) or CommandReply(ok=True)
        series(COMMAND_DECIDE_SECONDS, self.service, command.type).observe(
            time.perf_counter() - started
        )
        outcome = "accepted" if reply.ok else "rejected"
        series(COMMANDS_DECIDED, self.service, command.type, outcome).inc()
        log.info(
            "command_decided",
            service=self.service,
            command_type=command.type,
            ok=reply.ok,
            code=reply.code,
            events=len(decision.events),
        )
        return decider.reply(command, reply, decision)

    async def _decided(self, command: Envelope, payload: Any, handler: Handler[D]) -> D:
        """Prepare, decide and publish; a failure after folding asks for a rebuild."""
        try:
            context = await self.decider.prepare(command, payload)
        except Rejected as no:
            decision = self.decider.decision(command, None)
            decision.reject(no.code, no.message)
        else:
            decision = self.decider.decision(command, context)
        try:
            if not decision.rejected:
                try:
                    handler(decision, payload)
                except Rejected as no:
                    decision.reject(no.code, no.message)
            if decision.events:
                await self._publish(decision.events)
        except BaseException:
            if decision.folds_as_emitted and decision.events:
                self.decider.discard()
            raise
        return decision


def utc_now() -> datetime:
    """The default clock of deciders."""
    return datetime.now(UTC)
