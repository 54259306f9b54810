"""Issue 14.1: no public dev secret, every service refuses to run without its own, keys rotate.

Against the real code: services started as `relaydesk <service>` processes with a clean
environment, a real gateway for tokens, the real connectors service and the real
`relaydesk admin reseal-connectors` for connector secrets.
"""

import asyncio
import os
import secrets
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.fernet import InvalidToken
from pydantic import SecretStr

from contracts.events.connector import ConnectorConfigured, InboundReceived
from gateway.attachments import LinkSigner
from gateway.auth.tokens import AUDIENCES, ISSUER, AgentPrincipal, TokenService
from gateway.auth.tokens import InvalidToken as InvalidJwt
from relaydesk.attachments import AttachmentRejected
from relaydesk.bus import Bus
from relaydesk.keys import PUBLISHED, SERVICE_SECRETS, SecretNotUsable, key_id
from relaydesk.runtime import EXIT_CONFIG
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from tests.admin.helpers import owner_session
from tests.cli_process import run_relaydesk
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import TelegramDriver
from tests.connectors.helpers import LogWatch
from tests.keys import secret_env
from tests.system import ConnectorsRunning, RunningSystem, running_system, start_gateway
from tools.cli import SERVICE_MODULES
from tools.embedded import free_port
from tools.up_secrets import SecretsFileError, secrets_path, up_secrets

ROOT = Path(__file__).resolve().parents[2]
FORMER_JWT_DEFAULT = "change-me-in-production-relaydesk-dev-secret"
FORMER_VISITOR_DEFAULT = "change-me-visitor-secret-relaydesk-dev"
FORMER_SECRETS_KEY_DEFAULT = "change-me-connector-secrets-relaydesk-dev"
SECRET_VARIABLES = ("RELAYDESK_JWT_SECRET", "RELAYDESK_VISITOR_SECRET", "RELAYDESK_SECRETS_KEY")


def strong() -> str:
    return secrets.token_urlsafe(48)


def clean_env(**variables: str) -> dict[str, str]:
    """Only what a Python process needs to import this checkout: no RELAYDESK_* from outside."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **variables}


def start_service(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_relaydesk([command], env, cwd=ROOT, timeout=60)


def assert_refused_in_one_line(done: subprocess.CompletedProcess[str], *names: str) -> str:
    assert done.returncode == EXIT_CONFIG, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "service_ready" not in done.stdout
    assert all(name in lines[0] for name in names), lines[0]
    return lines[0]


# --- no built-in secret ----------------------------------------------------------------------


def test_settings_carry_no_secret_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in SECRET_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    settings = Settings()
    assert (settings.jwt_secret, settings.visitor_secret, settings.secrets_key) == (None,) * 3
    for field in ("jwt_secret", "visitor_secret", "secrets_key"):
        assert Settings.model_fields[field].default is None
    # Built in-process (as the tests and tools do), the classes using a secret refuse too.
    with pytest.raises(SecretNotUsable, match="RELAYDESK_JWT_SECRET"):
        TokenService(settings)
    with pytest.raises(SecretNotUsable, match="RELAYDESK_SECRETS_KEY"):
        SecretBox.from_settings(settings)


@pytest.mark.parametrize("former", sorted(PUBLISHED))
def test_the_former_development_values_are_never_a_key(former: str) -> None:
    settings = Settings(jwt_secret=former, visitor_secret=former, secrets_key=former)
    with pytest.raises(SecretNotUsable, match="published"):
        TokenService(settings)
    with pytest.raises(SecretNotUsable, match="published"):
        SecretBox.from_settings(settings)
    # nor does one come back in as a "previous" key
    rotated = Settings(jwt_secret=strong(), visitor_secret=strong(), jwt_previous_secrets=[former])
    with pytest.raises(SecretNotUsable, match="RELAYDESK_JWT_PREVIOUS_SECRETS"):
        TokenService(rotated)


def test_every_service_declares_the_secrets_it_needs() -> None:
    assert set(SERVICE_SECRETS) == set(SERVICE_MODULES)
    assert set(SERVICE_SECRETS["gateway"]) == {"jwt_secret", "visitor_secret", "secrets_key"}
    assert SERVICE_SECRETS["agent"] == ("secrets_key",)  # outbound webhook signatures
    assert SERVICE_SECRETS["connectors"] == ("secrets_key",)
    assert SERVICE_SECRETS["history"] == ("audit_signing_key",)  # signs the audit checkpoints


# --- a service started on its own ------------------------------------------------------------


def test_a_saas_gateway_with_an_https_url_and_no_secrets_refuses_to_start() -> None:
    """The issue's case: it used to log `service_ready` and sign with public defaults."""
    done = start_service(
        "gateway",
        clean_env(RELAYDESK_MODE="saas", RELAYDESK_PUBLIC_URL="https://support.example"),
    )
    line = assert_refused_in_one_line(done, *SECRET_VARIABLES)
    assert line.startswith("relaydesk gateway: ") and "secrets.token_urlsafe" in line


