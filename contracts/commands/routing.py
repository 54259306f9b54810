"""Commands agent_service sends to itself so timed decisions stay on the single-writer queue."""

from contracts.base import CommandData, Id


class ExpireAgentDisconnect(CommandData):
    """The disconnect grace of ``agent_id`` is over: requeue their chats unless they came back."""

    TYPE = "agent.expire_disconnect"
    SERVICE = "agent"
    agent_id: Id


MODELS = (ExpireAgentDisconnect,)
