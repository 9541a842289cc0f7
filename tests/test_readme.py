"""README.md runs as written: `profile-groups run` (a real process, on a free port, against its
own database of the test server) prints and saves the `export` lines, the README's "Try it" block
is executed with bash exactly as it is in the file, and the process's logs are one plain JSON
access line per request."""

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
PROFILE_ID = "174cc6dd-c1da-42d2-886e-c48b2bf803a8"


def try_it_block() -> str:
    """The first ```sh block under the README's "## Try it" heading."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "README.md has no sh block under ## Try it"
    return match.group(1)


def test_the_quick_start_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first = readme.split("\n## ", 2)[1]
    assert first.startswith("Quick start\n")
    block = re.search(r"```sh\n(.*?)```", first, re.DOTALL)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _database(server_url: str, name: str, *, drop: bool) -> str:
    url = make_url(server_url)
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            if drop:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@dataclass
class Live:
    cwd: Path
    data_dir: Path
    base_url: str
    stdout: Path
    stderr: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def live(servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """`profile-groups run` as `make run` starts it, with DATABASE_URL / REDIS_URL of the tests."""
    cwd = tmp_path_factory.mktemp("readme")
    data_dir = cwd / ".data"
    name = f"profile_groups_readme_{secrets.token_hex(4)}"
    database_url = asyncio.run(_database(servers[0], name, drop=False))
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("CURSOR_SECRET",)},
        "DATABASE_URL": database_url,
        "REDIS_URL": servers[1],
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "INFO",
    }
    stdout, stderr = cwd / "run.out", cwd / "run.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "profile_groups.cli", "run"],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=err,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, stderr.read_text()[-3000:]
            assert time.monotonic() < deadline, "run did not start: " + stderr.read_text()[-3000:]
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield Live(cwd, data_dir, base_url, stdout, stderr, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        asyncio.run(_database(servers[0], name, drop=True))


def _log_lines(live: Live) -> list[dict[str, Any]]:
    raw = live.stderr.read_text()
    assert "\x1b" not in raw, "ANSI colour codes in the logs"
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def test_run_prints_and_saves_the_export_lines(live: Live) -> None:
    env_file = live.data_dir / "env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    exports = env_file.read_text().splitlines()
    assert [line.split("=", 1)[0] for line in exports] == [
        "export BASE_URL",
        "export CLIENT_ID",
        "export TOKEN",
    ]
    assert exports[0] == f"export BASE_URL={live.base_url}"
    banner = live.stdout.read_text()
    for line in exports:
        assert f"  {line}\n" in banner
    assert f"{live.base_url}/docs" in banner


def test_the_try_it_block_runs_as_written(live: Live) -> None:
    block = try_it_block()
    # Each curl of the block must succeed (a 4xx/5xx fails the script) and every line is run;
    # otherwise the block runs exactly as a person pastes it, from the directory of `.data`.
    prelude = 'curl() { command curl --fail-with-body --show-error "$@"; }\n'
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", prelude + block],
        cwd=live.cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(live.cwd)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    flat = done.stdout.replace(" ", "")
    assert '"nickname":"FinalHorse"' in flat
    assert '"accepted":1' in flat
    assert f'"successfully_added":["{PROFILE_ID}"]' in flat
    assert '"group_name":"Group1"' in flat

    # The dynamic group it created takes the profile in within seconds (the worker of `run`).
    creds = dict(
        line.removeprefix("export ").split("=", 1)
        for line in (live.data_dir / "env").read_text().splitlines()
    )
    base = f"{live.base_url}/api/v1/applications/{creds['CLIENT_ID']}"
    headers = {"Authorization": f"Bearer {creds['TOKEN']}"}
    deadline = time.monotonic() + 30
    while True:
        groups = httpx.get(f"{base}/profiles/{PROFILE_ID}/profile-groups/", headers=headers).json()
        names = {g["group_name"] for g in groups["results"]}
        if "Commenters" in names:
            break
        assert time.monotonic() < deadline, groups
        time.sleep(0.5)
    # The block removed the static membership at its end.
    assert "Group1" not in names


def test_one_plain_json_access_line_per_request(live: Live) -> None:
    request_id = f"readme-{secrets.token_hex(4)}"
    r = httpx.get(f"{live.base_url}/healthz", headers={"X-Request-ID": request_id})
    assert r.status_code == 200 and r.headers["x-request-id"] == request_id
    deadline = time.monotonic() + 10
    while True:
        lines = _log_lines(live)
        mine = [line for line in lines if line.get("request_id") == request_id]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(mine) == 1, mine
    assert mine[0]["msg"] == "request" and mine[0]["status"] == 200
    assert mine[0]["path"] == "/healthz"
    # No second access line from uvicorn, no colour codes carried as a field.
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    assert not [line for line in lines if "color_message" in line]


def test_idle_scheduler_ticks_are_not_logged_at_info(live: Live) -> None:
    # The worker ticks every 5 s; by now it has ticked several times, nearly all idle.
    time.sleep(6)
    ticks = [line for line in _log_lines(live) if line["msg"] == "scheduler tick"]
    assert all(
        any(line[k] for k in ("due", "requeued", "lost", "pruned", "analyzed", "enqueued"))
        for line in ticks
    ), ticks
    arq_lines = [line for line in _log_lines(live) if line["logger"].startswith("arq")]
    assert not [line for line in arq_lines if line["level"] == "INFO"], arq_lines
