"""Configuration from the environment; every variable is listed in README.md.

All variables use the ``RELAYDESK_`` prefix except ``MONGO_URL``, which follows the
common convention so existing deployments can pass it unchanged.
"""

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from relaydesk.net_guard import parse_networks

ENV_PREFIX = "RELAYDESK_"

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
    background_nice: int = Field(
        default=5, ge=0, le=19
    )  # `relaydesk up`: priority drop for history, billing, connectors, embedded store
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

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
    health_port_base: int = 8100

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
    resume_buffer_events: int = 50_000

    publish_timeout_s: float = 5.0
    request_timeout_s: float = 5.0
    offer_timeout_s: int = 60
    disconnect_grace_s: int = 30

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
        "jwt_previous_secrets", "visitor_previous_secrets", "secrets_previous_keys", mode="before"
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
