"""Which message ids exist in which conversation: a ``read`` receipt must name a real one.

Learnt from the log the gateway tails (before the event is fanned out, so a client that
saw a message can always mark it read here); older messages, or ones forgotten when the
index is full, are looked up in history's last ``HISTORY_LOOKBACK`` messages of the
conversation — a read receipt for anything older says nothing useful.
"""

from collections import OrderedDict

from contracts.envelope import Envelope
from contracts.events.message import AttachmentSent, MessageSent, SystemNote
from contracts.queries.history import MessagesLastQuery
from relaydesk.bus.rpc import RpcClient

MESSAGE_TYPES = frozenset({MessageSent.TYPE, AttachmentSent.TYPE, SystemNote.TYPE})
CAPACITY = 200_000  # LIMIT: least recent first out; then history answers
HISTORY_LOOKBACK = 500


class MessageIndex:
    def __init__(self, rpc: RpcClient, *, timeout_s: float, capacity: int = CAPACITY) -> None:
        self._rpc = rpc
        self._timeout_s = timeout_s
        self._capacity = capacity
        self._ids: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def apply(self, event: Envelope) -> None:
        if event.type not in MESSAGE_TYPES:
            return
        conversation_id, message_id = (
            event.data.get("conversation_id"),
            event.data.get("message_id"),
        )
        if isinstance(conversation_id, str) and isinstance(message_id, str):
            self._ids[(event.tenant, conversation_id, message_id)] = None
            if len(self._ids) > self._capacity:
                self._ids.popitem(last=False)

    async def exists(self, tenant: str, conversation_id: str, message_id: str) -> bool:
        """Raises the bus's RemoteError/RequestTimeout when history cannot say."""
        if (tenant, conversation_id, message_id) in self._ids:
            return True
        recent = await self._rpc.ask(
            MessagesLastQuery(
                tenant=tenant, conversation_id=conversation_id, limit=HISTORY_LOOKBACK
            ),
            timeout=self._timeout_s,
        )
        return any(entry.event.data.get("message_id") == message_id for entry in recent)
