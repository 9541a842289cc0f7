"""The deployment files: the example alert rules (deploy/prometheus/alerts.yml) are valid and name
only metrics /metrics exports, and docker-compose.yml gives every service a restart policy and a
healthcheck of its own, the worker's being a command the CLI has."""

import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from profile_groups import cli

ROOT = Path(__file__).resolve().parents[2]
DURATION = re.compile(r"^\d+[smhd]$")
# Provided by the webhooks package's scrape collector (docs/operations.md).
PLUGGED_IN = {"profile_groups_webhook_deliveries", "profile_groups_webhook_oldest_pending_seconds"}


def _load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


async def test_alert_rules_are_valid_and_name_exported_metrics(client: httpx.AsyncClient) -> None:
    rules = [
        rule for group in _load("deploy/prometheus/alerts.yml")["groups"] for rule in group["rules"]
    ]
    assert rules
    exported = {
        line.split()[2]
        for line in (await client.get("/metrics")).text.splitlines()
        if line.startswith("# TYPE ")
    }
    # A counter's samples carry the _total suffix its TYPE line leaves off.
    exported |= {f"{name}_total" for name in exported}
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    topics = " ".join(names)
    for wanted in ("StaleGroups", "EvaluationsFailing", "WebhookBacklog", "FreshnessLag"):
        assert wanted in topics
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert DURATION.match(rule["for"]), rule
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        used = set(re.findall(r"\bprofile_groups_\w+", expr))
        assert used and used <= exported | PLUGGED_IN, used - exported - PLUGGED_IN


def test_compose_services_restart_and_have_their_own_healthcheck() -> None:
    services = _load("docker-compose.yml")["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    for name, service in services.items():
        assert service["restart"] == ("on-failure" if name == "migrate" else "unless-stopped")
        assert "healthcheck" in service, name
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    worker_check = services["worker"]["healthcheck"]["test"]
    assert worker_check[:3] == ["CMD", "profile-groups", "worker-alive"]
    # The command exists and parses as written.
    args = cli.build_parser().parse_args(worker_check[2:])
    assert args.fn is cli.cmd_worker_alive
    for name in ("api", "worker", "migrate"):
        assert services[name]["environment"]["CURSOR_SECRET"].startswith("${CURSOR_SECRET:?")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("HEALTHCHECK") >= 1 and "/healthz" in dockerfile
    assert 'CMD ["profile-groups", "api"]' in dockerfile
