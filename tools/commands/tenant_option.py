"""``--tenant`` as every command takes it: checked by the contracts' own id rule before
anything connects.

An admin command carrying another was refused by its command's model (a pydantic traceback,
exit 1); ``replay``, ``export`` and ``audit verify`` took it and matched nothing. Now each
says what a tenant id may contain, as a usage error (exit 2).
"""

import click
from pydantic import TypeAdapter, ValidationError

from contracts.base import Id

TENANT_ID_RULE = "1 to 128 ASCII letters, digits or the characters _ . : - @"
_TENANT_ID = TypeAdapter(Id)


def tenant_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: the value if it is a tenant id (None when the option is optional
    and not given)."""
    if value is None:
        return None
    try:
        return _TENANT_ID.validate_python(value)
    except ValidationError:
        raise click.BadParameter(f"{value!r}: a tenant id is {TENANT_ID_RULE}") from None
