"""Helpers shared by the profile and custom attribute tests."""

import re
from typing import Any

import httpx

from tests.conftest import Api

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NOT_FOUND = {"detail": "Not found.", "error_code": "not_found"}


async def define(api: Api, key: str, data_type: str) -> None:
    r = await api.post("/custom-attributes/", json={"key": key, "data_type": data_type})
    assert r.status_code == 201, r.text


async def create(api: Api, **body: Any) -> dict[str, Any]:
    r = await api.post("/profiles/", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def count_profiles(api: Api) -> int:
    r = await api.get("/profiles/")
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def assert_invalid(r: httpx.Response, loc: list[Any] | None = None) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "invalid"
    assert body["detail"]
    if loc is not None:
        assert loc in [e["loc"] for e in body["errors"]], body
