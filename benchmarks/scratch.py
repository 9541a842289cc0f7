"""What every benchmark shares: a scratch database on the server named by DATABASE_URL."""

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from profile_groups.cli import _migrate

SERVER_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(
    prefix: str, keep: bool = False, reuse: str | None = None
) -> AsyncIterator[URL]:
    """A new database migrated to head, dropped on the way out unless `keep`; with `reuse`, that
    existing (kept) database instead, migrated to head and kept."""
    server = make_url(SERVER_URL)
    name = reuse or f"{prefix}_{secrets.token_hex(4)}"
    keep = keep or reuse is not None
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    if reuse is None:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name)
    try:
        await asyncio.to_thread(_migrate, url_text(url))
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def insert_application(conn: AsyncConnection, custom: dict[str, str]) -> uuid.UUID:
    """A benchmark application (named 'bench') with custom attributes {key: data_type}."""
    app_id = uuid.uuid4()
    await conn.execute(
        text(
            "INSERT INTO applications (id, client_id, name, client_secret) "
            "VALUES (:app, :cid, 'bench', 'secret')"
        ),
        {"app": app_id, "cid": secrets.token_urlsafe(30)[:40]},
    )
    for key, data_type in custom.items():
        await conn.execute(
            text(
                "INSERT INTO custom_attributes (application_id, key, data_type) "
                "VALUES (:app, :key, :type)"
            ),
            {"app": app_id, "key": key, "type": data_type},
        )
    return app_id
