"""Read models for the console and the widget: ``conversations`` and ``messages``.

Idempotent by construction: messages are keyed by event id; a conversation update
applies only when its position is newer than the conversation's ``last_position``, so
replaying a batch after a crash changes nothing.
"""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts.envelope import LoggedEvent

MESSAGE_TYPES = frozenset({"message.sent", "message.attachment_sent", "message.system"})
STATUS_BY_TYPE = {
    "conversation.queued": "queued", "conversation.offered": "offered", "conversation.accepted": "engaged",
    "conversation.transferred": "engaged", "conversation.closed": "closed", "conversation.missed": "missed",
}


class ReadModels:
    def __init__(self, db: AsyncDatabase) -> None:
        self._conversations = db["conversations"]
        self._messages = db["messages"]

    async def ensure_indexes(self) -> None:
        await self._messages.create_index([("tenant", 1), ("conversation_id", 1), ("position", -1)])
        await self._conversations.create_index([("tenant", 1), ("status", 1), ("updated_position", -1)])
        await self._conversations.create_index([("tenant", 1), ("visitor.id", 1)])

    async def apply(self, logged: LoggedEvent) -> None:
        event, position = logged.envelope, logged.position
        conversation_id = event.data.get("conversation_id")
        if not isinstance(conversation_id, str):
            return
        key = f"{event.tenant}|{conversation_id}"
        if event.type == "conversation.requested":
            await self._conversations.update_one(
                {"_id": key},
                {"$setOnInsert": {
                    "conversation_id": conversation_id, "tenant": event.tenant, "status": "queued",
                    "channel": event.data.get("channel", "web"), "visitor": event.data.get("visitor"),
                    "department": event.data.get("department"), "topic": event.data.get("topic"),
                    "created_at": event.occurred_at, "agent_id": None, "message_count": 0,
                    "last_position": position, "updated_position": position,
                }},
                upsert=True,
            )
            return
        update = self._conversation_update(logged)
        if update:
            update.setdefault("$set", {}).update({"last_position": position, "updated_position": position})
            await self._conversations.update_one({"_id": key, "last_position": {"$lt": position}}, update)
        if event.type in MESSAGE_TYPES:
            document = {
                "_id": event.id, "tenant": event.tenant, "conversation_id": conversation_id, "position": position,
                "event": {**event.model_dump(mode="json")},
            }
            try:
                await self._messages.insert_one(document)
            except DuplicateKeyError:
                pass

    @staticmethod
    def _conversation_update(logged: LoggedEvent) -> dict[str, Any]:
        event = logged.envelope
        data, at = event.data, event.occurred_at
        update: dict[str, Any] = {}
        if event.type in STATUS_BY_TYPE:
            update["$set"] = {"status": STATUS_BY_TYPE[event.type]}
        if event.type == "conversation.accepted":
            update["$set"].update(agent_id=data.get("agent_id"), accepted_at=at)
        elif event.type == "conversation.transferred":
            update["$set"]["agent_id"] = data.get("to_agent_id")
        elif event.type == "conversation.closed":
            update["$set"]["closed_at"] = at
        elif event.type == "conversation.rated":
            update["$set"] = {"rating": {"score": data.get("score"), "comment": data.get("comment")}}
        elif event.type in ("message.sent", "message.attachment_sent"):
            update = {"$set": {"last_message_at": at}, "$inc": {"message_count": 1}}
        return update
