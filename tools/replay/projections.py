"""Rebuild a projection from replayed events and compare it with the live one.

Each function takes the replayed events (log order) and returns the differences found,
as readable lines; an empty list means the live projection is exactly what the log says.
"""

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from agent_service import fold as routing_fold
from agent_service.state import RoutingState
from billing_service.ledger import Ledger
from contracts.envelope import LoggedEvent
from contracts.events.system import LogMarker
from contracts.plans import PlanCatalogue
from contracts.queries.agent import ConversationStateQuery
from contracts.queries.billing import AccountQuery
from history_service.documents import HISTORY_DOCUMENTS, ConversationView
from history_service.read_models import ReadModels
from relaydesk.bus import Bus, RemoteError, RequestTimeout
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from relaydesk.store import Row, bind_documents, bound, database, make_client
from tools.replay.sources import Touched

# Every stored field of a conversation row but its key: the visitor's name, the topic, the
# department were not compared, and a live row edited there passed as identical.
NOT_COMPARED = frozenset({"id", "revision_id"})
BATCH = 500


async def _batches(events: AsyncIterator[LoggedEvent]) -> AsyncIterator[list[LoggedEvent]]:
    batch: list[LoggedEvent] = []
    async for event in events:
        if event.envelope.type == LogMarker.TYPE:
            continue
        batch.append(event)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Comparison:
    """``differences``: where the live projection disagrees with the log. ``moved_on``: what
    the live system changed after the last replayed event (the log went on while the replay
    read it; conversations as ``tenant|id``, accounts as their tenant), left out of the
    comparison: each would have shown as a difference although nothing is wrong (run the
    replay again, or on a quiet system, to include them). ``unit``: what ``moved_on`` counts.
    """

    differences: list[str] = field(default_factory=list)
    moved_on: list[str] = field(default_factory=list)
    compared: int = 0  # conversations (or accounts) compared field by field
    unit: str = "conversation"


class LogHead:
    """Whether the log holds a position a live row names (``log_head``: the head now).

    The head is asked again whenever a row names a position past the one last known: the
    rows are read one after another while the system runs on, so a head asked for an
    earlier row is older than the row read now (under load the first such head made every
    later row look "past the log's head"). Without ``log_head`` every position is held.
    """

    def __init__(self, log_head: Callable[[], Awaitable[int | None]] | None) -> None:
        self._ask = log_head
        self.known: int | None = None  # the head as last asked

    async def holds(self, position: int) -> bool:
        if self._ask is None:
            return True
        if self.known is None or position > self.known:
            self.known = await self._ask()
        return self.known is None or position <= self.known  # no head to judge by: moved on


# Which conversations and tenants the log holds events for after a position, up to its head
# now (tools/replay/sources.py ``touched_after``).
TouchedAfter = Callable[[int], Awaitable[Touched]]


class ScratchDatabaseRefused(Exception):
    """The scratch database named is the live one or exists already: the replay fills its
    scratch database and drops it afterwards, which would mix the rebuilt read models with
    what it holds and then delete all of it (the live archive, read models and positions)."""


async def _claim_scratch(client: AsyncMongoClient[Row], scratch_db: str, live_db: str) -> None:
    """Refuse a scratch database this replay did not make. MongoDB refuses two names that
    differ only in case, so they are compared as one."""
    wanted = scratch_db.casefold()
    if wanted == live_db.casefold():
        raise ScratchDatabaseRefused(
            f"--scratch-db {scratch_db!r} is the live database (RELAYDESK_MONGO_DB): the"
            " replay drops its scratch database afterwards; name one that does not exist"
        )
    if any(name.casefold() == wanted for name in await client.list_database_names()):
        raise ScratchDatabaseRefused(
            f"--scratch-db {scratch_db!r} already exists: the replay fills a new database and"
            " drops it afterwards; name one that does not exist"
        )


