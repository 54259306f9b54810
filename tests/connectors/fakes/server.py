"""A real loopback HTTP server for a fake platform: uvicorn in this event loop, on a free port.

``cut()`` closes the listener (a network cut: connections are refused) and resets the
connections still open, as when the platform's process is gone; ``restore()`` listens again
on the same port.

The port stays bound by this server from construction on, listening or not: a port picked
free and released until uvicorn binds it can meanwhile become the local end of someone
else's outgoing connection (both are drawn from the ephemeral range), and then uvicorn
failed with "address already in use". A bound socket that does not listen refuses
connections, which is what a cut must look like.
"""

import asyncio
import socket

import uvicorn
from fastapi import FastAPI


def bound_socket(port: int = 0) -> socket.socket:
    """A loopback socket bound (not listening) to ``port``, or to a free one with 0."""
    sock = socket.socket()
    # Connections the last listener closed may still be in TIME_WAIT on this port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class FakeServer:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._socket = bound_socket()
        self.port = int(self._socket.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=0,
        )
        self._server = uvicorn.Server(config)
        # uvicorn listens on the socket and closes it at shutdown.
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        deadline = asyncio.get_running_loop().time() + 5
        while not self._server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("fake server did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            await self._task
            # The listener is closed now. uvicorn's forced exit leaves the requests in flight
            # running on their open connections: a held long poll would still be answered
            # after the cut (up to its 25 s later), not reset like the rest of the platform.
            state = self._server.server_state
            for connection in list(state.connections):
                connection.transport.abort()
            for task in list(state.tasks):
                task.cancel()
            self._server = None
            self._socket = bound_socket(self.port)  # held, not listening, until restore

    cut = stop
    restore = start
