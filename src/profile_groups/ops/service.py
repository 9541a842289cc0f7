import asyncio
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import text

from profile_groups.kit.state import app_state
from profile_groups.ops.repository import current_revision

_TIMEOUT = 2.0


def alembic_config() -> Config:
    # The repository root in a checkout; the working directory in the container image.
    candidates = [Path(__file__).resolve().parents[3], Path.cwd()]
    root = next((c for c in candidates if (c / "alembic.ini").is_file()), candidates[0])
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "migrations"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _check_db(app: FastAPI) -> str:
    try:
        async with app_state(app).engine.connect() as conn:
            revision = await asyncio.wait_for(current_revision(conn), _TIMEOUT)
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready", reported, not raised
        return f"error: {type(exc).__name__}"
    if revision != head_revision():
        return f"error: migrations at {revision}, head is {head_revision()}"
    return "ok"


async def _check_redis(app: FastAPI) -> str:
    try:
        await asyncio.wait_for(app_state(app).arq.ping(), _TIMEOUT)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def readiness(app: FastAPI) -> dict[str, str]:
    db, redis = await asyncio.gather(_check_db(app), _check_redis(app))
    return {"database": db, "redis": redis}
