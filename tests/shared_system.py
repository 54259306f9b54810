"""One running system shared by every test of a module, for suites of many small checks.

The per-test ``system`` fixtures start services and a gateway for each test; a module of
twenty permission checks would spend most of its time starting and stopping. This builds
the same production system once, on its own vhost and database, from the session's
servers. Tests sharing it must use their own tenants (names unique to the test).
"""

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from relaydesk.settings import Settings
from tests.keys import test_secrets
from tests.servers import MongoServer, RabbitVhosts, stream_override
from tests.system import RunningSystem, running_system


@contextlib.asynccontextmanager
async def throwaway_settings(
    vhosts: RabbitVhosts, mongo_server: MongoServer, **overrides: Any
) -> AsyncIterator[Settings]:
    """Settings on a vhost and database of their own, from the session's servers; the vhost
    is deleted afterwards."""
    vhost = vhosts.create()
    try:
        yield Settings(
            amqp_url=vhosts.url_for(vhost),
            mongo_url=mongo_server.url,
            mongo_db=f"t_{uuid.uuid4().hex[:12]}",
            publish_timeout_s=5.0,
            **stream_override(vhosts, vhost),
            **{**test_secrets(), **overrides},
        )
    finally:
        vhosts.delete(vhost)


# Every test sharing a system signs in from 127.0.0.1, which the gateway's per-address limit on
# credential attempts (20 at once) counts as one client: the module's tests, run back to
# back, would share one test's budget. A test of the limit itself sets its own.
SHARED_AUTH_BURST = 200


@contextlib.asynccontextmanager
async def shared_system(
    vhosts: RabbitVhosts,
    mongo_server: MongoServer,
    with_history: bool = True,
    billing_clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningSystem]:
    """``overrides`` are settings; ``with_history`` and ``billing_clock`` as for
    ``running_system``."""
    overrides = {"auth_rate_burst": SHARED_AUTH_BURST, **overrides}
    async with (
        throwaway_settings(vhosts, mongo_server, **overrides) as settings,
        running_system(settings, with_history=with_history, billing_clock=billing_clock) as running,
    ):
        yield running
