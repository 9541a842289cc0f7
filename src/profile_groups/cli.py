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


def _write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only (mode 600 from the first byte,
    whatever mode an older file had), atomically: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _save_servers(data_dir: Path, settings: Settings, base_url: str) -> None:
    path = data_dir / SERVERS_FILE
    data = {
        "pid": os.getpid(),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "base_url": base_url,
    }
    _write_private(path, json.dumps(data, indent=2))


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


def cmd_groups_list(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.applications.service import get_application
    from profile_groups.groups.service import list_all_groups
    from profile_groups.kit.timestamps import format_timestamp

    async def run(session: Any) -> Any:
        app = await get_application(session, args.client_id)
        return await list_all_groups(session, app, inactive=args.inactive)

    groups = [
        {
            "id": str(group.id),
            "name": group.name,
            "membership_type": group.membership_type,
            "is_active": group.is_active,
            "profile_count": group.profile_count,
            "custom_id": group.custom_id,
            "created_at": format_timestamp(group.created_at),
        }
        for group in _with_session(settings, run)
    ]
    lines = [f"{'id':<36}  {'type':<7}  {'members':>8}  {'created_at':<27}  name"]
    lines += [
        f"{g['id']:<36}  {g['membership_type']:<7}  {g['profile_count']:>8}  "
        f"{g['created_at']:<27}  {g['name']}"
        for g in groups
    ]
    none = "no inactive groups" if args.inactive else "no active groups"
    _print(
        args,
        {"client_id": args.client_id, "inactive": args.inactive, "groups": groups},
        "\n".join(lines) if groups else none,
    )


def cmd_groups_activate(args: argparse.Namespace, settings: Settings) -> None:
    from profile_groups.groups.service import activate_group

    _with_session(settings, lambda s: activate_group(s, args.group_id))
    _print(args, {"group_id": str(args.group_id), "is_active": True}, f"activated {args.group_id}")


def cmd_worker_alive(args: argparse.Namespace, settings: Settings) -> None:
    """Exit 0 when a worker of this host beat within --max-age seconds, else 1 (one line)."""
    import socket
    import time

    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from profile_groups.ops.heartbeat import last_seen

    host = None if args.any else socket.gethostname()

    async def run() -> float | None:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return await last_seen(redis, host)
        finally:
            await redis.aclose()

    try:
        seen = asyncio.run(run())
    except (RedisError, OSError) as exc:
        raise CliError(f"cannot read the worker heartbeat from Redis: {exc}") from None
    which = "any worker" if host is None else f"a worker on {host}"
    if seen is None:
        raise CliError(f"no heartbeat of {which} in Redis")
    age = max(time.time() - seen, 0.0)
    if age > args.max_age:
        raise CliError(f"{which} last beat {age:.0f} s ago (more than {args.max_age:g} s)")
    _print(
        args,
        {"alive": True, "host": host, "seconds_since_beat": round(age, 1)},
        f"alive: {which} beat {age:.0f} s ago",
    )


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
            # RequestMiddleware writes the one access line per request (JSON, request id).
            access_log=False,
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
        base = _base_url(settings)
        _save_servers(data_dir, settings, base)
        exports = _save_env(data_dir, base, creds)
        print("\n".join(_banner(base, creds, data_dir, exports)) + "\n", flush=True)
        _serve(settings, api=True, worker=True)
    finally:
        _forget_servers(data_dir)
        servers.stop()


# `run` writes the README's variables here (mode 600): `. .data/env` in another shell, then the
# "Try it" block of README.md works as pasted.
ENV_FILE = "env"


def _base_url(settings: Settings) -> str:
    # Listening on every interface: a client on this machine still connects to loopback.
    host = "127.0.0.1" if settings.HOST in ("0.0.0.0", "::", "") else settings.HOST
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.PORT}"


