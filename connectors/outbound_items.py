"""One outbox item to its platform call: a text, an agent's file, or a rating request."""

from typing import Any, Protocol

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.media import OutboundFile
from relaydesk.attachments import AttachmentRejected, AttachmentStore

RATING_REQUEST = "How would you rate this conversation?"


class PlatformClient(Protocol):
    async def send_text(
        self, connector: Connector, chat_ref: str, text: str, *, last_inbound: float | None = None
    ) -> str: ...
    def check_file(self, content_type: str, size: int) -> None:
        """Raise a permanent DeliveryError for a file the platform would refuse."""

    async def send_file(
        self,
        connector: Connector,
        chat_ref: str,
        file: OutboundFile,
        *,
        last_inbound: float | None = None,
    ) -> str: ...
    async def send_rating_request(
        self,
        connector: Connector,
        chat_ref: str,
        text: str,
        conversation_id: str,
        *,
        last_inbound: float | None = None,
    ) -> str: ...
    async def send_typing(self, connector: Connector, chat_ref: str) -> None: ...


class OutboundSender:
    """Sends one item; returns the platform's message id ("" when it gives none)."""

    def __init__(self, clients: dict[str, PlatformClient], files: AttachmentStore) -> None:
        self._clients = clients
        self._files = files

    async def send(
        self,
        connector: Connector,
        item: dict[str, Any],
        *,
        text: str | None = None,
        last_inbound: float | None = None,
    ) -> str:
        """``text``: the part of a text item to send now (the deliverer splits long replies);
        ``last_inbound``: the user's last message, read at send time."""
        client = self._clients[connector.platform]
        chat_ref = item["chat_ref"]
        kind = item.get("kind") or "text"
        if kind == "attachment":
            file = await self._file(client, item["attachment"]["attachment_id"])
            return await client.send_file(connector, chat_ref, file, last_inbound=last_inbound)
        if kind == "rating":
            return await client.send_rating_request(
                connector,
                chat_ref,
                item["body"],
                item["conversation_id"],
                last_inbound=last_inbound,
            )
        body = item["body"] if text is None else text
        return await client.send_text(connector, chat_ref, body, last_inbound=last_inbound)

    async def _file(self, client: PlatformClient, attachment_id: str) -> OutboundFile:
        """The stored file, checked against the platform's limits before it is read."""
        found = await self._files.find(attachment_id)
        if found is None:
            raise DeliveryError("the file is no longer stored", permanent=True, unsendable=True)
        client.check_file(found.content_type, found.size)
        try:
            content = await self._files.read(attachment_id)
        except AttachmentRejected:
            raise DeliveryError(
                "the file is no longer stored", permanent=True, unsendable=True
            ) from None
        return OutboundFile(found.filename, found.content_type, content)
