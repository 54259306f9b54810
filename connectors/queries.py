"""Connector queries (contracts/queries/connectors.py): what an admin may see of them."""

from connectors.config import ConnectorDirectory
from contracts.queries.connectors import ConnectorsListQuery, ConnectorView
from relaydesk.queries import answers


class ConnectorQueries:
    def __init__(self, directory: ConnectorDirectory) -> None:
        self._directory = directory

    @answers(ConnectorsListQuery)
    def connectors_list(self, query: ConnectorsListQuery) -> list[ConnectorView]:
        views = self._directory.public_view(query.tenant)
        return [ConnectorView.model_validate(view) for view in views]
