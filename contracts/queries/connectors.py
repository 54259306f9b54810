"""Queries answered by the connectors service (service ``connectors``)."""

from contracts.queries.base import Answer, TenantQuery

SERVICE = "connectors"


class ConnectorView(Answer):
    """What an admin may see of a connector: public fields and which secrets are set."""

    connector_id: str
    platform: str
    public_config: dict[str, str]
    secrets_set: list[str]  # names only, never values
    paused: bool = False  # polls and sends nothing until resumed (imported ones start so)


class ConnectorsListQuery(TenantQuery[list[ConnectorView]]):
    NAME = "connectors.list"
    SERVICE = SERVICE


QUERIES = (ConnectorsListQuery,)
