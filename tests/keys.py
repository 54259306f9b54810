"""Secrets for test systems: production code has no default secret, so each test system gets
strong random ones of its own (merged into its Settings in one place: tests/conftest.py,
tests/shared_system.py) and hands them to the child processes it starts."""

import secrets
from typing import Any

from relaydesk.keys import PREVIOUS, variable
from relaydesk.settings import Settings


def test_secrets() -> dict[str, Any]:
    """Settings keyword arguments: a fresh strong value for every secret."""
    return {name: secrets.token_urlsafe(48) for name in PREVIOUS}


test_secrets.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test


def secret_env(settings: Settings) -> dict[str, str]:
    """The environment variables that give a ``relaydesk`` child the secrets of ``settings``."""
    env: dict[str, str] = {}
    for name, previous in PREVIOUS.items():
        current = getattr(settings, name)
        if current is not None:
            env[variable(name)] = current.get_secret_value()
        if values := getattr(settings, previous):
            env[variable(previous)] = ",".join(value.get_secret_value() for value in values)
    return env
