"""How the gateway is served: uvicorn's configuration, and the connection guard under it.

One function builds the configuration for production (``gateway/main.py``) and the tests
(``tests/system.py``), so both run the same limits:

- Proxy headers: uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 unless told otherwise,
  which lets any local client (or anything behind a local proxy) pick its own address and
  escape every per-address limit. Here only ``RELAYDESK_TRUSTED_PROXIES`` are believed;
  with none set, the peer address is the client's.
- Keep-alive idle: ``RELAYDESK_HTTP_KEEPALIVE_TIMEOUT_S``.
- Request headers: uvicorn (httptools) has no limit on how long a request's headers may
  take or how large they may grow (its h11 limit applies to the h11 parser only). A
  connection that opened and has not finished its headers within
  ``RELAYDESK_HTTP_HEADER_TIMEOUT_S``, or has sent more than
  ``RELAYDESK_HTTP_HEADER_MAX_BYTES`` without finishing them, is closed (408/431), and one
  address may hold at most ``RELAYDESK_HTTP_PENDING_PER_ADDRESS`` connections that are
  waiting for headers (slowloris). Trusted proxies are exempt from that count: every client
  behind them shares their address.

Bodies (size while reading, silence while unfinished) are limited one level up, per
route, by ``gateway.body_limits``; websockets per client address by ``gateway.ws``.
"""

import asyncio
import ipaddress
from collections import Counter
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.ws import websocket_asgi
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

WS_PING_INTERVAL_S = 20.0
WS_PING_TIMEOUT_S = 20.0
# uvicorn's sans-I/O protocol over the websockets library: no task of its own per
# connection, unlike its older ``websockets`` protocol, and measured against ``wsproto``
# on CPU per message and memory per idle socket (docs/performance.md).
WS_BACKEND = "websockets-sansio"


class AddressSet:
    """Addresses and networks, e.g. the trusted proxies."""

    def __init__(self, entries: list[str]) -> None:
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]

    def __contains__(self, host: object) -> bool:
        if not self._networks or not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


class ConnectionGuard:
    """What every connection of one server shares: limits, and the count per address of
    connections that are waiting for a request's headers."""

    def __init__(self, settings: Settings) -> None:
        self.header_timeout_s = settings.http_header_timeout_s
        self.header_max_bytes = settings.http_header_max_bytes
        self.pending_per_address = settings.http_pending_per_address
        self.trusted = AddressSet(settings.trusted_proxy_list())
        self.pending: Counter[str] = Counter()
        self.refused = Counter[str]()  # reason -> count, for logs and tests

    def start_waiting(self, host: str) -> bool:
        """Count one more connection of ``host`` waiting for headers; False if over the cap."""
        if host not in self.trusted and self.pending[host] >= self.pending_per_address:
            return False
        self.pending[host] += 1
        return True

    def stop_waiting(self, host: str) -> None:
        self.pending[host] -= 1
        if self.pending[host] <= 0:
            del self.pending[host]


def guarded_protocol(guard: ConnectionGuard) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with header timeout, header size and pending caps."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._waiting_host: str | None = None
            self._header_bytes = 0
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_request()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            waiting = self._waiting_host is not None
            super().data_received(data)
            if waiting and self._waiting_host is not None:
                self._header_bytes += len(data)
                if self._header_bytes > guard.header_max_bytes:
                    self._refuse(431, "request headers too large")

        def on_headers_complete(self) -> None:
            self._stop_waiting()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # a request already read is started by super()
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._await_request()  # a keep-alive connection: the next request's headers

        def _await_request(self) -> None:
            host = self.client[0] if self.client else ""
            if not guard.start_waiting(host):
                guard.refused["pending_per_address"] += 1
                log.warning("http_connection_refused", reason="pending_per_address", address=host)
                self.transport.close()
                return
            self._waiting_host = host
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(guard.header_timeout_s, self._header_timeout)

        def _stop_waiting(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            if self._waiting_host is not None:
                guard.stop_waiting(self._waiting_host)
                self._waiting_host = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self._header_bytes:
                self._refuse(408, "request headers not received in time")
            else:  # an idle connection (new, or kept alive): nothing to answer
                guard.refused["header_timeout"] += 1
                self._stop_waiting()
                self.transport.close()

        def _refuse(self, status: int, reason: str) -> None:
            guard.refused["header_timeout" if status == 408 else "header_size"] += 1
            log.info("http_connection_refused", status=status, reason=reason)
            self._stop_waiting()
            if not self.transport.is_closing():
                body = reason.encode()
                self.transport.write(
                    b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                    % (
                        status,
                        b"Request Timeout" if status == 408 else b"Too Large",
                        len(body),
                        body,
                    )
                )
                self.transport.close()

    return GuardedHttpToolsProtocol


class WebsocketShortcut:
    """Sends ``/ws`` straight to its endpoint; everything else through the app's stack.

    FastAPI's middleware stack (error and exception handlers, an AsyncExitStack for
    dependencies, CORS, our HTTP-only middleware) stays on a socket's call stack for the
    socket's whole life, ~5 KiB per idle socket, and does nothing for ``/ws``: the
    endpoint handles its own errors and uses no dependencies. Measured with
    ``python -m tools.bench.socket_memory`` (docs/performance.md).
    """

    def __init__(self, app: Any, path: str, endpoint: Any) -> None:
        self._app, self._path, self._endpoint = app, path, endpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)  # the app's state, routes, ... as before the wrap

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope["path"] == self._path:
            scope["app"] = self._app  # what the endpoint reads its dependencies from
            await self._endpoint(scope, receive, send)
            return
        await self._app(scope, receive, send)


def server_config(settings: Settings, app: Any) -> uvicorn.Config:
    trusted = settings.trusted_proxy_list()
    return uvicorn.Config(
        WebsocketShortcut(app, "/ws", websocket_asgi),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        http=guarded_protocol(ConnectionGuard(settings)),
        ws=WS_BACKEND,
        ws_max_size=settings.ws_max_frame_bytes,
        # No permessage-deflate: every browser offers it, and then each socket holds a zlib
        # compressor and decompressor (measured +38 KiB per idle socket: 29 -> 67 KiB) and
        # compresses every frame again for each socket it is fanned out to. Chat frames
        # are small JSON; the bytes saved are not worth a gateway's memory and CPU.
        ws_per_message_deflate=False,
        ws_ping_interval=WS_PING_INTERVAL_S,
        ws_ping_timeout=WS_PING_TIMEOUT_S,
        lifespan="on",
        # Never uvicorn's default (FORWARDED_ALLOW_IPS or 127.0.0.1): only the proxies we name.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
        timeout_keep_alive=settings.http_keepalive_timeout_s,
        server_header=False,
    )
