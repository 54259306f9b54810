"""Shared fixtures: every test gets its own RabbitMQ vhost and MongoDB database (a module's
tests sharing ``module_system`` get one for the module)."""

import contextlib
import functools
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx._transports.default
import pytest
import pytest_asyncio
from passlib.context import CryptContext  # type: ignore[import-untyped]

from relaydesk import passwords
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.keys import test_secrets
from tests.servers import MongoServer, OwnRabbitNode, RabbitServer, RabbitVhosts, stream_override

if TYPE_CHECKING:
    from tests.system import RunningSystem


@pytest.fixture(scope="session", autouse=True)
def background_at_the_workers_priority() -> Iterator[None]:
    """Every ``relaydesk up`` a test starts keeps its background children at its own
    priority (``RELAYDESK_BACKGROUND_NICE=0``; a test asking for another sets its own).

    The default, 19, puts the archive behind the chat of the *same* system; in the suite six
    workers' systems share the two cores, and a store at 19 would wait on the other workers'
    tests instead, which no test is about (tests/foundation/test_child_priority.py tests the
    priority itself)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RELAYDESK_BACKGROUND_NICE", "0")
        yield


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


@pytest.fixture(scope="session", autouse=True)
def one_tls_context_per_kind() -> Iterator[None]:
    """One TLS client context per kind (verify or not, environment or not) in the test process.

    httpx builds a context for every client and transport, http or https, by parsing the
    whole CA bundle: ~25 ms of CPU, and the suite makes thousands of clients of
    http://127.0.0.1. A context is never modified after it is built, so clients built with
    the same arguments can share one; anything else (a context or a certificate passed in)
    is built as before.
    """
    build = httpx._transports.default.create_ssl_context

    @functools.cache
    def shared(verify: bool, trust_env: bool) -> ssl.SSLContext:
        return build(verify=verify, trust_env=trust_env)

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if cert is None and isinstance(verify, bool):
            return shared(verify, trust_env)
        return build(verify=verify, cert=cert, trust_env=trust_env)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx._transports.default, "create_ssl_context", create_ssl_context)
        yield


@pytest.fixture(scope="session")
def broker() -> Iterator[RabbitServer]:
    server = RabbitServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vhosts(broker: RabbitServer) -> RabbitVhosts:
    return broker.vhosts


@pytest.fixture(scope="module")
def own_broker() -> Iterator[OwnRabbitNode]:
    """A broker node of the module's own, for a module whose tests stop their broker: such a
    module overrides ``vhosts`` with ``own_broker.vhosts`` (its tests' vhosts, settings and
    buses are on this node), and stopping it stops nobody else's broker, so those tests run
    in parallel with the others (scripts/test.sh)."""
    node = OwnRabbitNode()
    yield node
    node.stop()


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


@contextlib.asynccontextmanager
async def bus_on(settings: Settings) -> AsyncIterator[Bus]:
    connected = await Bus(
        settings.amqp_url, service="test", stream_url=settings.stream_url
    ).connect()
    try:
        yield connected
    finally:
        await connected.close()


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    async with bus_on(settings) as connected:
        yield connected


@pytest.fixture(scope="module")
def module_system_history() -> bool:
    """Whether ``module_system`` runs the history service (tests/admin/ leaves it out, as its
    per-test ``system`` does)."""
    return True


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_system(
    vhosts: RabbitVhosts, mongo_server: MongoServer, module_system_history: bool
) -> AsyncIterator["RunningSystem"]:
    """A system like the per-test ``system``, built once and shared by all tests of a module:
    starting and stopping one costs ~0.75 s of CPU. Its tests run on the module's event loop
    (``pytestmark = pytest.mark.asyncio(loop_scope="module")``) and each uses tenants of its
    own (tests/shared_system.py)."""
    # Imported here: a run of modules that start no system does not import one (~0.7 s).
    from tests.shared_system import shared_system

    async with shared_system(vhosts, mongo_server, with_history=module_system_history) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_bus(module_system: "RunningSystem") -> AsyncIterator[Bus]:
    """A bus on ``module_system``'s vhost, as ``bus`` is on the per-test ``settings``'."""
    async with bus_on(module_system.settings) as connected:
        yield connected


# Modules that take longest (wall time each in the parallel phase, on 2 cores; measured with
# --durations=0 and per-worker timelines), longest first: xdist hands a module to the next free
# worker in this order, so the long ones start at once and the short ones fill in at the end,
# instead of one long module starting late and keeping the phase going while the other workers
# sit idle. Order within a module is kept; xdist is told not to reorder
# (--no-loadscope-reorder). The browser modules are one unit (ONE_WORKER, ~100 s together).
LONGEST_FIRST = (
    "tests/browser/",
    "tests/foundation/test_up.py",  # six children killed and restarted: slowest when contended
    "tests/fault/test_faults.py",  # starts a broker node of its own
    "tests/billing/test_billing.py",
    "tests/admin/test_cli.py",
    "tests/security/test_fuzz.py",
    "tests/cluster/",
    "tests/security/test_secrets.py",
    "tests/foundation/test_cancelled_start.py",  # a reader opened and cancelled ~150 times
    "tests/foundation/test_closed_while_opening.py",  # readers opened and closed ~2 x 100 times
    "tests/history_service/test_audit_export.py",
    "tests/history_service/test_replay.py",
    "tests/history_service/test_replay_slices.py",
    "tests/connectors/test_platforms.py",
    "tests/bench/test_bench_smoke.py",
    "tests/security/test_passwords.py",
    "tests/security/test_headers.py",
    "tests/fault/test_service_crashes.py",
    "tests/connectors/test_broker_outage.py",  # starts a broker node of its own
    "tests/connectors/test_wechat_messenger.py",
    "tests/connectors/test_routing.py",
    "tests/admin/test_permission_matrix.py",
    "tests/foundation/test_up_failures.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, bool]:
        path = item.nodeid.split("::", 1)[0]
        first = [i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)]
        # Within a directory, modules sharing its one system come after those that start their
        # own (tests/browser/conftest.py): the shared one starts late and stops at once.
        shares = bool(getattr(getattr(item, "module", None), "SHARES_ONE_SYSTEM", False))
        return (first[0] if first else len(LONGEST_FIRST), shares)

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
