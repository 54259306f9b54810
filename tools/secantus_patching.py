"""What the embedded store's SecantusDB patches share: a per-thread scope for one storage
call, and the check that the library still has the shape a patch was written against."""

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any


def scoped(local: threading.local, flag: str, state: str) -> Callable[..., Any]:
    """Decorate a storage method so that, while it runs in a thread, ``local.<flag>`` is True
    and ``local.<state>`` starts as None; both are put back after it, however it ends."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            outer = getattr(local, flag, False)
            setattr(local, flag, True)
            setattr(local, state, None)
            try:
                return fn(*args, **kwargs)
            finally:
                setattr(local, flag, outer)
                setattr(local, state, None)

        return wrapper

    return decorate


def missing_parts(
    engine: Any,
    storage_module: Any,
    methods: Iterable[str],
    functions: Iterable[str],
    tables: Iterable[str],
) -> list[str]:
    """The methods, module functions and table names a patch needs that are not there."""
    missing = [name for name in methods if not callable(getattr(engine, name, None))]
    missing += [name for name in functions if not callable(getattr(storage_module, name, None))]
    missing += [name for name in tables if not isinstance(getattr(storage_module, name, None), str)]
    return missing
