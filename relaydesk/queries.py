"""Answering queries the same way in every service.

A service marks each method that answers a query with ``@answers(SomeQuery)`` (the
request model from contracts/queries/) and serves them with one table::

    table = QueryAnswers("history", HistoryQueries(db))
    await serve_queries(bus, "history", table.handle)

``handle`` looks the name up (unknown: ``unknown_query``), validates the params into the
request model (bad: ``bad_request`` naming the field), calls the method and answers the
JSON of its answer model. A marked method is called either way: with its request model it
returns its answer model; with a plain dict of params (as the bus carries them, and as
tools and tests call it) it validates them and returns the answer's JSON, exactly what the
bus would deliver.
"""

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from contracts.queries import Query, describe
from relaydesk.bus.rpc import RemoteError
from relaydesk.metrics import QUERY_ANSWER_SECONDS, series

T = TypeVar("T")
MARK = "__answers_query__"


def parse_request(query: type[Query[Any]], params: Mapping[str, Any]) -> Query[Any]:
    """``params`` as ``query``'s request model; RemoteError ``bad_request`` when they do not fit."""
    try:
        return query.model_validate(dict(params))
    except ValidationError as exc:
        raise RemoteError("bad_request", f"{query.NAME}: {describe(exc)}") from None


def answers(query: type[Query[Any]]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Mark a method ``(self, request) -> answer`` (sync or async) as the answer to ``query``."""

    def mark(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def answer(owner: Any, request: Query[Any] | Mapping[str, Any]) -> Any:
            if isinstance(request, query):
                return method(owner, request)
            result = method(owner, parse_request(query, request))  # type: ignore[arg-type]
            if inspect.isawaitable(result):
                return _dumped(query, result)
            return query.dump_answer(result)

        setattr(answer, MARK, query)
        return answer

    return mark


async def _dumped(query: type[Query[Any]], result: Awaitable[Any]) -> Any:
    return query.dump_answer(await result)


def served_by(owner: type) -> dict[str, type[Query[Any]]]:
    """The queries the marked methods of class ``owner`` answer, by name."""
    return {query.NAME: query for _, query in _marked(owner)}


def _marked(owner: type) -> list[tuple[str, type[Query[Any]]]]:
    found = ((attr, getattr(value, MARK, None)) for attr, value in inspect.getmembers(owner))
    return [(attr, query) for attr, query in found if query is not None]


class QueryAnswers:
    """One service's queries: each query name → the marked method of ``owners`` answering it."""

    def __init__(self, service: str, *owners: object) -> None:
        self.service = service
        self._handlers: dict[str, tuple[type[Query[Any]], Callable[[Any], Any]]] = {}
        for owner in owners:
            for attr, query in _marked(type(owner)):
                if query.SERVICE != service:
                    raise ValueError(f"{query.__name__} is a {query.SERVICE} query, not {service}")
                if query.NAME in self._handlers:
                    raise ValueError(f"{service} answers {query.NAME!r} twice")
                self._handlers[query.NAME] = (query, getattr(owner, attr))

    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def handle(self, name: str, params: dict[str, Any]) -> Any:
        """The JSON answer to ``name`` (the QueryHandler of relaydesk.bus.rpc.serve_queries)."""
        found = self._handlers.get(name)
        if found is None:
            raise RemoteError("unknown_query", f"{self.service} has no query {name!r}")
        _, method = found
        started = time.perf_counter()
        try:
            result = method(params)  # plain params: validated, answered as JSON
            return await result if inspect.isawaitable(result) else result
        finally:
            series(QUERY_ANSWER_SECONDS, self.service, name).observe(time.perf_counter() - started)
