"""Commands agent_service sends to itself so timed decisions stay on the single-writer queue."""

from contracts.base import CommandData, Id


class ExpireAgentDisconnect(CommandData):
    """The disconnect grace of ``agent_id`` is over: requeue their chats unless they came back."""

    TYPE = "agent.expire_disconnect"
    SERVICE = "agent"
    agent_id: Id


class ReleaseRemovedAgent(CommandData):
    """``agent_id`` was removed: their chats go back to the queue and their offers are taken
    back (a removed agent's console is signed out; nobody would answer those customers)."""

    TYPE = "agent.release_removed"
    SERVICE = "agent"
    agent_id: Id


MODELS = (ExpireAgentDisconnect, ReleaseRemovedAgent)
