"""The bench's load generator outlives its owner's access token (15 minutes): a full bench
crashed with 401 on its history check after the 2,000 msg/s step."""

import time
import uuid

import jwt

from tests.admin.helpers import eventually
from tests.browser.pages import make_tenant
from tests.system import RunningSystem
from tools.bench.chat_load import ChatFleet


async def test_the_history_check_signs_in_again_once_the_owners_token_has_expired(
    module_system: RunningSystem,
) -> None:
    tenant = f"fleet{uuid.uuid4().hex[:8]}"
    await make_tenant(module_system, tenant)
    fleet = ChatFleet(
        module_system.gateway.base_url,
        "boss-secret-pw",
        conversations=2,
        chats_per_agent=2,
        tenant=tenant,
        owner_email=f"boss@{tenant}.test",
    )
    await fleet.open()
    try:
        sent = await fleet.run(20, 0.5, 0)
        assert sent["lost"] == 0
        claims = jwt.decode(fleet.owner_token, options={"verify_signature": False})
        now = int(time.time())
        fleet.owner_token = jwt.encode(
            {**claims, "iat": now - 1000, "exp": now - 100},
            module_system.settings.jwt_secret.get_secret_value(),
            algorithm="HS256",
        )
        await fleet.archived_messages()  # refused before: HTTPStatusError 401

        async def all_archived() -> bool:  # history folds them in behind the chat
            return await fleet.archived_messages() == sent["sent"]

        await eventually(all_archived, timeout=30, what="history holding every message")
    finally:
        await fleet.close()
