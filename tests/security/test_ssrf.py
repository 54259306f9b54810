"""Issue 14.2: a tenant's webhook URL reaches public addresses only, at the address checked.

Every connection these tests make stays on this machine: refused targets are refused before
any connection, and the "DNS" answers a test resolver gives are loopback addresses.
"""

import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent_service.admin.service import AdminService
from outbound_webhooks.worker import RetryPolicy
from relaydesk.net_guard import (
    GuardedTransport,
    RefusedTarget,
    TargetPolicy,
    non_public_reason,
    parse_networks,
)
from relaydesk.settings import Settings
from tests.admin.helpers import eventually, owner_session
from tests.admin.receiver import Receiver
from tests.system import RunningSystem, running_system
from tools.embedded import free_port

# Event types nothing in these tests emits: a subscription wrongly accepted sends nothing.
QUIET = ["webhook.unsubscribed"]

NOT_PUBLIC = [
    "http://127.0.0.1:15672/api/overview",  # the broker's management API
    "https://127.0.0.1/hook",
    "https://127.1.2.3/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "https://[::ffff:7f00:1]/hook",  # the same, written in hex
    "https://[::127.0.0.1]/hook",  # IPv4-compatible (deprecated) loopback
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata
    "https://[::ffff:169.254.169.254]/latest/meta-data/",
    "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
    "https://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
    "https://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "https://10.0.0.1/hook",
    "https://10.255.255.254:8443/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",  # carrier-grade NAT
    "https://[fd12:3456::1]/hook",  # unique-local
    "https://[fe80::1]/hook",  # link-local
    "https://[fec0::1]/hook",  # site-local
    "https://224.0.0.1/hook",  # multicast
    "https://[ff02::1]/hook",
    "https://240.0.0.1/hook",  # reserved
    "https://0.0.0.0/hook",  # unspecified: connects to this machine
    "https://[::]/hook",
    "https://localhost/hook",  # an internal name: resolves to loopback
    "https://localhost:5672/hook",
    "https://2130706433/hook",  # 127.0.0.1 as one decimal number
    "https://0x7f.1/hook",  # and in hex, shortened
]


async def _subscribe(http: httpx.AsyncClient, owner: dict[str, str], url: str) -> httpx.Response:
    return await http.post(
        "/api/admin/webhooks", headers=owner, json={"url": url, "event_types": QUIET}
    )


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings, with_history=False) as running:
        yield running