@pytest.mark.parametrize(
    ("command", "env", "named", "why"),
    [
        ("agent", {}, "RELAYDESK_SECRETS_KEY", "not set"),
        ("connectors", {}, "RELAYDESK_SECRETS_KEY", "not set"),
        # without its signing key the archive would have no anchor outside MongoDB
        ("history", {}, "RELAYDESK_AUDIT_SIGNING_KEY", "not set"),
        (
            "gateway",
            {
                "RELAYDESK_JWT_SECRET": "short-but-not-empty",
                "RELAYDESK_VISITOR_SECRET": strong(),
                "RELAYDESK_SECRETS_KEY": strong(),
            },
            "RELAYDESK_JWT_SECRET",
            "too short",
        ),
        (
            "gateway",
            {
                "RELAYDESK_JWT_SECRET": strong(),
                "RELAYDESK_VISITOR_SECRET": FORMER_VISITOR_DEFAULT,
                "RELAYDESK_SECRETS_KEY": strong(),
            },
            "RELAYDESK_VISITOR_SECRET",
            "published",
        ),
        ("connectors", {"RELAYDESK_SECRETS_KEY": FORMER_SECRETS_KEY_DEFAULT}, "SECRETS_KEY", "pub"),
    ],
)
def test_a_service_without_a_usable_secret_exits_with_one_line_naming_it(
    command: str, env: dict[str, str], named: str, why: str
) -> None:
    line = assert_refused_in_one_line(start_service(command, clean_env(**env)), named, why)
    assert line.startswith(f"relaydesk {command}: ")
    for value in env.values():  # the line names the variable, never its value
        assert value not in line


def test_an_unreadable_previous_key_list_is_one_line_too() -> None:
    done = start_service(
        "connectors",
        clean_env(RELAYDESK_SECRETS_KEY=strong(), RELAYDESK_SECRETS_PREVIOUS_KEYS='["unclosed'),
    )
    assert_refused_in_one_line(done, "RELAYDESK_SECRETS_PREVIOUS_KEYS")


def test_previous_keys_are_read_comma_separated_or_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = strong(), strong()
    monkeypatch.setenv("RELAYDESK_JWT_PREVIOUS_SECRETS", f" {a} , {b},")
    monkeypatch.setenv("RELAYDESK_VISITOR_PREVIOUS_SECRETS", f'["{b}"]')
    settings = Settings()
    assert [s.get_secret_value() for s in settings.jwt_previous_secrets] == [a, b]
    assert [s.get_secret_value() for s in settings.visitor_previous_secrets] == [b]
    assert settings.secrets_previous_keys == ()


# --- forged with the former defaults ---------------------------------------------------------


def forged(secret: str, kind: str, subject: str, tenant: str, with_kid: bool) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "tenant": tenant,
        "typ": kind,
        "iss": ISSUER,
        "aud": AUDIENCES[kind],
        "iat": now,
        "exp": now + 600,
    }
    if kind == "access":
        claims |= {"role": "owner", "perms": ["manage_agents", "see_all_conversations"]}
    headers = {"kid": key_id(secret)} if with_kid else None
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


async def refused_at_handshake(ws_url: str, token: str) -> bool:
    try:
        connection = await websockets.connect(f"{ws_url}?token={token}")
    except websockets.InvalidStatus as refused:
        return refused.response.status_code == 403
    await connection.close()
    return False


