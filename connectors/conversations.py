"""Which conversations are a connector's: folded from the log, so web ones cost no lookup.

The follower reads every event of every tenant; an agent's reply, a typing notice or a
close concerns the connectors only when the conversation came in through a platform.
A conversation is requested on the log with its ``channel`` before anything else happens
in it, and the follower folds the whole log from its start, so this set knows every
connector conversation before any event that needs it; asking the store (a database round
trip) is left for those.
"""

from typing import get_args

from contracts.envelope import LoggedEvent
from contracts.events.connector import Platform
from contracts.events.conversation import ConversationRequested

PLATFORM_CHANNELS = frozenset(get_args(Platform))


class ConnectorConversations:
    def __init__(self) -> None:
        self._ids: set[tuple[str, str]] = set()

    def load(self, ids: list[tuple[str, str]]) -> None:
        self._ids.update(ids)

    def apply(self, event: LoggedEvent) -> None:
        env = event.envelope
        if env.type == ConversationRequested.TYPE and env.data.get("channel") in PLATFORM_CHANNELS:
            self._ids.add((env.tenant, str(env.data.get("conversation_id"))))

    def ids(self) -> list[list[str]]:
        return [[tenant, conversation_id] for tenant, conversation_id in sorted(self._ids)]

    def holds(self, tenant: str, conversation_id: str) -> bool:
        return (tenant, conversation_id) in self._ids
