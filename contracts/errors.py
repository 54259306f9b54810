"""Typed errors raised when a payload does not match the contracts."""


class ContractError(ValueError):
    """Base class: a payload cannot be accepted. ``code`` is stable for clients."""

    code = "contract_error"

    def __init__(self, message: str, *, type_name: str | None = None) -> None:
        super().__init__(message)
        self.type_name = type_name


class UnknownType(ContractError):
    """No model is registered for this type name and version."""

    code = "unknown_type"


class InvalidPayload(ContractError):
    """The type is known but the payload does not validate against its model."""

    code = "invalid_payload"

    def __init__(
        self, message: str, *, type_name: str | None = None, errors: list | None = None
    ) -> None:
        super().__init__(message, type_name=type_name)
        self.errors = errors or []
