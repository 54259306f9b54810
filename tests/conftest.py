"""Shared fixtures: every test gets its own RabbitMQ vhost and MongoDB database."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.keys import test_secrets
from tests.servers import MongoServer, RabbitServer, RabbitVhosts, stream_override


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
