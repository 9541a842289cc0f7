"""Engine and session factory shared by the API, the worker and the CLI."""

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from profile_groups.config import Settings

AsyncSessionMaker = async_sessionmaker[AsyncSession]
AfterCommit = Callable[[], Awaitable[None]]


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    return create_async_engine(
        url or settings.database_url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_POOL_SIZE,
        pool_pre_ping=True,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        # A failed statement's error, logged, must not carry its parameters: webhook secrets,
        # tokens' hashes and profiles' personal data.
        hide_parameters=True,
        connect_args={
            # asyncpg: bound the connect (TCP, TLS, startup) and, client side, every command,
            # so a frozen server answers TimeoutError (a 503) instead of hanging a request.
            "timeout": settings.DB_CONNECT_TIMEOUT_SECONDS,
            "command_timeout": settings.db_command_timeout_seconds,
            "server_settings": {
                "statement_timeout": str(settings.STATEMENT_TIMEOUT_MS),
                "timezone": "UTC",
                # asyncpg prepares every statement; after a few runs PostgreSQL may switch to a
                # generic plan, which for `x = ANY(:array)` compares every row with every
                # element (seconds for a 1,000-id batch on a fresh table) instead of hashing the
                # array. Our statements are cheap to plan, so plan each for its actual values.
                "plan_cache_mode": "force_custom_plan",
                # Estimates over CTEs and temporary tables (no statistics) run into the
                # millions, which turns JIT on: the webhook producer, which reads nothing when
                # there is nothing to send, compiled for a second on every tick, and each
                # evaluation's diff for half a second. Measured on the full pass over 1,000,000
                # profiles, JIT saved nothing either (27.0 s with it, 22.6 s without).
                "jit": "off",
            },
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> AsyncSessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the request's transaction has committed (e.g. enqueue a job).

    Jobs must never see data that may still roll back, so they are not enqueued inside it.
    """
    session.info.setdefault("after_commit", []).append(callback)
