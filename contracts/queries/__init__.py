"""Every bus query: a request model per query (its params) and the type of its answer.

One module per answering service. ``QUERIES`` lists them all; a test holds it equal to
what the services serve (tests/foundation/test_queries.py).
"""

from typing import Any

from contracts.queries import admin, agent, billing, connectors, history
from contracts.queries.base import Answer, Query, TenantQuery, describe

QUERIES: tuple[type[Query[Any]], ...] = (
    *agent.QUERIES,
    *admin.QUERIES,
    *history.QUERIES,
    *billing.QUERIES,
    *connectors.QUERIES,
)


def queries_of(service: str) -> dict[str, type[Query[Any]]]:
    """The queries ``service`` answers, by name."""
    return {q.NAME: q for q in QUERIES if q.SERVICE == service}


__all__ = ["QUERIES", "Answer", "Query", "TenantQuery", "describe", "queries_of"]
