"""Baseline B1: a bare websocket relay (no broker, no auth, no validation).

`python -m tools.bench.relay_server PORT`: a socket on ``/recv/N`` receives every
frame sent on ``/send/N``. It is the floor of the websocket layer alone on this machine.
"""

import asyncio
import sys

import websockets

from relaydesk.runtime import run_loop


async def serve(port: int) -> None:
    receivers: dict[str, object] = {}

    async def handler(socket):  # type: ignore[no-untyped-def]
        path = socket.request.path
        kind, _, pair = path.strip("/").partition("/")
        if kind == "recv":
            receivers[pair] = socket
            await socket.wait_closed()
            receivers.pop(pair, None)
            return
        async for frame in socket:
            target = receivers.get(pair)
            if target is not None:
                await target.send(frame)

    async with websockets.serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    run_loop(serve(int(sys.argv[1])))
