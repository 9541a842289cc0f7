import asyncio
import time
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import text

from profile_groups.kit.state import app_state
from profile_groups.ops.heartbeat import WORKER_STALE_SECONDS, last_seen
from profile_groups.ops.repository import current_revision

# Every check is bounded as a whole (pool checkout and connect included), so /readyz answers
# within about this long whatever state PostgreSQL or Redis is in.
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


async def _revision(app: FastAPI) -> str | None:
    async with app_state(app).engine.connect() as conn:
        revision = await current_revision(conn)
        await conn.execute(text("SELECT 1"))
    return revision


async def _check_db(app: FastAPI) -> str:
    try:
        revision = await asyncio.wait_for(_revision(app), _TIMEOUT)
    except TimeoutError:
        return f"error: no answer within {_TIMEOUT:g} s"
    except Exception as exc:  # any failure means "not ready", reported, not raised
        return f"error: {type(exc).__name__}"
    if revision != head_revision():
        return f"error: migrations at {revision}, head is {head_revision()}"
    return "ok"


async def _check_redis(app: FastAPI) -> str:
    try:
        await asyncio.wait_for(app_state(app).arq.ping(), _TIMEOUT)
    except TimeoutError:
        return f"error: no answer within {_TIMEOUT:g} s"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _check_worker(app: FastAPI) -> str:
    """A worker seen within the last minute (ops/heartbeat.py). Before any heartbeat, the API's
    first minute is a grace period: a worker starting beside it has not beaten yet."""
    state = app_state(app)
    try:
        seen = await asyncio.wait_for(last_seen(state.arq), _TIMEOUT)
    except TimeoutError:
        return f"error: no answer within {_TIMEOUT:g} s"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    now = time.time()
    if seen is None:
        if now - state.started_at <= WORKER_STALE_SECONDS:
            return "ok"
        return "error: no worker seen"
    if now - seen > WORKER_STALE_SECONDS:
        return f"error: worker not seen for {int(now - seen)} s"
    return "ok"


async def readiness(app: FastAPI) -> dict[str, str]:
    db, redis, worker = await asyncio.gather(_check_db(app), _check_redis(app), _check_worker(app))
    return {"database": db, "redis": redis, "worker": worker}
