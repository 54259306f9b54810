"""Shared fixtures: every test gets its own RabbitMQ vhost and MongoDB database."""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from passlib.context import CryptContext  # type: ignore[import-untyped]

from relaydesk import passwords
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.keys import test_secrets
from tests.servers import MongoServer, RabbitServer, RabbitVhosts, stream_override


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2id at its lowest cost for passwords hashed and checked in the test process.

    Production's cost (64 MiB, 3 passes, 4 lanes) takes ~0.2 s of CPU per hash or check, on
    the event loop; the suite logs in and creates accounts hundreds of times. Same algorithm
    and format, so hashes made by the CLI's subprocesses at full cost still verify here (the
    cost is read from the hash). No test is about the cost itself.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            passwords,
            "HASHER",
            CryptContext(
                schemes=["argon2"],
                deprecated="auto",
                argon2__memory_cost=64,
                argon2__rounds=1,
                argon2__parallelism=1,
            ),
        )
        yield


@pytest.fixture(scope="session")
def broker() -> Iterator[RabbitServer]:
    server = RabbitServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vhosts(broker: RabbitServer) -> RabbitVhosts:
    return broker.vhosts


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    server = MongoServer()
    yield server
    server.stop()


@pytest.fixture
def vhost(vhosts: RabbitVhosts) -> Iterator[str]:
    name = vhosts.create()
    yield name
    vhosts.delete(name)


@pytest.fixture
def amqp_url(vhosts: RabbitVhosts, vhost: str) -> str:
    return vhosts.url_for(vhost)


@pytest.fixture
def mongo_url(mongo_server: MongoServer) -> str:
    return mongo_server.url


@pytest.fixture
def mongo_db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(
    amqp_url: str, vhosts: RabbitVhosts, vhost: str, mongo_url: str, mongo_db_name: str
) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        mongo_db=mongo_db_name,
        publish_timeout_s=5.0,
        **stream_override(vhosts, vhost),
        **test_secrets(),
    )


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    connected = await Bus(
        settings.amqp_url, service="test", stream_url=settings.stream_url
    ).connect()
    yield connected
    await connected.close()


# Modules that take longest (seconds of wall time each, on 2 cores): started first, so that
# scripts/test.sh's parallel phase does not end with the other workers idle, waiting on one
# of them. Order within a module is kept; xdist is told not to reorder (--no-loadscope-reorder).
LONGEST_FIRST = (
    "tests/bench/test_bench_smoke.py",
    "tests/cluster/",
    "tests/browser/",
    "tests/security/test_fuzz.py",
    "tests/billing/test_billing.py",
    "tests/history_service/test_replay_slices.py",
    "tests/history_service/test_audit_export.py",
    "tests/foundation/test_up.py",
    "tests/foundation/test_up_failures.py",
    "tests/history_service/test_replay.py",
    "tests/admin/test_cli.py",
    "tests/fault/test_faults.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        first = [i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)]
        return first[0] if first else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


# Directories whose modules run one after another on one worker (the unit xdist hands out),
# never two at a time: each browser test drives a Chromium with several pages, and two of
# them at once on 2 cores starve the pages' timers past the tests' 15 s waits.
ONE_WORKER = ("tests/browser/",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesTogether(LoadScopeScheduling):
        """xdist's loadscope (a module's tests on one worker), with ``ONE_WORKER`` as one unit."""

        def _split_scope(self, nodeid: str) -> str:
            for directory in ONE_WORKER:
                if nodeid.startswith(directory):
                    return directory
            return str(super()._split_scope(nodeid))

    return ModulesTogether(config, log)
