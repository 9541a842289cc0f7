"""The `profile-groups` console script (docs/operations.md)."""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from uuid import UUID

from profile_groups.config import Settings, get_settings

T = TypeVar("T")


def _migrate(database_url: str) -> None:
    from alembic import command

    from profile_groups.ops.service import alembic_config

    cfg = alembic_config()
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


def _with_session(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from profile_groups.db import create_engine, create_sessionmaker

    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await fn(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _print(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    print(json.dumps(data) if getattr(args, "json", False) else human)


def cmd_apps_create(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import create_application

    app, issued = _with_session(settings, lambda s: create_application(s, args.name))
    data = {
        "client_id": app.client_id,
        "name": app.name,
        "token": issued.token,
        "token_id": str(issued.token_id),
    }
    _print(
        args,
        data,
        f"client_id: {app.client_id}\ntoken:     {issued.token}\n"
        f"token_id:  {issued.token_id}\n(the token is shown only once)",
    )


def cmd_apps_secret(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import get_application

    app = _with_session(settings, lambda s: get_application(s, args.client_id))
    _print(
        args, {"client_id": app.client_id, "client_secret": app.client_secret}, app.client_secret
    )


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import create_token, get_application

    async def run(session: Any) -> Any:
        return await create_token(session, await get_application(session, args.client_id))

    issued = _with_session(settings, run)
    _print(
        args,
        {"token": issued.token, "token_id": str(issued.token_id)},
        f"token:    {issued.token}\ntoken_id: {issued.token_id}\n(the token is shown only once)",
    )


def cmd_tokens_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import revoke_token

    _with_session(settings, lambda s: revoke_token(s, UUID(args.token_id)))
    _print(args, {"token_id": args.token_id, "revoked": True}, f"revoked {args.token_id}")


def cmd_groups_activate(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.groups.service import activate_group

    _with_session(settings, lambda s: activate_group(s, UUID(args.group_id)))
    _print(args, {"group_id": args.group_id, "is_active": True}, f"activated {args.group_id}")


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    _migrate(settings.database_url)
    print("migrations at head")


def _serve(settings: Settings, api: bool, worker: bool) -> None:
    import uvicorn

    from profile_groups.app import create_app
    from profile_groups.kit.logging import configure_logging
    from profile_groups.ops.heartbeat import HEARTBEAT_SECONDS, HeartbeatWorker, supervise
    from profile_groups.worker import worker_settings

    configure_logging(settings.LOG_LEVEL)
    settings = _with_cursor_secret(settings)

    def make_worker() -> HeartbeatWorker:
        # In `run` uvicorn owns the signals; the worker stops when the server does.
        return HeartbeatWorker(
            **worker_settings(
                settings, handle_signals=not api, health_check_interval=HEARTBEAT_SECONDS
            )
        )

    async def run() -> int:
        if not api:
            # `worker`: reconnects by itself after a dependency error; exits 1 on any other.
            return await supervise(make_worker, restart_always=False)
        supervisor = None
        if worker:
            # `run`: whatever stops the worker, a new one is started (with backoff).
            supervisor = asyncio.create_task(supervise(make_worker, restart_always=True))
        config = uvicorn.Config(
            create_app(settings),
            host=settings.HOST,
            port=settings.PORT,
            log_config=None,
            proxy_headers=True,
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            if supervisor is not None:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
        return 0

    code = asyncio.run(run())
    if code:
        sys.exit(code)


def _with_cursor_secret(settings: Settings) -> Settings:
    """`settings` with a CURSOR_SECRET: the one set, else the one generated for DATA_DIR on
    first start (saved as DATA_DIR/cursor_secret, mode 600), so cursors outlive a restart."""
    from pydantic import SecretStr

    if settings.CURSOR_SECRET is not None:
        return settings
    data_dir = Path(settings.DATA_DIR)
    path = data_dir / "cursor_secret"
    if not path.exists():
        import secrets

        data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process of DATA_DIR made it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
    return settings.model_copy(update={"CURSOR_SECRET": SecretStr(path.read_text().strip())})


def cmd_api(args: argparse.Namespace, settings: Settings) -> None:
    _serve(settings, api=True, worker=False)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    _serve(settings, api=False, worker=True)


def cmd_run(args: argparse.Namespace, settings: Settings) -> None:
    """All-in-one: embedded servers where no URL is set, migrations, default app, API + worker."""
    from profile_groups.embedded import start_embedded

    data_dir = Path(settings.DATA_DIR)
    data_dir.mkdir(parents=True, exist_ok=True)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; turn it into SystemExit so
    # the embedded servers below are stopped instead of being left running.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    servers = start_embedded(data_dir, settings.DATABASE_URL is None, settings.REDIS_URL is None)
    try:
        updates = {}
        if servers.database_url:
            updates["DATABASE_URL"] = servers.database_url
        if servers.redis_url:
            updates["REDIS_URL"] = servers.redis_url
        settings = settings.model_copy(update=updates)
        _migrate(settings.database_url)
        creds = _default_application(settings, data_dir)
        base = f"http://{settings.HOST}:{settings.PORT}"
        print(
            f"\nProfile Groups is starting.\n"
            f"  API:       {base}/api/v1/applications/{creds['client_id']}/\n"
            f"  Docs:      {base}/docs\n"
            f"  client_id: {creds['client_id']}\n"
            f"  token:     {creds['token']}\n"
            f"  (saved in {data_dir / 'credentials.json'})\n",
            flush=True,
        )
        _serve(settings, api=True, worker=True)
    finally:
        servers.stop()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _default_application(settings: Settings, data_dir: Path) -> dict[str, str]:
    """Create the default application on first start; later starts reuse the saved credentials."""
    from profile_groups.applications.repository import ApplicationRepository
    from profile_groups.applications.service import create_application

    path = data_dir / "credentials.json"

    async def run(session: Any) -> dict[str, str]:
        if path.exists():
            saved: dict[str, str] = json.loads(path.read_text())
            if await ApplicationRepository(session).get_by_client_id(saved["client_id"]):
                return saved
        app, issued = await create_application(session, "Default application")
        return {"client_id": app.client_id, "token": issued.token, "token_id": str(issued.token_id)}

    creds = _with_session(settings, run)
    path.write_text(json.dumps(creds, indent=2))
    os.chmod(path, 0o600)
    return creds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="profile-groups", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "run", help="API + worker; embedded PostgreSQL/Redis when no URL is set"
    ).set_defaults(fn=cmd_run)
    sub.add_parser("api", help="serve the HTTP API").set_defaults(fn=cmd_api)
    sub.add_parser("worker", help="run the arq worker").set_defaults(fn=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)

    apps = sub.add_parser("apps", help="applications").add_subparsers(dest="sub", required=True)
    p = apps.add_parser("create", help="create an application and its first token")
    p.add_argument("name")
    p.set_defaults(fn=cmd_apps_create)
    p = apps.add_parser("secret", help="show the secret that signs profile tokens")
    p.add_argument("client_id")
    p.set_defaults(fn=cmd_apps_secret)

    tokens = sub.add_parser("tokens", help="producer tokens").add_subparsers(
        dest="sub", required=True
    )
    p = tokens.add_parser("create", help="add a token to an application")
    p.add_argument("client_id")
    p.set_defaults(fn=cmd_tokens_create)
    p = tokens.add_parser("revoke", help="revoke a token")
    p.add_argument("token_id")
    p.set_defaults(fn=cmd_tokens_revoke)

    groups = sub.add_parser("groups", help="profile groups").add_subparsers(
        dest="sub", required=True
    )
    p = groups.add_parser("activate", help="bring back a deactivated group")
    p.add_argument("group_id")
    p.set_defaults(fn=cmd_groups_activate)

    for action in (apps, tokens, groups):
        for choice in action.choices.values():
            choice.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from profile_groups.kit.errors import ProfileGroupsError

    try:
        args.fn(args, get_settings())
    except ProfileGroupsError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        sys.exit(1)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
