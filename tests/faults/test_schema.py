"""schemathesis over the app's own OpenAPI document (docs/api.md): generated requests, valid and
invalid, to every operation of a real server (`profile-groups api` on the test database), on a
fixed seed and a bounded budget. No answer may be a server error, and every answer must be one
the document declares: status code, content type and body schema."""

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Tenant
from tests.faults.servers import ROOT, free_port, wait_until

# The budget: examples per operation (about 30 operations; 60 take about 40 s), on a fixed
# seed (derandomize).
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "60"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# No worker runs beside this API, so once the shared test Redis holds a heartbeat older than a
# minute (left by any earlier run) /readyz is its documented 503: still checked against the
# document, but not a server error.
READYZ_CHECKS = [check for check in CHECKS if check is not not_a_server_error]


@pytest.fixture(scope="module")
def server(database_url: str, servers: tuple[str, str]) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": servers[1],
        "CURSOR_SECRET": "schemathesis-cursor-secret",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "ERROR",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "profile_groups.cli", "api"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, 60, "api")
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def test_the_api_answers_as_documented(server: str, tenant: Tenant) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal calls
            if "client_id" in (case.path_parameters or {}):
                case.path_parameters["client_id"] = tenant.client_id
            calls += 1
            try:
                response = case.call_and_validate(
                    base_url=server,
                    headers=tenant.headers,
                    checks=READYZ_CHECKS if case.operation.path == "/readyz" else CHECKS,
                    timeout=30,
                )
                statuses[response.status_code] += 1
            except Exception as exc:  # collect them all, then fail once with the list
                failures.append(f"{case.operation.label}: {str(exc)[:1500]}")

        run()
    print(f"\nschemathesis: {calls} requests, {len(failures)} failures, statuses {statuses}")
    assert failures == [], "\n\n".join(failures[:30])
