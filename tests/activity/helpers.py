"""Helpers shared by the activity tests: profiles, events in, attribute values out."""

from datetime import UTC, datetime, timedelta
from typing import Any

from profile_groups.attributes.registry import custom_attribute_def
from tests.activity.reference import as_json, reference_values
from tests.conftest import Api

NOW = datetime.now(UTC)


def ago(days: float = 0, **kw: float) -> str:
    """An ISO timestamp `days` (and/or hours=, minutes=...) before the start of the test run."""
    return (NOW - timedelta(days=days, **kw)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def new_profile(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.post("/profiles/", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def send(api: Api, *events: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/events/", json={"events": list(events)})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def values(api: Api, profile_id: str) -> dict[str, Any]:
    response = await api.get(f"/profiles/{profile_id}/attributes/")
    assert response.status_code == 200, response.text
    return dict(response.json())


def for_reference(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as the reference takes them (aware datetimes), in the order they were accepted."""
    return [{**e, "occurred_at": parse(e["occurred_at"])} for e in events]


async def check(
    api: Api,
    profile: dict[str, Any],
    events: list[dict[str, Any]],
    custom: dict[str, str] | None = None,
) -> dict[str, Any]:
    """attribute values of the profile, asserted equal to the plain-Python reference"""
    body = await values(api, profile["id"])
    ref_profile = {**profile, "created_at": parse(profile["created_at"])}
    defs = {k: custom_attribute_def(k, t, "") for k, t in (custom or {}).items()}  # type: ignore[arg-type]
    expected = as_json(
        reference_values(for_reference(events), ref_profile, parse(body["as_of"]), defs)
    )
    assert body["values"] == expected
    return dict(body["values"])
