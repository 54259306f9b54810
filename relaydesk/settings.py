"""Configuration from the environment; every variable is listed in README.md.

All variables use the ``RELAYDESK_`` prefix except ``MONGO_URL``, which follows the
common convention so existing deployments can pass it unchanged.
"""

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from relaydesk.net_guard import parse_networks

ENV_PREFIX = "RELAYDESK_"

# The schemes each connection URL may have (a comma-separated list: one URL per cluster node).
URL_SCHEMES = {
    "amqp_url": ("amqp://", "amqps://"),
    "stream_url": ("rabbitmq-stream://", "rabbitmq-stream+tls://"),
    "mongo_url": ("mongodb://", "mongodb+srv://"),
}

# Other names the logging module knows for two of the levels.
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}

# Taken from the environment as written (NoDecode): a comma-separated list or a JSON list.
PreviousKeys = Annotated[tuple[SecretStr, ...], NoDecode]


class Settings(BaseSettings):
    """Run-time settings shared by every service. Construct once in ``bootstrap``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    stream_url: str | None = (
        None  # log readers' stream-protocol endpoint; unset: the AMQP host on port 5552
    )
    mongo_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGO_URL", "RELAYDESK_MONGO_URL")
    )
    mongo_db: str = "relaydesk"
    mode: Literal["saas", "tool"] = "tool"
    plans_file: str | None = None
    data_dir: str = ".relaydesk"
    # `relaydesk up`: priority drop for history, billing, connectors, embedded store. 19: on
    # a saturated machine the chat's path goes first and the archive catches up after (the
    # 1,500 msg/s step's p99 fell ~15 ms against 5; docs/performance.md "Background at nice 19").
    background_nice: int = Field(default=19, ge=0, le=19)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    # OTLP/HTTP traces endpoint (e.g. http://otel-collector:4318/v1/traces); unset: tracing off,
    # and nothing of OpenTelemetry is imported (relaydesk/tracing.py, docs/observability.md).
    otlp_endpoint: str | None = None

    # No secret has a built-in value: a service refuses to start without the ones it needs
    # (relaydesk/keys.py), `relaydesk up` generates them into its data directory. The previous
    # keys (comma-separated or a JSON list) still verify or open what they signed or sealed,
    # and never sign or seal anything new: key rotation (docs/security.md).
    jwt_secret: SecretStr | None = None
    jwt_previous_secrets: PreviousKeys = ()
    visitor_secret: SecretStr | None = None
    visitor_previous_secrets: PreviousKeys = ()
    secrets_key: SecretStr | None = None
    secrets_previous_keys: PreviousKeys = ()
    # history signs its audit checkpoints with an Ed25519 key derived from this secret: kept
    # outside MongoDB, so whoever can rewrite the archive cannot re-sign it (docs/audit.md)
    audit_signing_key: SecretStr | None = None
    audit_signing_previous_keys: PreviousKeys = ()
    audit_checkpoint_interval_s: float = Field(default=60.0, gt=0)
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 7 * 24 * 3600
    # Per client address, shared by login, refresh and sign-up (gateway/auth/throttle.py).
    auth_rate_per_min: float = 20.0
    auth_rate_burst: int = 20

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    public_url: str | None = None
    connectors_host: str = "127.0.0.1"
    connectors_port: int = 8090
    # The https address platforms reach the connectors' webhooks at (behind the proxy):
    # Telegram webhooks are registered with setWebhook under it (docs/connectors.md).
    # Unset: public_url (the bundled nginx routes /webhooks/ from it to this service).
    connectors_public_url: str | None = None
    # Every service process serves /healthz, /readyz and /metrics on its own port:
    # health_port_base + its place in relaydesk.health.SERVICE_ORDER (docs/deployment.md).
    health_port_base: int = Field(default=8100, ge=1, le=65535 - 8)
    health_host: str = "127.0.0.1"
    # /readyz: a log reader holding an entry appended longer ago than this is behind.
    ready_max_lag_s: float = Field(default=30.0, gt=0)
    # History, billing and connectors, once up to date, read the log in gulps this far apart
    # (0: as each chunk comes); relaydesk/bus/log_subscription.py.
    reader_gulp_s: float = Field(default=0.1, ge=0, le=1)

    # `relaydesk up`: readiness at start, restarts with backoff, crash-loop limit.
    up_ready_timeout_s: float = Field(default=120.0, gt=0)
    up_waiting_every_s: float = Field(default=5.0, gt=0)  # "still waiting for …" at start
    up_restart_backoff_s: float = Field(default=0.5, gt=0)  # first delay; doubles per restart
    up_restart_backoff_max_s: float = Field(default=30.0, gt=0)
    up_restart_limit: int = Field(default=5, ge=1)  # this many restarts of one child ...
    up_restart_window_s: float = Field(default=120.0, gt=0)  # ... within this: stop everything

    # Work done before authentication, client addresses, health details (docs/security.md).
    # Proxies whose X-Forwarded-For/-Proto are believed: comma-separated addresses or networks.
    # Empty: nobody's (the peer address is the client), whatever uvicorn's defaults say.
    trusted_proxies: str = ""
    http_body_max_bytes: int = Field(default=1024 * 1024, ge=1)  # JSON bodies in general
    http_auth_body_max_bytes: int = Field(default=16 * 1024, ge=1)  # login, refresh, sign-up...
    upload_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1)  # ceiling above tenant limits
    http_header_timeout_s: float = Field(default=10.0, gt=0)  # a request's headers, once begun
    http_header_max_bytes: int = Field(default=64 * 1024, ge=1024)
    http_body_timeout_s: float = Field(default=15.0, gt=0)  # silence while a body is unfinished
    http_keepalive_timeout_s: int = Field(default=5, ge=1)
    http_pending_per_address: int = Field(default=256, ge=1)  # connections awaiting headers
    ws_max_per_address: int = Field(default=100, ge=1)
    ws_connect_rate_per_min: float = Field(default=120.0, gt=0)
    ws_connect_burst: int = Field(default=60, ge=1)
    health_token: SecretStr | None = None  # unset: /healthz details for loopback clients only

    ws_max_frame_bytes: int = 64 * 1024
    ws_queue_limit: int = 1000
    ws_rate_per_s: float = 20.0
    ws_rate_burst: int = 40
    # Typing signals have their own budget (gateway/frame_budget.py): they never use up the ops'.
    ws_typing_rate_per_s: float = 5.0
    ws_typing_burst: int = 10
    resume_buffer_events: int = 50_000

    publish_timeout_s: float = 5.0
    # From this many log entries a second, a process's publisher sends its batches at most
    # this often (relaydesk/bus/publish_pacing.py: larger chunks for the broker and every
    # reader, at up to this much latency); 0 ms: never wait.
    publish_batch_interval_ms: float = Field(default=10.0, ge=0, le=1000)
    publish_batching_from_per_s: float = Field(default=400.0, ge=0)
    request_timeout_s: float = 5.0
    offer_timeout_s: int = 60
    disconnect_grace_s: int = 30
    # An agent whose last socket closed counts as gone only if none opens within this long (a
    # console reload is not a lost connection: gateway/presence.py).
    agent_reconnect_window_s: float = Field(default=5.0, ge=0, le=120)

    # Internal networks (comma-separated CIDRs) that tenants' outbound webhooks may reach,
    # e.g. an on-premises receiver; none by default: only public addresses (docs/security.md).
    webhook_allowed_networks: str = ""

    smtp_url: str | None = None
    telegram_api_base: str = "https://api.telegram.org"
    messenger_api_base: str = "https://graph.facebook.com/v21.0"
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_timestamp_window_s: int = Field(
        default=300, ge=1
    )  # a WeChat request stamped further from now is refused (403): bounds replays
    connector_breaker_failures: int = Field(
        default=3, ge=1
    )  # failed send rounds in a row that open a connector's breaker
    connector_breaker_open_s: float = Field(
        default=5.0, gt=0
    )  # how long an open breaker sends nothing before one trial

    @field_validator(
        "jwt_previous_secrets",
        "visitor_previous_secrets",
        "secrets_previous_keys",
        "audit_signing_previous_keys",
        mode="before",
    )
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        items = json.loads(text) if text.startswith("[") else text.split(",")
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError("a comma-separated list or a JSON list of strings")
        return tuple(item.strip() for item in items if item.strip())

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        # logging's own spellings are accepted as they always were (info, WARN, fatal); an
        # unknown name is refused here, before it ends every process in a KeyError
        if not isinstance(value, str):
            return value
        name = value.strip().upper()
        return LOG_LEVEL_ALIASES.get(name, name)

    @field_validator("amqp_url", "stream_url", "mongo_url")
    @classmethod
    def _url_schemes(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A URL of another scheme would be waited for forever as "not answering yet"
        # (relaydesk/dependencies.py): refuse it now. The message never repeats the value.
        if not value:  # unset (an empty MONGO_URL is unset too)
            return value
        schemes = URL_SCHEMES[info.field_name or ""]
        for url in _entries(value) or [value]:
            if not url.lower().startswith(schemes):
                raise ValueError(f"each URL must start with {' or '.join(schemes)}")
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        # a typo must stop the start, not silently allow nothing (or everything)
        return ",".join(str(net) for net in parse_networks(value))

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        # uvicorn takes a mistyped entry as a literal that never matches: fail loudly instead.
        for entry in _entries(value):
            ipaddress.ip_network(entry, strict=False)
        return value

    def trusted_proxy_list(self) -> list[str]:
        return _entries(self.trusted_proxies)

    def gateway_url(self) -> str:
        return self.public_url or f"http://{self.gateway_host}:{self.gateway_port}"


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


class ConfigurationError(Exception):
    """A setting cannot be read. The message is one line naming the variable and why, never
    its value (it may be a secret): ``RELAYDESK_GATEWAY_PORT: Input should be a valid integer``.
    """


def load_settings() -> Settings:
    """The settings from the environment; raises :class:`ConfigurationError` when one is bad."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_invalid(exc)) from None


def describe_invalid(exc: ValidationError) -> str:
    """One line for a settings validation error: each bad variable and why.

    Only pydantic's message is used, never the ``input`` it also carries (the value)."""
    reasons: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        name = ENV_PREFIX + str(error["loc"][0]).upper() if error["loc"] else "settings"
        reasons.setdefault(name, error["msg"])
    return "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items()))
