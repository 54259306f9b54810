"""A real HTTP endpoint for webhook tests: uvicorn on a local port, recording every request."""

import asyncio
from typing import Any

import uvicorn


class Receiver:
    """``certfile``/``keyfile``: serve https with this certificate (PEM files)."""

    def __init__(self, port: int, certfile: str | None = None, keyfile: str | None = None) -> None:
        self.port = port
        self._tls = (certfile, keyfile) if certfile else None
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}/hook"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, body))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async def start(self) -> "Receiver":
        certfile, keyfile = self._tls or (None, None)
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:
                await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
