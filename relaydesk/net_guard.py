"""Requests to URLs a tenant chose go to the public internet only (docs/security.md, 2).

A tenant admin sets URLs that our servers then fetch (outbound webhooks). Without a check
such a URL reaches what only the server can reach: the broker's management port on
loopback, a cloud metadata service on 169.254.169.254, the office network; and the delivery
log tells the tenant which ports answered. So every address a tenant URL names or resolves
to must be public: loopback, private, link-local, unique-local, site-local, multicast,
reserved and unspecified addresses are refused, and so are IPv6 forms that carry such an
IPv4 address inside (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64). The operator, and
only the operator, may allow internal networks (``RELAYDESK_WEBHOOK_ALLOWED_NETWORKS``) for
on-premises installs; plain ``http://`` is allowed only to those networks, never in SaaS mode.

The check is worth nothing if the connection makes its own DNS lookup afterwards: the name
could resolve to a public address for the check and to 127.0.0.1 a moment later (DNS
rebinding). :class:`GuardedTransport` therefore resolves once, checks every address, and
connects to the checked address itself, keeping the name in the ``Host`` header and in
TLS (server name indication and certificate check).
"""

import asyncio
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from relaydesk.settings import Settings

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

NAT64 = IPv6Network(
    "64:ff9b::/96"
)  # the well-known prefix: a public IPv4 address behind it is fine
NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")  # local-use translation: inside by definition
IPV4_COMPATIBLE = IPv6Network("::/96")
RESOLVE_TIMEOUT_S = 5.0


class RefusedTarget(Exception):
    """A URL or address a tenant may not make us reach; the message says which rule."""


