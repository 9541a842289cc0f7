"""The FastAPI application: lifespan, middleware, error handlers and routers."""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from redis.asyncio import ConnectionPool

from profile_groups.config import Settings, get_settings
from profile_groups.console import install_console
from profile_groups.db import create_engine, create_sessionmaker
from profile_groups.kit.cursor import CursorCodec
from profile_groups.kit.errors import install_error_handlers
from profile_groups.kit.logging import configure_logging
from profile_groups.kit.middleware import RequestMiddleware
from profile_groups.kit.openapi import DESCRIPTION, TAGS, install_openapi, operation_id
from profile_groups.kit.state import AppState, bind
from profile_groups.ops.metrics import install_metrics
from profile_groups.ops.router import router as ops_router
from profile_groups.queue import QUEUE_NAME
from profile_groups.routes import api_router
from profile_groups.segmentation.schemas import RULE_TREE_SCHEMAS


def create_app(settings: Settings) -> FastAPI:
    """The API, built from `settings` alone (nothing reads the process environment later)."""

    # The CLI passes the secret of DATA_DIR when none is set; without one (tests, embedding)
    # cursors are signed with a random secret of this process, never a published one.
    cursor_secret = (
        settings.CURSOR_SECRET.get_secret_value().encode()
        if settings.CURSOR_SECRET is not None
        else secrets.token_bytes(32)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        arq = ArqRedis(
            ConnectionPool.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5),
            default_queue_name=QUEUE_NAME,
        )
        bind(
            app,
            AppState(
                settings=settings,
                engine=engine,
                sessionmaker=create_sessionmaker(engine),
                arq=arq,
                cursor_codec=CursorCodec(cursor_secret),
            ),
        )
        try:
            yield
        finally:
            await arq.aclose()
            await engine.dispose()

    # /docs and /redoc load Swagger UI and ReDoc from the package fastapi-offline, served under
    # /static-offline-docs by this process: the pages work without internet access.
    app = FastAPIOffline(
        title="Profile Groups",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        redirect_slashes=False,
        generate_unique_id_function=operation_id,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    install_openapi(app, RULE_TREE_SCHEMAS)
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware)
    # The scrape-time collectors of /metrics; a package adds its own as an argument here
    # (docs/operations.md).
    install_metrics(app)
    app.include_router(ops_router)
    app.include_router(api_router)
    install_console(app)
    return app


def main_app() -> FastAPI:
    """Factory for `uvicorn --factory profile_groups.app:main_app`."""
    settings = get_settings()
    configure_logging(settings.LOG_LEVEL)
    return create_app(settings)
