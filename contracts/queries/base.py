"""What a query is: a typed request to one service and the type of its answer.

On the wire a query stays ``{"name": NAME, "params": <request fields>}`` →
``{"result": <answer JSON>}`` (relaydesk.bus.rpc). A request model is its params: the
serving side validates what it receives with it (bad params answer ``bad_request``), and
the asking side builds one and gets its answer validated into the answer type::

    entries = await rpc.ask(QueueQuery(tenant="acme"))  # list[ConversationState]

The answer type is the model's type parameter: ``class QueueQuery(TenantQuery[list[X]])``.
"""

from functools import cache
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, TypeAdapter, ValidationError

from contracts.base import Id

R = TypeVar("R")


class Query(BaseModel, Generic[R]):
    """A question to ``SERVICE``, named ``NAME`` on the wire; ``R`` is what it answers.

    Unknown params are ignored rather than refused: callers share one params dict
    between several queries, and an older client may still send a field since dropped.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)  # as Payload's
    NAME: ClassVar[str]
    SERVICE: ClassVar[str]

    def params(self) -> dict[str, Any]:
        """The request as JSON params."""
        return self.model_dump(mode="json")

    @classmethod
    def answer_type(cls) -> Any:
        """The answer's type: the ``R`` this class was declared with."""
        return _answer_type(cls)

    @classmethod
    def parse_answer(cls, answer: Any) -> Any:
        """A JSON answer validated into :meth:`answer_type` (raises ValidationError)."""
        return _adapter(cls).validate_python(answer)

    @classmethod
    def dump_answer(cls, answer: Any) -> Any:
        """An answer (models, or plain data that must fit them) as JSON for the wire."""
        adapter = _adapter(cls)
        return adapter.dump_python(adapter.validate_python(answer), mode="json")


class TenantQuery(Query[R], Generic[R]):
    """A query scoped to one tenant: the answer never looks outside ``tenant``.

    The gateway passes the tenant of the caller's token, never one from a client.
    """

    tenant: Id


class Answer(BaseModel):
    """Base of answer models: frozen; fields the model does not declare are dropped, so
    an answer carries exactly what its contract says."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)  # as Payload's


def clamp(low: int, high: int) -> AfterValidator:
    """Bring an int into ``low..high`` rather than refuse it (a page size asked too big
    gets the biggest page): ``limit: Annotated[int, clamp(1, 500)] = 100``."""

    def into_range(value: int) -> int:
        return max(low, min(value, high))

    return AfterValidator(into_range)


def describe(error: ValidationError) -> str:
    """One line naming the first bad field and why (for ``bad_request`` messages)."""
    problems = error.errors()
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "params"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {first['msg']}{more}"


@cache
def _answer_type(cls: type[Query[Any]]) -> Any:
    for klass in cls.__mro__:
        metadata = getattr(klass, "__pydantic_generic_metadata__", None)
        if metadata and metadata["args"] and isinstance(metadata["origin"], type):
            if issubclass(metadata["origin"], Query):
                return metadata["args"][0]
    raise TypeError(f"{cls.__name__} does not say what it answers (Query[<answer type>])")


@cache
def _adapter(cls: type[Query[Any]]) -> TypeAdapter[Any]:
    return TypeAdapter(_answer_type(cls))