async def test_a_webhook_to_any_non_public_address_or_with_credentials_is_refused(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "acme")
        refused = [
            *NOT_PUBLIC,
            "https://user:secret@hooks.example.com/hook",  # would be sent as Basic credentials
            "https://user@hooks.example.com/hook",
            "http://hooks.example.com/hook",  # plain http: only to the operator's networks
            "ftp://hooks.example.com/hook",
            "file:///etc/passwd",
        ]
        for url in refused:
            answer = await _subscribe(http, owner, url)
            assert answer.status_code == 400, (url, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_payload" and "refused" in error["message"], url
        assert (await http.get("/api/admin/webhooks", headers=owner)).json() == []
        # a public https name is accepted (its address is checked again at each delivery)
        assert (await _subscribe(http, owner, "https://hooks.example.com/hook")).status_code == 201


@pytest.mark.parametrize("url", NOT_PUBLIC)
async def test_the_address_rule_names_why(url: str) -> None:
    # names (localhost, 2130706433) are looked up for real: they resolve on this machine
    with pytest.raises(RefusedTarget, match=r"must start with https|not a public one"):
        await TargetPolicy().check(url)


def test_public_addresses_pass_and_embedded_ones_are_looked_into() -> None:
    for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2a00:1450:4001:80e::200e"]:
        assert non_public_reason(public) is None, public
    assert non_public_reason("::ffff:8.8.8.8") is None
    assert non_public_reason("::ffff:10.0.0.1") == "private (inside ::ffff:a00:1)"
    assert non_public_reason("2002:c0a8:101::") is not None  # 6to4 of 192.168.1.1
    assert non_public_reason("64:ff9b::a00:1") is not None  # NAT64 of 10.0.0.1
    assert non_public_reason("64:ff9b::808:808") is None  # NAT64 of 8.8.8.8
    assert non_public_reason("64:ff9b:1::808:808") is not None  # local-use NAT64: inside


def test_the_operator_allows_exactly_the_networks_named_and_saas_keeps_https() -> None:
    tool = TargetPolicy.from_settings(Settings(webhook_allowed_networks="10.20.0.0/16, fd00::/8"))
    for allowed in ["http://10.20.3.4/hook", "https://10.20.3.4/hook", "http://[fd00::5]/hook"]:
        tool.check_url(allowed)
    for refused in ["http://10.21.0.1/hook", "https://127.0.0.1/hook", "https://[::1]/hook"]:
        with pytest.raises(RefusedTarget):
            tool.check_url(refused)
    saas = TargetPolicy.from_settings(
        Settings(mode="saas", webhook_allowed_networks="10.20.0.0/16")
    )
    saas.check_url("https://10.20.3.4/hook")
    with pytest.raises(RefusedTarget, match="https://"):
        saas.check_url("http://10.20.3.4/hook")
    assert parse_networks("") == ()
    with pytest.raises(ValueError):
        Settings(webhook_allowed_networks="10.0.0.0/33")


class ChangingResolver:
    """A DNS server whose answers the test sets: each lookup gets the next answer."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


LOOPBACK_ALLOWED = parse_networks("127.0.0.1/32")


async def test_the_connection_goes_to_the_checked_address_with_one_lookup_and_the_name_kept(
    settings: Settings,
) -> None:
    """DNS rebinding: the second answer (127.0.0.2) is never looked up, let alone used."""
    receiver = await Receiver(free_port()).start()
    resolver = ChangingResolver(["127.0.0.1"], ["127.0.0.2"])
    transport = GuardedTransport(
        TargetPolicy(LOOPBACK_ALLOWED, https_only=False, resolver=resolver)
    )
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            answer = await client.post(
                f"http://hooks.rebind.test:{receiver.port}/hook", content=b"x"
            )
    finally:
        await receiver.stop()
    assert answer.status_code == 200
    assert resolver.lookups == ["hooks.rebind.test"]  # once; the system resolver knows no such name
    ((headers, body),) = receiver.received
    assert headers["host"] == f"hooks.rebind.test:{receiver.port}" and body == b"x"


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def _trusting(certfile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certfile))


async def test_tls_to_the_pinned_address_still_checks_the_certificate_of_the_name(
    tmp_path: Path,
) -> None:
    certfile, keyfile = _certificate(tmp_path, "hooks.tls.test")
    receiver = await Receiver(free_port(), str(certfile), str(keyfile)).start()
    policy = TargetPolicy(LOOPBACK_ALLOWED, resolver=ChangingResolver(["127.0.0.1"]))
    try:
        trusting = httpx.AsyncHTTPTransport(verify=_trusting(certfile), trust_env=False)
        async with httpx.AsyncClient(transport=GuardedTransport(policy, trusting)) as client:
            answer = await client.post(f"https://hooks.tls.test:{receiver.port}/hook", content=b"y")
            assert answer.status_code == 200
            # the same certificate does not pass for another name at the same address
            other = TargetPolicy(LOOPBACK_ALLOWED, resolver=ChangingResolver(["127.0.0.1"]))
            async with httpx.AsyncClient(
                transport=GuardedTransport(
                    other, httpx.AsyncHTTPTransport(verify=_trusting(certfile), trust_env=False)
                )
            ) as wrong_name:
                with pytest.raises(httpx.ConnectError, match=r"certificate|hostname"):
                    await wrong_name.post(f"https://other.tls.test:{receiver.port}/hook")
    finally:
        await receiver.stop()
    assert receiver.received[0][0]["host"] == f"hooks.tls.test:{receiver.port}"


async def test_userinfo_and_refused_addresses_never_leave_the_transport() -> None:
    policy = TargetPolicy(resolver=ChangingResolver(["10.0.0.7"]))
    async with httpx.AsyncClient(transport=GuardedTransport(policy)) as client:
        for url in [
            "https://hooks.internal.test/hook",  # resolves to 10.0.0.7
            "https://user:pw@hooks.example.com/hook",
            "http://hooks.example.com/hook",
        ]:
            with pytest.raises(RefusedTarget):
                await client.post(url)


@pytest.fixture
async def rebinding(settings: Settings) -> AsyncIterator[tuple[RunningSystem, ChangingResolver]]:
    """The system with an admin service whose DNS answers change: first 127.0.0.1, then
    127.0.0.2. The operator allows 127.0.0.1 only (an on-premises receiver)."""
    settings = settings.model_copy(update={"webhook_allowed_networks": "127.0.0.1/32"})
    resolver = ChangingResolver(["127.0.0.1"], ["127.0.0.2"])
    admin = AdminService(
        settings,
        RetryPolicy(initial_s=0.05, max_s=0.2, timeout_s=2.0),
        targets=TargetPolicy.from_settings(settings, resolver),
    )
    await admin.start()
    try:
        async with running_system(settings, with_history=False, with_agent=False) as running:
            yield running, resolver
    finally:
        await admin.stop()


async def test_a_name_that_later_resolves_inside_is_refused_at_delivery_and_the_log_says_refused(
    rebinding: tuple[RunningSystem, ChangingResolver],
) -> None:
    system, resolver = rebinding
    receiver = await Receiver(free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
            owner = await owner_session(system, http, "acme")
            url = f"http://hooks.rebind.test:{receiver.port}/hook"
            hook = await http.post(
                "/api/admin/webhooks",
                headers=owner,
                json={"url": url, "event_types": ["canned_response.created"]},
            )
            assert hook.status_code == 201, hook.text  # checked: 127.0.0.1, allowed
            made = await http.post(
                "/api/canned", headers=owner, json={"shortcut": "hi", "text": "Hello"}
            )
            assert made.status_code == 201
            path = f"/api/admin/webhooks/{hook.json()['subscription_id']}/deliveries"

            async def attempts() -> list[dict]:
                log = (await http.get(path, headers=owner)).json()
                return log if len(log) >= 2 else []

            log = await eventually(attempts, what="two refused delivery attempts")
    finally:
        await receiver.stop()
    assert receiver.received == []
    assert {(d["ok"], d["status"], d["error"]) for d in log} == {(False, None, "refused")}
    assert resolver.lookups[0] == "hooks.rebind.test" and len(resolver.lookups) >= 3


async def test_the_delivery_log_says_failed_without_naming_what_answered(
    settings: Settings,
) -> None:
    closed = free_port()  # nothing listens here: the connection is refused by the system
    allowed = settings.model_copy(update={"webhook_allowed_networks": "127.0.0.1/32"})
    async with (
        running_system(allowed, with_history=False) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "acme")
        hook = await http.post(
            "/api/admin/webhooks",
            headers=owner,
            json={
                "url": f"http://127.0.0.1:{closed}/hook",
                "event_types": ["canned_response.created"],
            },
        )
        assert hook.status_code == 201, hook.text
        await http.post("/api/canned", headers=owner, json={"shortcut": "hi", "text": "Hello"})
        path = f"/api/admin/webhooks/{hook.json()['subscription_id']}/deliveries"

        async def attempt() -> list[dict]:
            return (await http.get(path, headers=owner)).json()

        log = await eventually(attempt, what="a failed delivery attempt")
    assert {(d["ok"], d["status"], d["error"]) for d in log} == {(False, None, "failed")}
