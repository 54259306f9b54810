"""Commands owned by the connectors service (queue ``connectors``).

Secrets never travel in clear on the bus: the sender seals them (``sealed_secrets``, Fernet
keyed from ``settings.secrets_key``); ``None`` keeps the secrets already configured.
"""

from pydantic import Field

from contracts.base import CommandData, Id
from contracts.events.connector import Platform


class ConfigureConnector(CommandData):
    TYPE = "connector.configure"
    SERVICE = "connectors"
    connector_id: Id
    platform: Platform
    public_config: dict[str, str] = Field(default_factory=dict)
    sealed_secrets: str | None = Field(default=None, max_length=20000)


class RemoveConnector(CommandData):
    TYPE = "connector.remove"
    SERVICE = "connectors"
    connector_id: Id


MODELS = (ConfigureConnector, RemoveConnector)
