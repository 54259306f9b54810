"""Attachments over real HTTP: GridFS storage, events on the log, signed links, limits.

One system is shared by the module (tests/conftest.py's ``module_system``); each test has
tenants of its own.
"""

from typing import Any

import httpx
import pytest

from gateway.attachments import LinkSigner
from tests.admin.helpers import eventually, owner_session
from tests.gateway.wsclient import Client
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


async def engaged_conversation(
    system: RunningSystem, tenant: str, visitor: str
) -> tuple[Client, Client, str]:
    agent = await Client.connect(
        system.gateway.ws_url, system.agent_token(tenant, "ann", name="Ann")
    )
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token(tenant, visitor))
    conversation_id = (await customer.op("start", visitor={"name": "Vic"}))["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    await customer.wait_event("conversation.accepted", conversation_id=conversation_id)
    return agent, customer, conversation_id


def auth(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


async def upload(
    http: httpx.AsyncClient,
    token: str,
    conversation_id: str,
    key: str,
    content: bytes,
    content_type: str = "image/png",
    name: str = "screen.png",
) -> httpx.Response:
    return await http.post(
        f"/api/conversations/{conversation_id}/attachments",
        headers=auth(token, key),
        files={"file": (name, content, content_type)},
    )


async def test_customer_uploads_agent_sees_the_event_and_downloads_the_same_bytes(
    module_system: RunningSystem,
) -> None:
    agent, customer, conversation_id = await engaged_conversation(module_system, "upload", "v-att")
    visitor = module_system.visitor_token("upload", "v-att")
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        first = await upload(
            http, visitor, conversation_id, "up-1", PNG, name="../../etc/screen shot é.png"
        )
        assert first.status_code == 201, first.text
        again = await upload(
            http, visitor, conversation_id, "up-1", PNG, name="../../etc/screen shot é.png"
        )
        assert again.status_code == 201
        assert (
            again.json()["event_id"] == first.json()["event_id"]
        )  # a retried upload is the same message
        attachment_id = first.json()["attachment_id"]
        seen = await agent.wait_event("message.attachment_sent", conversation_id=conversation_id)
        assert seen["event"]["id"] == first.json()["event_id"]
        assert seen["event"]["data"]["filename"] == "screen shot é.png"  # path parts stripped
        assert seen["event"]["data"]["size"] == len(PNG)

        link = await http.get(
            f"/api/conversations/{conversation_id}/attachments/{attachment_id}",
            headers=auth(module_system.agent_token("upload", "ann")),
        )
        assert link.status_code == 200, link.text
        downloaded = await http.get(link.json()["url"])
        assert downloaded.status_code == 200
        assert downloaded.content == PNG
        assert downloaded.headers["content-type"] == "image/png"
        assert downloaded.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in downloaded.headers["content-security-policy"]

        async def attachments_in_history() -> list[Any]:
            rows = (
                await http.get(
                    f"/api/conversations/{conversation_id}/messages", headers=auth(visitor)
                )
            ).json()
            return [r for r in rows if r["event"]["type"] == "message.attachment_sent"]

        archived = await eventually(attachments_in_history, what="the attachment in history")
        assert len(archived) == 1
    assert len(agent.events("message.attachment_sent")) == 1
    await agent.close()
    await customer.close()


async def test_links_are_only_for_participants_and_cannot_be_forged_or_reused_late(
    module_system: RunningSystem,
) -> None:
    agent, customer, conversation_id = await engaged_conversation(module_system, "links", "v-owner")
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        stored = await upload(
            http, module_system.visitor_token("links", "v-owner"), conversation_id, "k", PNG
        )
        attachment_id = stored.json()["attachment_id"]
        stranger = module_system.visitor_token("links", "v-stranger")
        assert (
            await http.get(
                f"/api/conversations/{conversation_id}/attachments/{attachment_id}",
                headers=auth(stranger),
            )
        ).status_code == 403
        assert (await upload(http, stranger, conversation_id, "k2", PNG)).status_code == 403
        other_tenant = module_system.agent_token("linkglobex", "ann", role="admin")
        denied = await http.get(
            f"/api/conversations/{conversation_id}/attachments/{attachment_id}",
            headers=auth(other_tenant),
        )
        assert denied.status_code in (403, 404)

        url = stored.json()["url"]
        forged = url[: url.index("sig=") + 4] + "A" * 43
        assert (await http.get(forged)).json()["error"]["code"] == "forbidden"
        expired = LinkSigner(module_system.settings.jwt_secret.get_secret_value().encode()).link(
            attachment_id, now=0
        )
        late = await http.get(expired["url"])
        assert late.status_code == 403 and late.json()["error"]["code"] == "link_expired"
        assert (await http.get(url)).content == PNG  # the genuine link still works
    await agent.close()
    await customer.close()


async def test_tenant_limits_reject_oversized_and_disguised_files_with_nothing_published(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "initech")
        changed = await http.patch(
            "/api/admin/settings",
            headers=owner,
            json={"attachment_max_bytes": 2048, "attachment_types": ["image/png", "text/plain"]},
        )
        assert changed.status_code == 200, changed.text
        agent, customer, conversation_id = await engaged_conversation(
            module_system, "initech", "v-lim"
        )
        visitor = module_system.visitor_token("initech", "v-lim")

        async def limit_applies() -> bool:
            return (
                await upload(http, visitor, conversation_id, "big", PNG + bytes(4096))
            ).status_code == 413

        await eventually(limit_applies, what="the tenant's 2 KiB limit")
        html_as_png = await upload(
            http, visitor, conversation_id, "fake", b"<html><script>alert(1)</script>", name="x.png"
        )
        assert (
            html_as_png.status_code == 415
            and html_as_png.json()["error"]["code"] == "type_mismatch"
        )
        pdf = await upload(
            http,
            visitor,
            conversation_id,
            "pdf",
            b"%PDF-1.7 ...",
            content_type="application/pdf",
            name="a.pdf",
        )
        assert pdf.status_code == 415 and pdf.json()["error"]["code"] == "unsupported_type"
        text = await upload(
            http,
            visitor,
            conversation_id,
            "txt",
            "order #42 — receipt".encode(),
            content_type="text/plain",
            name="r.txt",
        )
        assert text.status_code == 201, text.text
        seen = await agent.wait_event("message.attachment_sent", conversation_id=conversation_id)
        assert seen["event"]["id"] == text.json()["event_id"]
        assert [
            e["event"]["data"]["filename"] for e in agent.events("message.attachment_sent")
        ] == ["r.txt"]  # rejected ones published nothing
        assert (await upload(http, visitor, conversation_id, "nokey", PNG)).status_code == 201
        missing_key = await http.post(
            f"/api/conversations/{conversation_id}/attachments",
            headers=auth(visitor),
            files={"file": ("a.png", PNG, "image/png")},
        )
        assert (
            missing_key.status_code == 400
            and missing_key.json()["error"]["code"] == "invalid_payload"
        )
    await agent.close()
    await customer.close()
