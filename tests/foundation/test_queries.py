"""Bus queries are typed by contracts/queries/: every query a service serves has a request
and answer model there and every model is served; bad params answer ``bad_request``."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

from agent_service.queries import Queries
from agent_service.state import RoutingState
from contracts.queries import QUERIES, Query
from contracts.queries.agent import AgentsStatusQuery, ConversationState, QueueQuery
from relaydesk.bus import Bus, RemoteError
from relaydesk.bus.rpc import RpcClient, serve_queries
from relaydesk.queries import QueryAnswers, served_by

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("agent_service", "history_service", "billing_service", "connectors")


def answering_classes() -> list[type]:
    """Every class in the services with a method marked ``@answers(...)``."""
    found: dict[str, type] = {}
    for package in SERVICES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            for _, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
                if cls.__module__ == module.name and served_by(cls):
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def test_every_served_query_has_a_contract_model_and_every_model_is_served() -> None:
    served: list[tuple[str, str]] = [
        (query.SERVICE, name)
        for cls in answering_classes()
        for name, query in served_by(cls).items()
    ]
    assert len(served) == len(set(served)), "a query is answered by two classes"
    assert sorted(served) == sorted((q.SERVICE, q.NAME) for q in QUERIES)


def test_every_service_serves_its_queries_through_a_query_table() -> None:
    calls = [
        (path.relative_to(ROOT).parts[0], text[found.end() : found.end() + 200])
        for package in SERVICES
        for path in (ROOT / package).rglob("*.py")
        for text in [path.read_text()]
        for found in re.finditer(r"serve_queries\(", text)
    ]
    assert {package for package, _ in calls} == set(SERVICES)
    assert all("QueryAnswers(" in call for _, call in calls), calls


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.SERVICE}:{q.NAME}")
async def test_params_missing_a_required_field_answer_bad_request_naming_it(
    query: type[Query[Any]],
) -> None:
    required = [name for name, field in query.model_fields.items() if field.is_required()]
    if not required:
        pytest.skip(f"{query.NAME} has no required params")
    owner = next(cls for cls in answering_classes() if query.NAME in served_by(cls))
    # Never called: the params are refused before the answering method runs.
    table = QueryAnswers(query.SERVICE, owner.__new__(owner))
    with pytest.raises(RemoteError) as refused:
        await table.handle(query.NAME, {})
    assert refused.value.code == "bad_request"
    assert f"{query.NAME}: {required[0]}: Field required" in refused.value.message


async def test_over_the_bus_a_typed_ask_gets_a_typed_answer_and_bad_params_bad_request(
    bus: Bus,
) -> None:
    await serve_queries(bus, "agent", QueryAnswers("agent", Queries(RoutingState)).handle)
    rpc = RpcClient(bus)
    assert await rpc.ask(QueueQuery(tenant="acme")) == []
    assert await rpc.ask(AgentsStatusQuery(tenant="acme")) == []
    for params, field in (({"tenant": 7}, "tenant"), ({}, "tenant")):
        with pytest.raises(RemoteError) as refused:
            await rpc.query("agent", "conversation.state", params)
        assert refused.value.code == "bad_request" and field in refused.value.message
    with pytest.raises(RemoteError) as unknown:
        await rpc.query("agent", "conversation.everything", {"tenant": "acme"})
    assert unknown.value.code == "unknown_query"
    assert QueueQuery.answer_type() == list[ConversationState]
