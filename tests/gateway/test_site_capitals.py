"""A site listed with capitals (saved before sites were normalised) still lets its widget in:
browsers send ``Origin`` in lower case."""

from typing import Any

from contracts.settings import TenantSettings
from gateway.origins import OriginPolicy


class LoggedSettings:
    """The tenant's settings as folded from an older log (no admin service needed)."""

    def __init__(self, settings: TenantSettings) -> None:
        self._settings = settings

    async def get(self, tenant: str) -> TenantSettings:
        return self._settings


async def test_a_site_saved_with_capitals_matches_the_origin_browsers_send() -> None:
    settings = TenantSettings.from_saved({"allowed_origins": ["HTTPS://Shop.Example/"]})
    cache: Any = LoggedSettings(settings)
    policy = OriginPolicy(cache, "http://127.0.0.1:8080")
    assert await policy.site_allowed("acme", "https://shop.example", "127.0.0.1:8080")
    assert not await policy.site_allowed("acme", "https://other.example", "127.0.0.1:8080")