def _save_env(data_dir: Path, base: str, creds: dict[str, str]) -> list[str]:
    """Write DATA_DIR/env (mode 600): the `export` lines of the README's variables."""
    import shlex

    values = {"BASE_URL": base, "CLIENT_ID": creds["client_id"], "TOKEN": creds["token"]}
    exports = [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    _write_private(data_dir / ENV_FILE, "\n".join(exports) + "\n")
    return exports


def _banner(base: str, creds: dict[str, str], data_dir: Path, exports: list[str]) -> list[str]:
    """What `run` prints once its servers are up: one line per item, so adding one is a line."""
    return [
        "",
        "Profile Groups is starting.",
        f"  API:       {base}/api/v1/applications/{creds['client_id']}/",
        f"  Docs:      {base}/docs",
        f"  Console:   {base}/console/#client_id={creds['client_id']}&token={creds['token']}",
        f"  client_id: {creds['client_id']}",
        f"  token:     {creds['token']}",
        f"  (saved in {data_dir / 'credentials.json'})",
        "",
        f"For the README's examples in another shell, paste these lines or run "
        f"`. {data_dir / ENV_FILE}`:",
        *(f"  {line}" for line in exports),
    ]


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
    _write_private(path, json.dumps(creds, indent=2))
    return creds


EXAMPLES = """\
examples:
  profile-groups run                          # API + worker (embedded servers under DATA_DIR)
  profile-groups apps create "My app"         # while `run` serves: no environment needed
  profile-groups apps list
  profile-groups tokens create CLIENT_ID
  profile-groups tokens list CLIENT_ID --json
  profile-groups groups list CLIENT_ID --inactive   # deactivated groups (hidden from the API)
  profile-groups groups activate GROUP_ID
  profile-groups worker-alive                 # exit 0 if this host's worker beat in the last 60 s

Without DATABASE_URL, the apps/tokens/groups/migrate commands use the servers of the
`profile-groups run` serving DATA_DIR (default ./.data), read from DATA_DIR/servers.json.
"""


# ops.heartbeat.WORKER_STALE_SECONDS, repeated so `--help` does not import the worker's modules.
WORKER_STALE_SECONDS_DEFAULT = 60.0


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a UUID") from None


class _Parser(argparse.ArgumentParser):
    """argparse, reading an argument that starts with "-" but is no option of the command as a
    value: a client id is URL-safe base64 and starts with "-" one time in 64
    (`groups list -Xq3...`). Subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--a` is never `--any`
        super().__init__(*args, **kwargs)

    def _parse_optional(self, arg_string: str) -> Any:
        # "-X..." that is not one of this command's options (only -h is single-dash) is a value;
        # argparse would read "-h1" as -h and "-Xq" as an unknown option.
        name = arg_string.split("=", 1)[0]
        if (
            arg_string.startswith("-")
            and not arg_string.startswith("--")
            and len(arg_string) > 1
            and name not in self._option_string_actions
        ):
            return None
        return super()._parse_optional(arg_string)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p = sub.add_parser(
        "worker-alive",
        help="liveness of this host's worker: exit 0 if it beat recently, else 1",
        description="Exit 0 when a worker of this host (a container: this container) recorded "
        "its heartbeat in Redis within --max-age seconds, else print one line and exit 1. "
        "The worker's container healthcheck (docker-compose.yml).",
    )
    p.add_argument(
        "--max-age",
        type=float,
        default=WORKER_STALE_SECONDS_DEFAULT,
        help="seconds since the last beat still counted alive (default: %(default)g)",
    )
    p.add_argument("--any", action="store_true", help="any host's worker, not only this host's")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=cmd_worker_alive, admin=True)
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
    p = groups.add_parser(
        "list",
        help="an application's active groups (--inactive: only the deactivated ones)",
        description="List an application's groups, oldest first. By default the active ones "
        "(those the API shows); with --inactive only the deactivated ones, which the API hides, "
        "so they can be found and brought back with `groups activate GROUP_ID`.",
    )
    p.add_argument("client_id")
    p.add_argument(
        "--inactive",
        action="store_true",
        help="list only the deactivated groups (hidden from the API) instead of the active ones",
    )
    p.set_defaults(fn=cmd_groups_list)
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