async def test_tokens_signed_with_the_former_defaults_are_refused(settings: Settings) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "victim")
        listed = await http.get("/api/admin/agents", headers=owner)
        assert listed.status_code == 200 and listed.json(), "the real owner reads the agents"
        for with_kid in (False, True):
            for subject in ("no-such-agent", next(a["agent_id"] for a in listed.json())):
                token = forged(FORMER_JWT_DEFAULT, "access", subject, "victim", with_kid)
                answer = await http.get(
                    "/api/admin/agents", headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status_code == 401, (with_kid, subject, answer.text)
            visitor = forged(FORMER_VISITOR_DEFAULT, "visitor", "v-forged", "victim", with_kid)
            assert await refused_at_handshake(system.gateway.ws_url, visitor)
        # the control: the same visitor, signed by this server, is let in
        real_visitor = system.visitor_token("victim", "v-forged")
        assert not await refused_at_handshake(system.gateway.ws_url, real_visitor)


def test_connector_secrets_sealed_with_the_former_default_key_do_not_open() -> None:
    sealed_offline = SecretBox(FORMER_SECRETS_KEY_DEFAULT).seal({"bot_token": "123:abc"})
    box = SecretBox.from_settings(Settings(secrets_key=strong()))
    with pytest.raises(InvalidToken):
        box.open(sealed_offline)


# --- key rotation: tokens and links ----------------------------------------------------------


def rotated(settings: Settings, **fields: Any) -> Settings:
    return settings.model_copy(update=fields)


def test_tokens_name_their_key_and_a_previous_key_verifies_but_never_signs() -> None:
    old, new = strong(), strong()
    before = Settings(jwt_secret=old, visitor_secret=strong())
    after = rotated(before, jwt_secret=SecretStr(new), jwt_previous_secrets=(SecretStr(old),))
    ann = AgentPrincipal(tenant="acme", agent_id="ann", role="owner", permissions=frozenset())
    token = TokenService(before).issue_access(ann)
    assert jwt.get_unverified_header(token)["kid"] == key_id(old)
    assert TokenService(after).verify_access(token).agent_id == "ann"
    fresh = TokenService(after).issue_access(TokenService(after).verify_access(token))
    assert jwt.get_unverified_header(fresh)["kid"] == key_id(new)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(fresh, old, algorithms=["HS256"], options={"verify_aud": False})
    dropped = rotated(after, jwt_previous_secrets=())
    with pytest.raises(InvalidJwt):
        TokenService(dropped).verify_access(token)
    # a token naming a key this server never held is refused without trying the others
    with pytest.raises(InvalidJwt):
        TokenService(after).verify_access(
            jwt.encode(
                jwt.decode(token, options={"verify_signature": False}),
                new,
                algorithm="HS256",
                headers={"kid": "0123456789abcdef"},
            )
        )


def test_attachment_links_signed_with_a_previous_key_stay_valid_until_it_is_dropped() -> None:
    old, new = strong().encode(), strong().encode()
    link = LinkSigner(old).link("a1")["url"]
    expires, signature = int(link.split("exp=")[1].split("&")[0]), link.split("sig=")[1]
    LinkSigner(new, previous=[old]).verify("a1", expires, signature)
    with pytest.raises(AttachmentRejected):
        LinkSigner(new).verify("a1", expires, signature)


async def test_a_gateway_accepts_previous_key_tokens_while_configured_and_refuses_them_after(
    settings: Settings,
) -> None:
    """Sessions survive a rotation: the old gateway's tokens work on the rotated one, which
    signs only with the new key; once the previous key is removed, the old tokens stop."""
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rotate")
        session = (
            await http.post(
                "/api/auth/login",
                json={"tenant": "rotate", "email": "boss@rotate.test", "password": "correct horse"},
            )
        ).json()
        visitor = system.visitor_token("rotate", "v-rotate")
        old_jwt, old_visitor = settings.jwt_secret, settings.visitor_secret
        assert old_jwt is not None and old_visitor is not None
        during = rotated(
            system.settings,
            jwt_secret=SecretStr(strong()),
            jwt_previous_secrets=(old_jwt,),
            visitor_secret=SecretStr(strong()),
            visitor_previous_secrets=(old_visitor,),
        )
        gateway = await start_gateway(during)
        try:
            async with httpx.AsyncClient(base_url=gateway.base_url) as rotating:
                assert (await rotating.get("/api/admin/agents", headers=owner)).status_code == 200
                assert not await refused_at_handshake(gateway.ws_url, visitor)
                renewed = await rotating.post(
                    "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
                )
                assert renewed.status_code == 200, renewed.text
                new_access = renewed.json()["access_token"]
                assert during.jwt_secret is not None
                assert jwt.get_unverified_header(new_access)["kid"] == key_id(
                    during.jwt_secret.get_secret_value()
                )
        finally:
            await gateway.stop()
        after = rotated(during, jwt_previous_secrets=(), visitor_previous_secrets=())
        gateway = await start_gateway(after)
        try:
            async with httpx.AsyncClient(base_url=gateway.base_url) as rotated_http:
                assert (
                    await rotated_http.get("/api/admin/agents", headers=owner)
                ).status_code == 401
                assert await refused_at_handshake(gateway.ws_url, visitor)
                new_owner = {"Authorization": f"Bearer {new_access}"}
                assert (
                    await rotated_http.get("/api/admin/agents", headers=new_owner)
                ).status_code == 200
        finally:
            await gateway.stop()


# --- connector secrets: re-sealing under a new key -------------------------------------------

TELEGRAM_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"


async def test_reseal_connectors_lets_the_previous_secrets_key_go(
    settings: Settings, bus: Bus
) -> None:
    fake = FakeTelegram(TELEGRAM_TOKEN)
    await fake.start()
    watch = await LogWatch(bus).start()
    base = rotated(settings, connectors_port=0, telegram_api_base=fake.base_url)
    assert base.secrets_key is not None
    new_key = SecretStr(strong())
    during = rotated(base, secrets_key=new_key, secrets_previous_keys=(base.secrets_key,))
    after = rotated(during, secrets_previous_keys=())
    try:
        async with running_system(base, with_history=False) as system:
            await configure_telegram(system, base, bus)
            # Dropped too early, the old key takes the secrets with it: the connector refuses
            # every webhook (an empty secret must never verify) and cannot be re-sealed.
            async with ConnectorsRunning(after) as service:
                driver = TelegramDriver(fake, service)
                assert (await driver.send("4242", "before re-sealing")).status_code == 403
                lost = await reseal(after)
                assert lost.returncode == 1 and "acme/tg1" in lost.stderr, lost.stderr
            # Both keys configured: the re-seal records a new connector.configured for tg1.
            async with ConnectorsRunning(during):
                done = await reseal(during)
                assert done.returncode == 0, done.stderr
                assert "re-sealed acme/tg1" in done.stdout
                configured = await watch.wait_for(ConnectorConfigured.TYPE, 2, connector_id="tg1")
                assert configured[0].data["sealed_config"] != configured[1].data["sealed_config"]
                again = await reseal(during)
                assert again.returncode == 0 and "0 re-sealed, 1 already" in again.stdout
                keyless = await reseal(rotated(during, secrets_key=None))
                assert keyless.returncode == EXIT_CONFIG, keyless.stdout
                assert "RELAYDESK_SECRETS_KEY is not set" in keyless.stderr
            # The previous key is gone and the connector still works.
            async with ConnectorsRunning(after) as service:
                driver = TelegramDriver(fake, service)
                answer = await driver.send("4242", "after re-sealing")
                assert answer.status_code == 200, answer.text
                await watch.wait_for(InboundReceived.TYPE, connector_id="tg1")
                assert TELEGRAM_TOKEN not in configured[1].model_dump_json()
    finally:
        await watch.stop()
        await fake.stop()


async def reseal(settings: Settings) -> subprocess.CompletedProcess[str]:
    """`relaydesk admin reseal-connectors` as the operator runs it: with the connectors' keys."""
    env = {**os.environ, "RELAYDESK_AMQP_URL": settings.amqp_url, **secret_env(settings)}
    if settings.stream_url:
        env["RELAYDESK_STREAM_URL"] = settings.stream_url
    return await asyncio.to_thread(run_relaydesk, ["admin", "reseal-connectors"], env, timeout=120)


async def configure_telegram(system: RunningSystem, settings: Settings, bus: Bus) -> None:
    """The connector configured through the admin API (sealed by the gateway), under ``settings``'
    key, with its connectors service running."""
    async with (
        ConnectorsRunning(settings),
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        admin = {"Authorization": f"Bearer {system.agent_token('acme', 'boss', role='admin')}"}
        answer = await http.put(
            "/api/admin/connectors/tg1",
            headers=admin,
            json={
                "platform": "telegram",
                "public_config": {"mode": "webhook"},
                "secrets": {"bot_token": TELEGRAM_TOKEN, "webhook_secret": TelegramDriver.secret},
            },
        )
        assert answer.status_code == 200, answer.text


# --- `relaydesk up`'s secrets file -----------------------------------------------------------


def test_up_generates_strong_secrets_once_into_a_private_file_and_reuses_them(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = up_secrets(data_dir, {})
    assert set(first) == {*SECRET_VARIABLES, "RELAYDESK_AUDIT_SIGNING_KEY"}
    assert len(set(first.values())) == 4 and all(len(v) >= 48 for v in first.values())
    path = secrets_path(data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert up_secrets(data_dir, {}) == first  # a restart keeps sessions and sealed secrets
    # the services accept what was generated
    generated = Settings(**{v.removeprefix("RELAYDESK_").lower(): first[v] for v in first})
    TokenService(generated)
    SecretBox.from_settings(generated)


def test_up_lets_the_environment_win_and_keeps_previous_keys_from_the_file(
    tmp_path: Path,
) -> None:
    mine = strong()
    given = up_secrets(tmp_path, {"RELAYDESK_JWT_SECRET": mine})
    assert "RELAYDESK_JWT_SECRET" not in given  # the child inherits the environment's value
    assert mine not in secrets_path(tmp_path).read_text()
    # an operator rotating by hand: the former key moves to *_PREVIOUS_*, the current one goes
    path = secrets_path(tmp_path)
    former = given["RELAYDESK_SECRETS_KEY"]
    path.write_text(
        f'{{"RELAYDESK_VISITOR_SECRET": "{given["RELAYDESK_VISITOR_SECRET"]}",'
        f' "RELAYDESK_SECRETS_PREVIOUS_KEYS": "{former}"}}'
    )
    path.chmod(0o644)  # loosened by hand
    later = up_secrets(tmp_path, {})
    assert later["RELAYDESK_SECRETS_PREVIOUS_KEYS"] == former
    assert later["RELAYDESK_SECRETS_KEY"] != former and len(later["RELAYDESK_SECRETS_KEY"]) >= 48
    assert later["RELAYDESK_VISITOR_SECRET"] == given["RELAYDESK_VISITOR_SECRET"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_up_refuses_a_malformed_secrets_file(tmp_path: Path) -> None:
    secrets_path(tmp_path).write_text('{"RELAYDESK_JWT_SECRET": 12}')
    with pytest.raises(SecretsFileError, match="strings"):
        up_secrets(tmp_path, {})
    secrets_path(tmp_path).write_text('{"RELAYDESK_AMQP_URL": "amqp://elsewhere"}')
    with pytest.raises(SecretsFileError, match="unknown"):
        up_secrets(tmp_path, {})


def test_up_stops_at_once_when_a_service_refuses_the_secret_it_was_given(
    amqp_url: str, tmp_path: Path
) -> None:
    """The environment wins over the generated file, and is checked like any other value."""
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": amqp_url,
        "RELAYDESK_DATA_DIR": str(tmp_path),
        "RELAYDESK_GATEWAY_PORT": str(free_port()),
        "RELAYDESK_CONNECTORS_PORT": str(free_port()),
        "RELAYDESK_JWT_SECRET": "chosen-by-hand",
    }
    env.pop("MONGO_URL", None)
    started = time.monotonic()
    done = run_relaydesk(["up"], env, timeout=120)
    assert done.returncode == EXIT_CONFIG, done.stdout[-3000:]  # a configuration refusal: 2
    assert "RELAYDESK_JWT_SECRET is too short" in done.stdout
    assert f"gateway refused its configuration (exit code {EXIT_CONFIG})" in done.stdout
    assert "chosen-by-hand" not in done.stdout + done.stderr
    assert "never retrieved" not in done.stderr  # up's own stop is clean (it printed one)
    assert time.monotonic() - started < 90, "up noticed the exit, not its ready timeout"
