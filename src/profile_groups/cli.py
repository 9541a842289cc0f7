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
from typing import Any, NoReturn, TypeVar
from uuid import UUID

from profile_groups.config import Settings, get_settings

T = TypeVar("T")

# Written by `run` (mode 600) while it serves: the URLs of its servers (embedded or given), so
# the admin commands find them with no environment (docs/operations.md). Removed on exit.
SERVERS_FILE = "servers.json"


class CliError(Exception):
    """A one-line error for the person at the terminal (printed as `error: ...`, exit 1)."""


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _save_servers(data_dir: Path, settings: Settings, base_url: str) -> None:
    path = data_dir / SERVERS_FILE
    data = {
        "pid": os.getpid(),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "base_url": base_url,
    }
    tmp = path.with_name(f".{SERVERS_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _forget_servers(data_dir: Path) -> None:
    """Remove DATA_DIR/servers.json if this process wrote it (not another `run`'s)."""
    path = data_dir / SERVERS_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def _admin_settings(settings: Settings) -> Settings:
    """The admin commands' settings: DATABASE_URL / REDIS_URL when set, else those of the running
    `profile-groups run` of DATA_DIR (its servers.json)."""
    if settings.DATABASE_URL is not None:
        return settings
    data_dir = Path(settings.DATA_DIR)
    path = data_dir / SERVERS_FILE
    hint = f"start it with `make run` (DATA_DIR={data_dir}) or set DATABASE_URL"
    try:
        saved = json.loads(path.read_text())
        database_url = saved["DATABASE_URL"]
    except FileNotFoundError:
        raise CliError(
            f"DATABASE_URL is not set and no `profile-groups run` is serving {data_dir}: {hint}."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read {path} ({exc!r}): {hint}.") from None
    if not _pid_alive(saved.get("pid")):
        raise CliError(
            f"the `profile-groups run` of {data_dir} (pid {saved.get('pid')}) is not running: "
            f"{hint}."
        )
    updates = {"DATABASE_URL": database_url}
    if settings.REDIS_URL is None and saved.get("REDIS_URL"):
        updates["REDIS_URL"] = saved["REDIS_URL"]
    return settings.model_copy(update=updates)


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


def cmd_apps_list(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import list_applications
    from profile_groups.kit.timestamps import format_timestamp

    rows = _with_session(settings, list_applications)
    apps = [
        {
            "client_id": app.client_id,
            "name": app.name,
            "active_tokens": tokens,
            "created_at": format_timestamp(app.created_at),
        }
        for app, tokens in rows
    ]
    lines = [f"{'client_id':<40}  {'tokens':>6}  {'created_at':<27}  name"]
    lines += [
        f"{a['client_id']:<40}  {a['active_tokens']:>6}  {a['created_at']:<27}  {a['name']}"
        for a in apps
    ]
    _print(args, {"applications": apps}, "\n".join(lines) if apps else "no applications")


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


def cmd_tokens_list(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import get_application, list_tokens
    from profile_groups.kit.timestamps import format_timestamp

    async def run(session: Any) -> Any:
        return await list_tokens(session, await get_application(session, args.client_id))

    tokens = [
        {
            "token_id": str(token.id),
            "created_at": format_timestamp(token.created_at),
            "revoked_at": format_timestamp(token.revoked_at) if token.revoked_at else None,
        }
        for token in _with_session(settings, run)
    ]
    lines = [f"{'token_id':<36}  {'created_at':<27}  revoked_at"]
    lines += [
        f"{t['token_id']:<36}  {t['created_at']:<27}  {t['revoked_at'] or 'active'}" for t in tokens
    ]
    _print(args, {"client_id": args.client_id, "tokens": tokens}, "\n".join(lines))


def cmd_tokens_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import revoke_token

    _with_session(settings, lambda s: revoke_token(s, args.token_id))
    _print(args, {"token_id": str(args.token_id), "revoked": True}, f"revoked {args.token_id}")


def cmd_groups_activate(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.groups.service import activate_group

    _with_session(settings, lambda s: activate_group(s, args.group_id))
    _print(args, {"group_id": str(args.group_id), "is_active": True}, f"activated {args.group_id}")


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
        _save_servers(data_dir, settings, base)
        print(
            f"\nProfile Groups is starting.\n"
            f"  API:       {base}/api/v1/applications/{creds['client_id']}/\n"
            f"  Docs:      {base}/docs\n"
            f"  Console:   {base}/console/#client_id={creds['client_id']}&token={creds['token']}\n"
            f"  client_id: {creds['client_id']}\n"
            f"  token:     {creds['token']}\n"
            f"  (saved in {data_dir / 'credentials.json'})\n",
            flush=True,
        )
        _serve(settings, api=True, worker=True)
    finally:
        _forget_servers(data_dir)
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


EXAMPLES = """\
examples:
  profile-groups run                          # API + worker (embedded servers under DATA_DIR)
  profile-groups apps create "My app"         # while `run` serves: no environment needed
  profile-groups apps list
  profile-groups tokens create CLIENT_ID
  profile-groups tokens list CLIENT_ID --json

Without DATABASE_URL, the apps/tokens/groups/migrate commands use the servers of the
`profile-groups run` serving DATA_DIR (default ./.data), read from DATA_DIR/servers.json.
"""


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a UUID") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="profile-groups",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "run", help="API + worker; embedded PostgreSQL/Redis when no URL is set"
    ).set_defaults(fn=cmd_run)
    sub.add_parser("api", help="serve the HTTP API").set_defaults(fn=cmd_api)
    sub.add_parser("worker", help="run the arq worker").set_defaults(fn=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(
        fn=cmd_migrate, admin=True
    )

    apps = sub.add_parser("apps", help="applications").add_subparsers(dest="sub", required=True)
    p = apps.add_parser("create", help="create an application and its first token")
    p.add_argument("name")
    p.set_defaults(fn=cmd_apps_create)
    p = apps.add_parser("list", help="every application and its number of active tokens")
    p.set_defaults(fn=cmd_apps_list)
    p = apps.add_parser("secret", help="show the secret that signs profile tokens")
    p.add_argument("client_id")
    p.set_defaults(fn=cmd_apps_secret)

    tokens = sub.add_parser("tokens", help="producer tokens").add_subparsers(
        dest="sub", required=True
    )
    p = tokens.add_parser("create", help="add a token to an application")
    p.add_argument("client_id")
    p.set_defaults(fn=cmd_tokens_create)
    p = tokens.add_parser("list", help="an application's tokens (ids and dates)")
    p.add_argument("client_id")
    p.set_defaults(fn=cmd_tokens_list)
    p = tokens.add_parser("revoke", help="revoke a token")
    p.add_argument("token_id", type=_uuid)
    p.set_defaults(fn=cmd_tokens_revoke)

    groups = sub.add_parser("groups", help="profile groups").add_subparsers(
        dest="sub", required=True
    )
    p = groups.add_parser("activate", help="bring back a deactivated group")
    p.add_argument("group_id", type=_uuid)
    p.set_defaults(fn=cmd_groups_activate)

    for action in (apps, tokens, groups):
        for choice in action.choices.values():
            choice.add_argument("--json", action="store_true", help="print one JSON object")
            choice.set_defaults(admin=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    from profile_groups.kit.errors import ProfileGroupsError

    try:
        settings = get_settings()
        if getattr(args, "admin", False):
            settings = _admin_settings(settings)
        args.fn(args, settings)
    except (ProfileGroupsError, CliError, RuntimeError, ValueError) as exc:
        if isinstance(exc, ProfileGroupsError):
            detail = exc.detail
        elif isinstance(exc, ValidationError):  # the environment's settings
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        else:
            detail = str(exc)
        _fail(detail, 1 if not isinstance(exc, ValueError) else 2)
    except (OSError, TimeoutError) as exc:
        _fail(f"cannot reach the database or Redis: {exc}", 1)
    except DBAPIError as exc:
        _fail(f"database error: {exc.orig or exc}", 1)


def _fail(detail: str, code: int) -> NoReturn:
    """One line on stderr (the first line of a multi-line driver message), then exit."""
    lines = detail.strip().splitlines() or ["unknown error"]
    print(f"error: {lines[0]}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
