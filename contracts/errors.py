"""Typed errors raised when a payload does not match the contracts."""

from typing import TypedDict


class ContractError(ValueError):
    """Base class: a payload cannot be accepted. ``code`` is stable for clients."""

    code = "contract_error"

    def __init__(self, message: str, *, type_name: str | None = None) -> None:
        super().__init__(message)
        self.type_name = type_name


class UnknownType(ContractError):
    """No model is registered for this type name and version."""

    code = "unknown_type"


class FieldError(TypedDict):
    """One reason a payload is invalid: where (pydantic's ``loc``) and what."""

    loc: list[int | str]
    msg: str


class InvalidPayload(ContractError):
    """The type is known but the payload does not validate against its model."""

    code = "invalid_payload"

    def __init__(
        self,
        message: str,
        *,
        type_name: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message, type_name=type_name)
        self.errors: list[FieldError] = errors or []
