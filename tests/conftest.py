"""Shared fixtures: every test gets its own RabbitMQ vhost and MongoDB database."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.servers import MongoServer, RabbitVhosts, rabbit_vhosts


@pytest.fixture(scope="session")
def vhosts() -> Iterator[RabbitVhosts]:
    yield rabbit_vhosts()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    server = MongoServer()
    yield server
    server.stop()


@pytest.fixture
def amqp_url(vhosts: RabbitVhosts) -> Iterator[str]:
    vhost = vhosts.create()
    yield vhosts.url_for(vhost)
    vhosts.delete(vhost)


@pytest.fixture
def mongo_url(mongo_server: MongoServer) -> str:
    return mongo_server.url


@pytest.fixture
def mongo_db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(amqp_url: str, mongo_url: str, mongo_db_name: str) -> Settings:
    return Settings(amqp_url=amqp_url, mongo_url=mongo_url, mongo_db=mongo_db_name, publish_timeout_s=5.0)


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    connected = await Bus(settings.amqp_url, service="test").connect()
    yield connected
    await connected.close()