async def history(
    settings: Settings,
    events: AsyncIterator[LoggedEvent],
    scratch_db: str,
    *,
    keep: bool = False,
    log_head: Callable[[], Awaitable[int | None]] | None = None,
    scope: Mapping[str, str] | None = None,
) -> Comparison:
    """Fold into read models in a scratch database; compare conversations with the live ones.

    With ``scope`` (a filter of the read model: the replay read every event of the
    conversations it admits, no time bounds), a live row in scope that the log never made is
    a difference too.

    The scratch database must not exist (:class:`ScratchDatabaseRefused`); it is dropped
    afterwards unless ``keep``. A live conversation whose ``last_position`` is past the last
    replayed event has moved on since; it is not compared, unless that position is past the
    log's head as well (``log_head``, asked only then): no event is there, so the live row is
    wrong.
    """
    client = make_client(settings.mongo_url or "")
    try:
        await _claim_scratch(client, scratch_db, settings.mongo_db)
        try:
            return await _compare_history(
                database(client, scratch_db),
                database(client, settings.mongo_db),
                events,
                LogHead(log_head),
                scope,
            )
        finally:
            if not keep:
                await client.drop_database(scratch_db)
    finally:
        await client.close()


async def _compare_history(
    scratch: AsyncDatabase[Row],
    live: AsyncDatabase[Row],
    events: AsyncIterator[LoggedEvent],
    heads: LogHead,
    scope: Mapping[str, str] | None,
) -> Comparison:
    await bind_documents(scratch, HISTORY_DOCUMENTS)
    models = ReadModels(scratch)
    found = Comparison()
    replayed_to: int | None = None  # the last replayed event's position
    async for batch in _batches(events):
        await models.apply(batch)
        replayed_to = batch[-1].position
    live_conversations = await bound(live, ConversationView)
    rebuilt_ids: set[str] = set()
    async for rebuilt in (await bound(scratch, ConversationView)).find_all():
        rebuilt_ids.add(rebuilt.id)
        current = await live_conversations.get(rebuilt.id)
        if current is None:
            found.differences.append(
                f"conversation {rebuilt.id}: in the log, missing from the live read model"
            )
            continue
        if replayed_to is not None and current.last_position > replayed_to:
            if await heads.holds(current.last_position):
                found.moved_on.append(rebuilt.id)
                continue
            found.differences.append(
                f"conversation {rebuilt.id}: last_position live {current.last_position}"
                f" is past the log's head {heads.known}"
            )
            continue
        found.compared += 1
        now_fields = current.model_dump(exclude=set(NOT_COMPARED))
        for name, replayed in rebuilt.model_dump(exclude=set(NOT_COMPARED)).items():
            now = now_fields.get(name)
            if _normal(now) != _normal(replayed):
                found.differences.append(
                    f"conversation {rebuilt.id}: {name} live {now!r} != replayed {replayed!r}"
                )
    if scope is not None:
        await _live_only(live_conversations, rebuilt_ids, replayed_to, heads, scope, found)
    return found


async def _live_only(
    live_conversations: type[ConversationView],
    rebuilt_ids: set[str],
    replayed_to: int | None,
    heads: LogHead,
    scope: Mapping[str, str],
    found: Comparison,
) -> None:
    """Live rows in scope the replay did not make: begun after the last replayed event
    (moved on), or made by no event of the log (a difference)."""
    async for current in live_conversations.find(dict(scope)):
        if current.id in rebuilt_ids:
            continue
        begun_later = replayed_to is None or current.last_position > replayed_to
        if begun_later and await heads.holds(current.last_position):
            found.moved_on.append(current.id)
            continue
        found.differences.append(
            f"conversation {current.id}: in the live read model, made by no event of the log"
        )


async def routing(
    settings: Settings,
    events: AsyncIterator[LoggedEvent],
    *,
    touched_after: TouchedAfter | None = None,
) -> Comparison:
    """Fold the routing state from the log; compare each conversation with agent_service's.

    A conversation that differs and has events in the log after the last replayed one
    (``touched_after``, asked only then and after every live answer) has moved on since.
    """
    state = RoutingState()
    replayed_to: int | None = None
    async for batch in _batches(events):
        for event in batch:
            routing_fold.apply(state, event.envelope)
        replayed_to = batch[-1].position
    found = Comparison()
    differing = await _ask_each(
        settings, state, lambda tenant, c: {"status": c.status, "agent_id": c.agent_id}
    )
    found.compared = sum(len(tenant.conversations) for tenant in state.tenants.values())
    await _set_aside_moved_on(
        found, differing, replayed_to, touched_after, lambda touched: touched.conversations
    )
    return found


