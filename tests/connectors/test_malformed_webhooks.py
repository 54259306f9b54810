"""Authentic but malformed webhooks: a clear 400, nothing published, the endpoint keeps serving."""

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from connectors import messenger
from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import FakeMessenger, meta_body
from tests.connectors.fakes.wechat import FakeWeChat, text_xml
from tests.connectors.harness import MessengerDriver, WeChatDriver, configure
from tests.connectors.helpers import LogWatch

PAGE = "1122334455"
NOW = int(time.time() * 1000)


def _event(**fields: object) -> bytes:
    return meta_body(
        {
            "object": "page",
            "entry": [{"id": PAGE, "time": NOW, "messaging": [{"timestamp": NOW, **fields}]}],
        }
    )


MALFORMED_MESSENGER = {
    "truncated json": b'{"object":"page","entry":[{"id":"1122334455"',
    "not utf-8": b'{"object":"page","entry":[]}\xff',
    "an array": meta_body([{"object": "page"}]),  # type: ignore[arg-type]
    "no object": meta_body({"entry": []}),
    "entry not a list": meta_body({"object": "page", "entry": "nope"}),
    "entry of strings": meta_body({"object": "page", "entry": ["nope"]}),
    "messaging an object": meta_body(
        {
            "object": "page",
            "entry": [
                {"id": PAGE, "time": NOW, "messaging": {"message": {"mid": "m_x", "text": "hi"}}}
            ],
        }
    ),
    "sender a string": _event(
        sender="psid-x", recipient={"id": PAGE}, message={"mid": "m_x1", "text": "hi"}
    ),
    "message a string": _event(sender={"id": "psid-x"}, recipient={"id": PAGE}, message="hi"),
}


@pytest.mark.parametrize("case", list(MALFORMED_MESSENGER))
def test_messenger_shape_check_refuses(case: str) -> None:
    """Each case fails to decode or is refused by the shape check (both are ValueErrors)."""
    with pytest.raises(ValueError):
        messenger.parse_notification(json.loads(MALFORMED_MESSENGER[case]))


async def test_messenger_signed_but_malformed_bodies_get_400_and_publish_nothing(
    fake_messenger: FakeMessenger, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = MessengerDriver(fake_messenger, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    for case, raw in MALFORMED_MESSENGER.items():
        response = await fake_messenger.post_signed(driver.url, raw)
        assert response.status_code == 400, (case, response.status_code, response.text)
        assert response.json()["error"], case
    # documented shapes with nothing to publish are still acknowledged (Meta retries a 400 forever)
    delivery = _event(sender={"id": "psid-x"}, recipient={"id": PAGE}, delivery={"watermark": NOW})
    assert (await fake_messenger.post_signed(driver.url, delivery)).status_code == 200
    assert (
        await fake_messenger.post_signed(
            driver.url, meta_body({"object": "instagram", "entry": []})
        )
    ).status_code == 200

    assert (await driver.send("psid-ok", "the next valid one")).status_code == 200
    await watch.wait_for("message.sent", body="the next valid one")
    assert len(watch.of("connector.inbound_received")) == 1
    assert [e.data["body"] for e in watch.of("message.sent")] == ["the next valid one"]
    assert len(watch.of("conversation.requested")) == 1


def _short_ciphertext(aes_key: str) -> str:
    """Valid AES-CBC with valid padding, but shorter than WeChat's 20-byte header."""
    key = base64.b64decode(aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(
        encryptor.update(b"abcd" + bytes([28]) * 28) + encryptor.finalize()
    ).decode()


async def test_wechat_signed_but_broken_xml_gets_400_and_publishes_nothing(
    fake_wechat: FakeWeChat, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = WeChatDriver(fake_wechat, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    secrets = {
        "app_secret": fake_wechat.app_secret,
        "token": fake_wechat.token,
        "encoding_aes_key": fake_wechat.aes_key,
    }
    assert (
        await configure(
            bus,
            connectors.box,
            TENANT,
            "wxplain",
            "wechat",
            # another account: one account is one connector (plain mode checks no AppID)
            {"app_id": "wx-plain-account", "plaintext_allowed": "true"},
            secrets,
        )
    ).ok
    plain_url = driver.url.replace("/wx1", "/wxplain")
    good = text_xml("gh_fake", "openid_bad", "never published", 900001)

    envelope = await fake_wechat.push(
        driver.url, good, cut_envelope=True
    )  # safe mode, envelope XML cut short
    inner = await fake_wechat.push(
        driver.url, good[: good.index("<MsgId>")]
    )  # decrypts fine, the XML inside is broken
    plain = await fake_wechat.push(
        plain_url, "<xml><MsgType><![CDATA[text]]></MsgType><Content>oops</xml>", safe=False
    )
    entity = await fake_wechat.push(
        plain_url, '<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>', safe=False
    )
    for name, response in {
        "envelope": envelope,
        "inner": inner,
        "plain": plain,
        "entity": entity,
    }.items():
        assert (response.status_code, response.json()) == (400, {"error": "malformed xml"}), name
    # signed, but the ciphertext is too short to hold a message: refused as undecryptable, not a 500
    short = await fake_wechat.push(
        driver.url, good, encrypted=_short_ciphertext(fake_wechat.aes_key)
    )
    assert short.status_code == 403

    assert (await driver.send("u-ok", "the next valid one")).text == "success"
    await watch.wait_for("message.sent", body="the next valid one")
    assert len(watch.of("connector.inbound_received")) == 1
    assert [e.data["body"] for e in watch.of("message.sent")] == ["the next valid one"]
