"""A webhook port another process holds is configuration: one line naming the port and the
variable, exit 2 (``Misconfigured``), not uvicorn's traceback and exit 3, which ``relaydesk
up`` restarted five times before giving up without naming the port."""

import socket

import pytest

from connectors.service import ConnectorsService
from relaydesk.dependencies import Misconfigured
from relaydesk.settings import Settings


async def test_a_webhook_port_in_use_is_refused_as_configuration(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = ConnectorsService(
            settings.model_copy(update={"connectors_host": "127.0.0.1", "connectors_port": port})
        )
        try:
            with pytest.raises(Misconfigured) as refused:
                await service.start()
        finally:
            await service.stop()
    assert str(refused.value) == (
        f"cannot listen on 127.0.0.1:{port}: address already in use: another process listens"
        " there; stop it or set RELAYDESK_CONNECTORS_PORT to a free port"
    )
