"""The whole live OpenAPI document, walked (docs/api.md, "The OpenAPI document").

Generic checks, so that every route (those added later included) is held to them: a short
snake_case operation id, exactly one tag, no 422, a description on every parameter and property, no
free-form object or untyped value, `format: uuid` on ids and `format: date-time` on timestamps, and
the error body on every error response.
"""

import re
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import jsonschema_rs
import pytest

from profile_groups.db import AsyncSessionMaker
from tests.conftest import Api
from tests.factories import make_profiles

OPERATION_ID = re.compile(r"[a-z]+(?:_[a-z]+)*")
MAX_OPERATION_ID = 40
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
# Keywords that only annotate a schema; a schema with nothing else accepts any value.
ANNOTATIONS = {"title", "description", "examples", "example", "default", "deprecated", "readOnly",
               "writeOnly"}  # fmt: skip
TYPING = {"type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "not"}
# Ids that are the client's own strings, not UUIDs the service assigns or reads as UUIDs.
CLIENT_STRING_IDS = {"custom_id", "client_id", "custom_profile_id", "request_id"}
# Properties named like an id that hold a client-chosen string: (schema, property) and why.
CLIENT_STRING_PROPERTIES = {
    ("Event", "id"): "the client's idempotency key for the event",
    ("Change", "id"): "a change id: the decimal text of the change log's sequence number",
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def where_schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every top-level schema of the document, named by where it is."""
    for name, schema in document["components"]["schemas"].items():
        yield f"components.{name}", schema
    for path, method, operation in operations(document):
        at = f"{method.upper()} {path}"
        for param in operation.get("parameters", []):
            yield f"{at} parameter {param['name']}", param.get("schema", {})
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            yield f"{at} request {media}", content.get("schema", {})
        for status, response in operation["responses"].items():
            for media, content in response.get("content", {}).items():
                yield f"{at} {status} {media}", content.get("schema", {})


def walk(schema: Any, at: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The schema and every schema nested in it, each with its path."""
    if not isinstance(schema, dict):
        return
    yield at, schema
    for name, prop in schema.get("properties", {}).items():
        yield from walk(prop, f"{at}.{name}")
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from walk(sub, f"{at}<{key}{i}>")
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            yield from walk(schema[key], f"{at}[{key}]")


def every_schema(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for at, top in where_schemas(document):
        yield from walk(top, at)


def is_free_form(schema: dict[str, Any]) -> bool:
    """Accepts any value, or any object: what a generated client can only type as a dict."""
    keys = set(schema) - ANNOTATIONS
    if not keys & TYPING:
        return True
    if schema.get("type") == "object" and not schema.get("properties"):
        extra = schema.get("additionalProperties", True)
        return extra is True or (isinstance(extra, dict) and not set(extra) - ANNOTATIONS)
    return False


def string_formats(schema: dict[str, Any]) -> set[str | None] | None:
    """The formats of the string forms a schema allows (None: it allows no plain string)."""
    if schema.get("type") == "string":
        return {schema.get("format")}
    branches = schema.get("anyOf") or schema.get("oneOf")
    if not branches:
        return None
    found: set[str | None] = set()
    for branch in branches:
        found |= string_formats(branch) or set()
    return found or None


def expected_format(name: str) -> str | None:
    if name in CLIENT_STRING_IDS:
        return None
    if name == "id" or name.endswith("_id"):
        return "uuid"
    if name.endswith("_at"):
        return "date-time"
    return None


def test_every_operation_has_a_short_snake_case_id_and_one_tag(document: dict[str, Any]) -> None:
    problems = []
    ids = []
    for path, method, operation in operations(document):
        at = f"{method.upper()} {path}"
        operation_id = operation.get("operationId", "")
        ids.append(operation_id)
        if not OPERATION_ID.fullmatch(operation_id) or len(operation_id) > MAX_OPERATION_ID:
            problems.append(f"{at}: operation id {operation_id!r} is not short snake_case")
        if len(operation.get("tags", [])) != 1:
            problems.append(f"{at}: tags {operation.get('tags')} (exactly one is required)")
    assert not problems, "\n".join(problems)
    assert len(ids) == len(set(ids)), "operation ids are not unique"


def test_no_operation_documents_a_422(document: dict[str, Any]) -> None:
    offenders = [
        f"{method.upper()} {path}"
        for path, method, operation in operations(document)
        if "422" in operation["responses"]
    ]
    assert not offenders, offenders


def test_every_parameter_has_a_description(document: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}: {param['in']} parameter {param['name']}"
        for path, method, operation in operations(document)
        for param in operation.get("parameters", [])
        if not param.get("description", "").strip()
    ]
    assert not missing, "parameters without a description:\n" + "\n".join(missing)


def test_every_property_has_a_description(document: dict[str, Any]) -> None:
    missing = [
        f"{at}.{name}"
        for at, schema in every_schema(document)
        for name, prop in schema.get("properties", {}).items()
        if not str(prop.get("description", "")).strip()
    ]
    assert not missing, "properties without a description:\n" + "\n".join(missing)


def test_no_free_form_object_or_untyped_value(document: dict[str, Any]) -> None:
    """A body, property, item or map value that accepts anything: type it with its model (a
    raw JSON field that the service checks itself is documented with `WithJsonSchema` or
    `kit.schemas.DocumentedAs`)."""
    offenders = [at for at, schema in every_schema(document) if is_free_form(schema)]
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            for media, content in response.get("content", {}).items():
                if "schema" not in content:
                    offenders.append(f"{method.upper()} {path} {status} {media}: no schema")
    assert not offenders, "free-form schemas:\n" + "\n".join(offenders)


def test_ids_are_uuids_and_timestamps_date_times(document: dict[str, Any]) -> None:
    problems = []
    for at, schema in every_schema(document):
        component = at.removeprefix("components.").split(".")[0]
        for name, prop in schema.get("properties", {}).items():
            expected = expected_format(name)
            if expected is None or (component, name) in CLIENT_STRING_PROPERTIES:
                continue
            formats = string_formats(prop)
            if formats is not None and formats != {expected}:
                problems.append(f"{at}.{name}: format {sorted(map(str, formats))}, not {expected}")
    for path, method, operation in operations(document):
        for param in operation.get("parameters", []):
            expected = expected_format(param["name"])
            formats = string_formats(param.get("schema", {}))
            if expected is not None and formats is not None and formats != {expected}:
                problems.append(f"{method.upper()} {path}: parameter {param['name']}: {formats}")
    assert not problems, "\n".join(problems)


def test_error_responses_carry_the_error_body(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problems = []
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            at = f"{method.upper()} {path} {status}"
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            ref = schema.get("$ref", "")
            target = schemas.get(ref.removeprefix("#/components/schemas/"), {})
            if not {"detail", "error_code"} <= set(target.get("required", [])):
                problems.append(f"{at}: {schema} is not an error body")
    assert not problems, "\n".join(problems)


def test_the_group_object_is_typed_static_and_dynamic(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    group = schemas["ProfileGroup"]
    assert {"id", "name", "membership_type", "ruleset", "evaluation"} <= set(group["properties"])
    assert group["properties"]["id"]["format"] == "uuid"
    ruleset = schemas["Ruleset"]["properties"]["rule_tree"]
    assert ruleset["anyOf"] == [
        {"$ref": "#/components/schemas/RuleGroup"},
        {"$ref": "#/components/schemas/RuleLeaf"},
    ]
    children = schemas["RuleGroup"]["properties"]["children"]["items"]
    assert {"$ref": "#/components/schemas/RuleGroup"} in children["anyOf"], "not recursive"
    for name in ("ProfileGroupCreate", "ProfileGroupUpdate", "PreviewRequest"):
        text = str(schemas[name]["properties"]["rule_tree"])
        assert "#/components/schemas/RuleGroup" in text, name
    results = schemas["Page_ProfileGroup_"]["properties"]["results"]
    assert results["items"] == {"$ref": "#/components/schemas/ProfileGroup"}


def test_create_shows_the_product_page_examples(document: dict[str, Any]) -> None:
    (create,) = [
        op for _, _, op in operations(document) if op["operationId"] == "create_profile_group"
    ]
    requests = create["requestBody"]["content"]["application/json"]["examples"]
    static, dynamic = requests["static"]["value"], requests["dynamic"]["value"]
    assert static == {
        "name": "Group1",
        "is_active": True,
        "description": "Sample Profile Group",
        "attributes": [{"key": "key1", "value": "val1"}],
    }
    assert dynamic["membership_type"] == "dynamic"
    assert dynamic["rule_tree"]["children"][0]["condition"] == "greater_than_or_equal"
    created = create["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/ProfileGroup"}
    example = created["examples"]["static"]["value"]
    assert example["id"] == "13a1fd98-24ca-4935-8791-5556586c0005"
    assert "additionalProp1" not in str(created)


def response_schema(document: dict[str, Any], operation_id: str, status: int) -> dict[str, Any]:
    for _, _, operation in operations(document):
        if operation["operationId"] == operation_id:
            content = operation["responses"][str(status)]["content"]["application/json"]
            # Refs are "#/components/...": resolve them against a root that carries components.
            return {**content["schema"], "components": document["components"]}
    raise AssertionError(f"no operation {operation_id}")


async def test_live_answers_conform_to_their_documented_schema(
    document: dict[str, Any], api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    """The typed schemas are the answers' real shapes: a static and a dynamic group (with its
    ruleset and evaluation), pages, members, a profile's groups, a preview and errors."""
    (pid,) = await make_profiles(sessionmaker, api.tenant, 1, nicknames=["Final Horse"])
    tree = {"operator": "AND", "children": [
        {"operator": "OR", "children": [
            {"attribute": "total_comments_posted", "condition": "greater_than", "value": 32},
            {"attribute": "has_ever_commented", "condition": "is", "value": True}]},
        {"operator": "OR", "children": [
            {"attribute": "total_comments_posted", "condition": "between", "value": [1, 9],
             "window_days": 7},
            {"attribute": "nickname", "condition": "in", "value": ["x", "y"]}]}]}  # fmt: skip
    static = await api.post("/profile-groups/", json={"name": "S", "custom_id": "s"})
    dynamic = await api.post(
        "/profile-groups/", json={"name": "D", "membership_type": "dynamic", "rule_tree": tree}
    )
    gid = static.json()["id"]
    calls = [
        ("create_profile_group", static),
        ("create_profile_group", dynamic),
        ("get_profile_group", await api.get(f"/profile-groups/{dynamic.json()['id']}/")),
        ("list_profile_groups", await api.get("/profile-groups/?page_size=1")),
        ("add_group_members", await api.post(
            f"/profile-groups/{gid}/members/", json={"profile_ids": [pid, "nope"]})),
        ("list_group_members", await api.get(f"/profile-groups/{gid}/members/")),
        ("get_group_member", await api.get(f"/profile-groups/{gid}/members/{pid}/")),
        ("list_groups_of_profile", await api.get(f"/profiles/{pid}/profile-groups/")),
        ("preview_rule_tree", await api.post(
            "/profile-groups/preview/", json={"rule_tree": tree, "sample_size": 1})),
        ("list_group_evaluations", await api.get(
            f"/profile-groups/{dynamic.json()['id']}/evaluations/")),
        ("get_profile", await api.get(f"/profiles/{pid}/")),
        ("list_profile_attributes", await api.get(f"/profiles/{pid}/attributes/")),
        ("list_attributes", await api.get("/profile-group-attributes/?page_size=1000")),
        ("ingest_events", await api.post(
            "/events/", json={"events": [{"type": "comment_posted", "profile_id": pid}, {}]})),
        ("create_profile_group", await api.post("/profile-groups/", json={"desciption": 1})),
        ("get_profile_group", await api.get(f"/profile-groups/{uuid4()}/")),
        ("create_profile_group", await api.post("/profile-groups/", json={"name": "S2",
                                                                         "custom_id": "s"})),
    ]  # fmt: skip
    for operation_id, response in calls:
        schema = response_schema(document, operation_id, response.status_code)
        errors = [
            f"{e.instance_path}: {e.message}"
            for e in jsonschema_rs.validator_for(schema).iter_errors(response.json())
        ]
        assert not errors, (operation_id, response.status_code, errors, response.json())
