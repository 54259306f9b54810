"""One set of tenant defaults (contracts.settings): what the Settings page shows for an
untouched tenant is what its customers get in a new chat; edits checked, the log folded."""

import httpx
import pytest

from agent_service.admin.state import TenantAdmin
from agent_service.state import Tenant
from contracts.events.message import SystemNote
from contracts.settings import (
    DEFAULTS,
    SettingsRefused,
    TenantSettings,
    accepted_changes,
    default_settings,
    edit_settings,
)
from tests.admin.helpers import owner_session
from tests.gateway.wsclient import Client
from tests.system import RunningSystem


async def test_an_untouched_tenants_settings_page_shows_what_a_new_chat_shows(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "fresh")
        page = (await http.get("/api/admin/settings", headers=owner)).json()

    customer = await Client.connect(system.gateway.ws_url, system.visitor_token("fresh", "v-first"))
    try:
        started = await customer.op("start", visitor={"name": "Fay"})
        conversation_id = started["conversation_id"]
        # Nobody of the tenant is online: the chat is greeted, then missed.
        greeting = await customer.wait_event(
            SystemNote.TYPE, conversation_id=conversation_id, kind="notice"
        )
        offline = await customer.wait_event(
            SystemNote.TYPE, conversation_id=conversation_id, kind="missed"
        )
    finally:
        await customer.close()
    assert greeting["event"]["data"]["text"] == page["greeting"]
    assert offline["event"]["data"]["text"] == page["offline_text"]


def test_routing_and_administration_start_from_the_same_defaults() -> None:
    assert Tenant("t").settings == TenantAdmin("t").settings == DEFAULTS.as_json()
    assert TenantSettings.from_saved({}) == DEFAULTS


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"colour": "red"}, "cannot change colour"),
        ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
        # a folder of the zone database, and a name too long for a file: not zones either
        ({"timezone": "America"}, "timezone: unknown time zone 'America'"),
        ({"timezone": "a" * 300}, "timezone: unknown time zone 'aaaa"),
        ({"offer_timeout_s": 2}, "offer_timeout_s: Input should be greater than or equal to 5"),
        # a site the widget may run on is an origin: these match no page a browser shows
        ({"allowed_origins": ["not a url"]}, "'not a url' is not a site address"),
        ({"allowed_origins": ["www.shop.com"]}, "'www.shop.com' is not a site address"),
        ({"allowed_origins": ["https://shop.com/cart"]}, "is not a site address"),
        ({"business_hours": {"mon": [["18:00", "09:00"]]}}, "mon: 18:00 is not before 09:00"),
        ({"business_hours": {"monday": []}}, "business_hours days are mon, tue"),
        (
            {"business_hours": {"mon": [["11:00", "13:00"], ["09:00", "12:00"]]}},
            "business_hours: mon: 09:00-12:00 overlaps 11:00-13:00",
        ),
        ({"business_hours": {"mon": [["9am", "5pm"]]}}, "mon: '9am' is not a time like 09:00"),
        ({"greeting": "x" * 201}, "greeting: String should have at most 200 characters"),
        ({}, "name at least one setting to change"),
        ({"attachment_types": ["image/png", ""]}, "attachment_types: '' is not a media type"),
        ({"attachment_types": ["pdf"]}, "attachment_types: 'pdf' is not a media type"),
        ({"attachment_types": ["image/*"]}, "attachment_types: 'image/*' is not a media type"),
        ({"attachment_types": ["Image/PNG"]}, "'Image/PNG' is not a media type like image/png"),
        (
            {"attachment_types": ["image/png", "image/png"]},
            "attachment_types: image/png is named twice",
        ),
    ],
)
def test_a_bad_change_is_refused_naming_the_setting(changes: dict, said: str) -> None:
    with pytest.raises(SettingsRefused) as refused:
        edit_settings(default_settings(), changes)
    assert said in str(refused.value)


def test_an_edit_says_before_and_after_as_the_model_reads_them() -> None:
    current = {**default_settings(), "greeting": "Hello"}
    before, after = edit_settings(current, {"offer_timeout_s": "90", "greeting": "Hi"})
    assert before == {"offer_timeout_s": None, "greeting": "Hello"}
    assert after == {"offer_timeout_s": 90, "greeting": "Hi"}


def test_folding_keeps_what_the_model_accepts_and_skips_the_rest() -> None:
    logged = {"greeting": "Hey", "colour": "red", "timezone": "Mars/Olympus", "retention_days": 7}
    assert accepted_changes(logged) == {"greeting": "Hey", "retention_days": 7}
    folded = TenantSettings.from_saved(logged)
    assert (folded.greeting, folded.timezone, folded.retention_days) == ("Hey", "UTC", 7)


def test_sites_written_as_browsers_send_them_are_taken() -> None:
    sites = ["https://shop.example", "http://localhost:8080/", "https://xn--bcher-kva.example"]
    _, after = edit_settings(default_settings(), {"allowed_origins": sites})
    assert after == {
        "allowed_origins": [
            "https://shop.example",
            "http://localhost:8080",
            "https://xn--bcher-kva.example",
        ]
    }


def test_sites_are_kept_as_browsers_send_them_whatever_their_capitals() -> None:
    # Browsers send Origin in lower case: a site saved as typed never matched it.
    _, after = edit_settings(
        default_settings(),
        {"allowed_origins": [" HTTPS://Shop.Example/ ", "http://LOCALHOST:8080"]},
    )
    assert after == {"allowed_origins": ["https://shop.example", "http://localhost:8080"]}
