"""The gateway's uvicorn configuration served for real, with a stand-in app: what a
browser's websocket gets from it (no broker or store needed)."""

import asyncio
from typing import Any

import uvicorn
import websockets

from gateway.server import server_config
from relaydesk.settings import Settings
from tests.keys import test_secrets
from tools.embedded import free_port


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A websocket echo, and a lifespan that starts (the config runs the lifespan)."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": message["text"]})
    await receive()  # websocket.disconnect


async def test_websockets_negotiate_no_compression_although_the_client_offers_it() -> None:
    """Browsers offer permessage-deflate; accepted, every socket would hold a zlib
    compressor and decompressor (tens of KiB) and compress each fanned-out frame again."""
    settings = Settings(gateway_host="127.0.0.1", gateway_port=free_port(), **test_secrets())
    server = uvicorn.Server(server_config(settings, _echo))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                await asyncio.sleep(0.02)  # polling uvicorn's started flag until it listens
        url = f"ws://127.0.0.1:{settings.gateway_port}/echo"
        async with websockets.connect(url, compression="deflate") as socket:  # the default
            await socket.send("hello")
            assert await socket.recv() == "hello"
            assert socket.response is not None
            assert "Sec-WebSocket-Extensions" not in socket.response.headers
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 20)
