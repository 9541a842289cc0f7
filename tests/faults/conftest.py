"""The fault suite's own stack: PostgreSQL, Redis, `profile-groups api` and `worker` processes
on free loopback ports in a temporary directory (tests/faults/servers.py), shared by the fault
and load tests of this package."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.servers import ROOT, Postgres, Redis, Service, free_port


@dataclass
class Stack:
    pg: Postgres
    redis: Redis
    api: Service
    worker: Service
    client_id: str
    token: str
    tmp: Path

    @property
    def base(self) -> str:
        return f"{self.api.base}/api/v1/applications/{self.client_id}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def dump_logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-4000:]
            for p in sorted(self.tmp.glob("*.log"))
        )


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    tmp = Path(tempfile.mkdtemp(prefix="profile-groups-faults-"))
    pg = Postgres(free_port(), data=tmp / "pg" / "data", log=tmp / "postgres.log")
    redis = Redis(free_port(), dir=tmp / "redis")
    services: list[Service] = []
    try:
        pg.init()
        pg.start()
        redis.start()
        env = {
            "DATABASE_URL": pg.url,
            "REDIS_URL": redis.url,
            "CURSOR_SECRET": "fault-suite-cursor-secret",
            "DATA_DIR": str(tmp / "data"),
            "LOG_LEVEL": "WARNING",
            # Short bounds, so a frozen server is a quick 503 in this suite.
            "STATEMENT_TIMEOUT_MS": "3000",
            "DB_CONNECT_TIMEOUT_SECONDS": "2",
            "DB_POOL_TIMEOUT_SECONDS": "3",
            "EVALUATION_INTERVAL_SECONDS": "3600",
        }
        cli = [sys.executable, "-m", "profile_groups.cli"]
        run_env = {**os.environ, **env}
        subprocess.run([*cli, "migrate"], env=run_env, cwd=ROOT, check=True, timeout=120)
        created = subprocess.run(
            [*cli, "apps", "create", "faults", "--json"],
            env=run_env,
            cwd=ROOT,
            check=True,
            timeout=60,
            capture_output=True,
        )
        creds = json.loads(created.stdout)
        api = Service(free_port(), command="api", env=env, log=tmp / "api.log")
        worker = Service(0, command="worker", env=env, log=tmp / "worker.log")
        services += [api, worker]
        api.start()
        worker.start()
        yield Stack(pg, redis, api, worker, creds["client_id"], creds["token"], tmp)
    finally:
        for s in services:
            s.stop()
        redis.stop()
        pg.stop(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