async def billing(
    settings: Settings,
    events: AsyncIterator[LoggedEvent],
    *,
    touched_after: TouchedAfter | None = None,
) -> Comparison:
    """Fold the billing ledger from the log; compare usage and invoices with billing_service's.

    An account that differs and whose tenant has events in the log after the last replayed
    one (``touched_after``) has moved on since. The ledger's own consistency (``Ledger.
    differences``) is always a difference.
    """
    ledger = Ledger(PlanCatalogue.load(settings.plans_file))
    replayed_to: int | None = None
    async for batch in _batches(events):
        for event in batch:
            ledger.apply(event.envelope, event.position)
        replayed_to = batch[-1].position
    found = Comparison(differences=ledger.differences(), unit="account")
    differing: defaultdict[str, list[str]] = defaultdict(list)  # by tenant, only what differs
    bus = await Bus.from_settings(settings, service="replay").connect()
    try:
        rpc = RpcClient(bus)
        for state in ledger.tenants.values():
            if state.mode != "saas":
                continue
            found.compared += 1
            try:
                live = await rpc.ask(
                    AccountQuery(tenant=state.tenant), timeout=settings.request_timeout_s
                )
            except (RemoteError, RequestTimeout) as exc:
                found.differences.append(f"{state.tenant}: live billing unavailable ({exc})")
                continue
            replayed = {
                i["number"]: (i["total_cents"], i["lines"]) for i in state.invoices.values()
            }
            current = {
                i.number: (i.total_cents, [line.model_dump() for line in i.lines])
                for i in live.invoices
            }
            if replayed != current:
                differing[state.tenant].append(
                    f"{state.tenant}: invoices live {sorted(current)}"
                    f" != replayed {sorted(replayed)} (or their lines differ)"
                )
            usage = state.usage.get(live.period)
            if usage is not None and usage.public()["conversations"] != live.usage.conversations:
                differing[state.tenant].append(
                    f"{state.tenant}: conversations this period"
                    f" live {live.usage.conversations}"
                    f" != replayed {usage.public()['conversations']}"
                )
    finally:
        await bus.close()
    await _set_aside_moved_on(
        found, differing, replayed_to, touched_after, lambda touched: touched.tenants
    )
    return found


async def _set_aside_moved_on(
    found: Comparison,
    differing: dict[str, list[str]],
    replayed_to: int | None,
    touched_after: TouchedAfter | None,
    keys: Callable[[Touched], set[str]],
) -> None:
    """Add each key's differences to ``found``, or the key to ``found.moved_on`` when the log
    has events for it after the last replayed one. The log is read after the live answers,
    so whatever the live side had folded when it answered is in what is read."""
    moved: set[str] = set()
    if differing and touched_after is not None and replayed_to is not None:
        moved = keys(await touched_after(replayed_to)) & differing.keys()
    for key, lines in differing.items():
        if key in moved:
            found.moved_on.append(key)
            found.compared -= 1
        else:
            found.differences += lines


async def _ask_each(
    settings: Settings, state: RoutingState, view: Callable[[str, Any], dict[str, Any]]
) -> dict[str, list[str]]:
    """Each replayed conversation's ``view`` against agent_service's ``conversation.state``:
    the differences of those that differ, by conversation (``tenant|id``)."""
    bus = await Bus.from_settings(settings, service="replay").connect()
    differing: defaultdict[str, list[str]] = defaultdict(list)
    try:
        rpc = RpcClient(bus)
        for tenant in state.tenants.values():
            for conversation in tenant.conversations.values():
                expected = view(tenant.tenant_id, conversation)
                key = f"{tenant.tenant_id}|{conversation.conversation_id}"
                try:
                    answer = await rpc.ask(
                        ConversationStateQuery(
                            tenant=tenant.tenant_id, conversation_id=conversation.conversation_id
                        ),
                        timeout=settings.request_timeout_s,
                    )
                except RemoteError as exc:
                    differing[key].append(
                        f"{tenant.tenant_id}/{conversation.conversation_id}:"
                        f" live agent says {exc.code}"
                    )
                    continue
                live = answer.model_dump()
                for name, value in expected.items():
                    if live.get(name) != value:
                        differing[key].append(
                            f"{tenant.tenant_id}/{conversation.conversation_id}: {name}"
                            f" live {live.get(name)!r} != replayed {value!r}"
                        )
    finally:
        await bus.close()
    return differing


def _normal(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
