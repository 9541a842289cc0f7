"""/docs, /redoc and /openapi.json: served offline by the service, with the bearer scheme, short
stable operation ids and the error responses the service really sends (kit/openapi.py)."""

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Tenant

# The ids clients are generated against: renaming one breaks them, so each is pinned here.
STABLE_OPERATION_IDS = {
    "healthz",
    "readyz",
    "metrics",
    "create_profile",
    "list_profiles",
    "bulk_upsert_profiles",
    "get_profile",
    "replace_profile",
    "update_profile",
    "delete_profile",
    "get_profile_by_custom_id",
    "create_custom_attribute",
    "list_custom_attributes",
    "get_custom_attribute",
    "update_custom_attribute",
    "delete_custom_attribute",
    "create_profile_group",
    "list_profile_groups",
    "preview_rule_tree",
    "get_profile_group",
    "update_profile_group",
    "delete_profile_group",
    "get_profile_group_by_custom_id",
    "add_group_members",
    "remove_group_members",
    "list_group_members",
    "get_group_member",
    "evaluate_profile_group",
    "list_group_evaluations",
    "list_groups_of_profile",
    "list_groups_of_profile_by_custom_id",
    "list_group_changes",
    "get_group_size_history",
    "list_profile_group_history",
    "list_profile_group_history_by_custom_id",
    "explain_membership",
    "explain_membership_by_custom_id",
    "ingest_events",
    "list_attributes",
    "get_attribute",
    "list_profile_attributes",
}


class _AssetUrls(HTMLParser):
    """Every URL a page loads: script/img/link sources and string literals in inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls.extend(re.findall(r"""['"]((?:https?:)?//[^'"]+|/[^'"\s]*)['"]""", data))


async def _operations(client: httpx.AsyncClient) -> list[tuple[str, str, dict[str, Any]]]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return [
        (path, method, operation)
        for path, item in response.json()["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_same_origin_assets(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = _AssetUrls()
    parser.feed(response.text)
    assert parser.urls, "the page loads no asset at all"
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} loads {url} from another host"
    assets = [url for url in parser.urls if url.startswith("/static-offline-docs/")]
    assert any(url.endswith(".js") for url in assets)
    assert "/openapi.json" in parser.urls
    for url in assets:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000 or url.endswith(".png"), url


async def test_bearer_scheme_is_required_by_every_api_operation(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path, method, operation in await _operations(client):
        if path.startswith("/api/v1/"):
            assert operation.get("security") == [{"bearer": []}], (method, path)
        else:
            assert "security" not in operation, (method, path)


async def test_the_documented_token_is_what_try_it_out_sends(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # Swagger UI's Authorize for an http/bearer scheme sends exactly this header.
    response = await client.get(
        f"{tenant.base}/profile-groups/", headers={"Authorization": f"Bearer {tenant.token}"}
    )
    assert response.status_code == 200


async def test_operation_ids_are_short_unique_snake_case_and_stable(
    client: httpx.AsyncClient,
) -> None:
    ids = [operation["operationId"] for _, _, operation in await _operations(client)]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", operation_id), operation_id
        assert "api_v1" not in operation_id and "client_id" not in operation_id
        assert len(operation_id) <= 40, operation_id
    missing = STABLE_OPERATION_IDS - set(ids)
    assert not missing, f"operation ids clients depend on disappeared: {sorted(missing)}"


async def test_one_tag_per_operation(client: httpx.AsyncClient) -> None:
    for path, method, operation in await _operations(client):
        assert len(operation.get("tags", [])) == 1, (method, path)


async def test_errors_are_documented_as_sent_never_422(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, method, operation in await _operations(client):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        if not path.startswith("/api/v1/"):
            continue
        expected = {"400", "401", "403", "503"}
        if method in ("post", "put", "patch", "delete"):
            expected |= {"413", "415"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for status in expected:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == error_body, (method, path, status)


async def test_a_validation_error_is_the_documented_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        f"{tenant.base}/profile-groups/", headers=tenant.headers, json={"name": 5}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "invalid"
    assert body["errors"] and {"loc", "msg", "type"} <= set(body["errors"][0])