class Unresolvable(RefusedTarget):
    """The URL's host name does not resolve (now): nothing to connect to."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The machine's resolver (getaddrinfo, without blocking the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8, fd00::/8"`` (or a list of such) as networks; ValueError on a bad one."""
    entries = text.split(",") if isinstance(text, str) else text
    return tuple(ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def translated_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for on the wire (IPv4-mapped, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _embedded_ipv4(ip: IPv6Address) -> list[IPv4Address]:
    """IPv4 addresses carried inside other IPv6 forms that a router may end up reaching."""
    found: list[IPv4Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in NAT64_LOCAL or ip in IPV4_COMPATIBLE:
        found.append(IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` itself is not a public address, or None when it is."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_private:  # 10/8, 172.16/12, 192.168/16, fc00::/7 (unique-local), documentation...
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # e.g. 100.64/10, shared address space behind carrier NAT
        return "not public"
    return None


def non_public_reason(address: str | IPAddress) -> str | None:
    """Why ``address`` (or an IPv4 address inside it) is not public, or None when it is."""
    ip = ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, IPv6Address):
        if ip.scope_id:
            return "link-local"
        translated = translated_ipv4(ip)
        # an IPv4-mapped or NAT64 address is the IPv4 one; other forms must pass both ways
        candidates: list[IPAddress] = (
            [translated] if translated is not None else [*_embedded_ipv4(ip), ip]
        )
    else:
        candidates = [ip]
    for candidate in candidates:
        kind = _kind(candidate)
        if kind is not None:
            return kind if candidate is ip else f"{kind} (inside {ip.compressed})"
    return None


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks that need no lookup."""

    scheme: str
    host: str  # a name, or an address without brackets
    port: int

    @property
    def literal(self) -> IPAddress | None:
        try:
            return ip_address(self.host)
        except ValueError:
            return None


def url_form(url: str) -> Target:
    """The rules that hold whatever the operator allows: http(s), a host, no credentials.

    Raises:
        RefusedTarget: naming the rule.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedTarget("not a valid URL") from None
    if parts.scheme not in ("https", "http"):
        raise RefusedTarget("the URL must start with https://")
    if "@" in parts.netloc:  # user:password@ would be sent as Basic credentials
        raise RefusedTarget("the URL must not contain a user name or password")
    if not parts.hostname:
        raise RefusedTarget("the URL has no host")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


@dataclass(frozen=True)
class TargetPolicy:
    """Which URLs a tenant may make our servers reach.

    Args:
        allowed_networks: internal networks the operator allows (on-premises receivers);
            ``http://`` is allowed only to these.
        https_only: SaaS mode: ``https://`` always, even to an allowed network.
        resolver: host name to addresses (default: the system's getaddrinfo).
        resolve_timeout_s: how long a lookup may take before the URL counts as unresolvable.
    """

    allowed_networks: tuple[Network, ...] = ()
    https_only: bool = True
    resolver: Resolver = field(default=system_resolver, compare=False)
    resolve_timeout_s: float = RESOLVE_TIMEOUT_S

    @classmethod
    def from_settings(
        cls, settings: "Settings", resolver: Resolver | None = None
    ) -> "TargetPolicy":
        return cls(
            allowed_networks=parse_networks(settings.webhook_allowed_networks),
            https_only=settings.mode == "saas",
            resolver=resolver or system_resolver,
        )

    def allows_network(self, ip: IPAddress) -> bool:
        if isinstance(ip, IPv6Address) and (translated := translated_ipv4(ip)) is not None:
            ip = translated
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)

    def check_url(self, url: str) -> Target:
        """The checks that need no lookup: the URL's form, https, a literal address.

        Raises:
            RefusedTarget: naming the rule.
        """
        target = url_form(url)
        if target.scheme == "http" and self.https_only:
            raise RefusedTarget("the URL must start with https://")
        if target.literal is not None:
            self.check_address(target, target.literal)
        return target

    def check_address(self, target: Target, ip: IPAddress) -> None:
        """Raises RefusedTarget unless ``target`` may be reached at ``ip``."""
        if self.allows_network(ip):
            return
        reason = non_public_reason(ip)
        if reason is not None:
            raise RefusedTarget(f"the URL's host is a {reason} address, not a public one")
        if target.scheme == "http":
            raise RefusedTarget(
                "http:// is only allowed to networks the operator allows; use https://"
            )

    async def addresses(self, target: Target) -> list[IPAddress]:
        """Every address of ``target``, each checked; the caller connects to one of these.

        Raises:
            RefusedTarget: an address is refused (one bad address refuses the name), or the
                name does not resolve.
        """
        literal = target.literal
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(self.resolve_timeout_s):
                found = await self.resolver(target.host, target.port)
        except (OSError, TimeoutError, UnicodeError):
            raise Unresolvable("the URL's host name does not resolve") from None
        if not found:
            raise Unresolvable("the URL's host name does not resolve")
        addresses = [ip_address(a) for a in found]
        for ip in addresses:
            self.check_address(target, ip)
        return addresses

    async def check(self, url: str, *, unresolvable_ok: bool = False) -> Target:
        """The whole check, lookup included (a subscription is checked like this).

        ``unresolvable_ok``: a name that does not resolve (yet) passes when nothing else
        is wrong with it; every delivery checks again.
        """
        target = self.check_url(url)
        try:
            await self.addresses(target)
        except Unresolvable:
            # plain http must be shown to go to an allowed network, which an unknown name is not
            if not (unresolvable_ok and target.scheme == "https"):
                raise
        return target


@functools.cache
def tls_client_context() -> ssl.SSLContext:
    """The TLS client context every guarded transport of this process shares: building one
    reads and parses a whole CA bundle (tens of milliseconds of CPU), and each webhook
    dispatcher and fetcher built its own, at every service start. Never modified after this."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that reaches only what ``policy`` allows, at the address it checked.

    Each request: the URL is checked, its host resolved once, every address checked, and the
    connection made to a checked address (the next one when a connection is refused); the
    ``Host`` header keeps the name, and so does TLS (``sni_hostname``: server name indication
    and certificate check). Proxies from the environment are not used (a proxy would look
    the name up again), and redirects are the client's business (httpx follows none unless
    told to; every hop would come through here again).

    Raises:
        RefusedTarget: from ``handle_async_request``, before any connection is made.
    """

    def __init__(self, policy: TargetPolicy, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpx.AsyncHTTPTransport(
            verify=tls_client_context(), trust_env=False
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.userinfo:
            raise RefusedTarget("the URL must not contain a user name or password")
        target = self._policy.check_url(str(request.url))
        addresses = await self._policy.addresses(target)
        if target.literal is None and target.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": target.host}
        original = request.url
        for i, ip in enumerate(addresses):
            request.url = original.copy_with(host=ip.compressed)
            try:
                return await self._inner.handle_async_request(request)
            except httpx.ConnectError:
                if i == len(addresses) - 1:
                    raise
            finally:
                request.url = original
        raise AssertionError("unreachable: addresses() never returns an empty list")

    async def aclose(self) -> None:
        await self._inner.aclose()
