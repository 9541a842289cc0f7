"""A client generated from the live OpenAPI document runs the product page's walkthrough.

`openapi-python-client` (offline: it reads the document from a file) writes a typed client into a
temporary directory, which is imported and driven against the app under test, in process. The
typed attribute access (`group.id`, `page.results[0].name`) is the point: a free-form object in
the document would leave a dict, and this test would fail on it.
"""

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.conftest import Tenant

PACKAGE = "profile_groups_client"


class Generated:
    """The generated package: `models`, `api.<tag>.<operation id>` and the client class."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    @property
    def models(self) -> ModuleType:
        return self.module("models")

    def op(self, tag: str, operation_id: str) -> Any:
        return self.module(f"api.{tag}.{operation_id}")


def _drop_modules() -> None:
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def _generate(document: dict[str, Any], tmp: Path) -> Path:
    """Write the client package for `document` under `tmp`; the directory to put on sys.path."""
    (tmp / "openapi.json").write_text(json.dumps(document))
    # No post hooks: the generated code is imported, not linted.
    (tmp / "config.json").write_text(
        json.dumps({"package_name_override": PACKAGE, "post_hooks": []})
    )
    out = tmp / "src" / PACKAGE
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate",
         "--path", str(tmp / "openapi.json"), "--config", str(tmp / "config.json"),
         "--meta", "none", "--output-path", str(out), "--fail-on-warning"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return out.parent


@pytest.fixture(scope="module")
async def generated(app: Any) -> AsyncIterator[Generated]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/openapi.json")
    assert response.status_code == 200
    tmp = Path(tempfile.mkdtemp(prefix="profile-groups-client-"))
    try:
        source = await asyncio.to_thread(_generate, response.json(), tmp)
        sys.path.insert(0, str(source))
        _drop_modules()
        yield Generated(source / PACKAGE)
    finally:
        _drop_modules()
        if str(tmp / "src") in sys.path:
            sys.path.remove(str(tmp / "src"))
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def api_client(generated: Generated, app: Any, tenant: Tenant) -> Iterator[Any]:
    """The generated client with the tenant's token, talking to the app in process."""
    client_module = generated.module("client")
    yield client_module.AuthenticatedClient(
        base_url="http://testserver",
        token=tenant.token,
        httpx_args={"transport": httpx.ASGITransport(app=app)},
    )


async def test_the_product_page_walkthrough_through_a_generated_client(
    generated: Generated, api_client: Any, tenant: Tenant
) -> None:
    m = generated.models
    cid = tenant.client_id

    # Profiles to group (the page assumes they exist).
    create_profile = generated.op("profiles", "create_profile")
    horse = await create_profile.asyncio(
        client_id=cid, client=api_client, body=m.ProfileCreate(nickname="Final Horse")
    )
    other = await create_profile.asyncio(
        client_id=cid,
        client=api_client,
        body=m.ProfileCreate(custom_id="111bb1aa-c1da-42d2-886e-c48b2bf803a8"),
    )
    assert isinstance(horse, m.Profile) and isinstance(horse.id, UUID)
    assert horse.nickname == "Final Horse" and isinstance(horse.created_at, datetime)

    # Creating a new profile group
    create = generated.op("profile_groups", "create_profile_group")
    group = await create.asyncio(
        client_id=cid,
        client=api_client,
        body=m.ProfileGroupCreate(
            name="Group1",
            is_active=True,
            description="Sample Profile Group",
            attributes=[m.GroupAttribute(key="key1", value="val1")],
        ),
    )
    assert isinstance(group, m.ProfileGroup)
    assert isinstance(group.id, UUID)
    assert group.name == "Group1" and group.profile_count == 0 and group.custom_id is None
    assert group.attributes[0].key == "key1" and group.attributes[0].value == "val1"
    assert group.membership_type.value == "static"
    assert isinstance(group.created_at, datetime)
    assert group.additional_properties == {}, "the document leaves fields of the group out"

    # Listing profile groups in an app
    list_groups = generated.op("profile_groups", "list_profile_groups")
    page = await list_groups.asyncio(client_id=cid, client=api_client)
    assert page.count == 1 and page.next_ is None and page.previous is None
    assert page.results[0].name == "Group1" and page.results[0].id == group.id

    # Updating a profile group's details
    update = generated.op("profile_groups", "update_profile_group")
    edited = await update.asyncio(
        client_id=cid,
        group_id=group.id,
        client=api_client,
        body=m.ProfileGroupUpdate(name="Group - edited", is_active=True),
    )
    assert edited.name == "Group - edited" and edited.description == "Sample Profile Group"

    # Adding members, by profile id and by custom id
    add = generated.op("profile_groups", "add_group_members")
    added = await add.asyncio(
        client_id=cid,
        group_id=group.id,
        client=api_client,
        body=m.MembersChange(profile_ids=[str(horse.id)]),
    )
    assert added.successfully_added == [str(horse.id)] and added.invalid_ids == []
    added = await add.asyncio(
        client_id=cid,
        group_id=group.id,
        client=api_client,
        body=m.MembersChange(custom_ids=["111bb1aa-c1da-42d2-886e-c48b2bf803a8"]),
    )
    assert added.successfully_added == ["111bb1aa-c1da-42d2-886e-c48b2bf803a8"]

    # Listing profile group members
    members = await generated.op("profile_groups", "list_group_members").asyncio(
        client_id=cid, group_id=group.id, client=api_client
    )
    assert members.count == 2
    assert {member.id for member in members.results} == {horse.id, other.id}
    assert isinstance(members.results[0].membership_created_at, datetime)

    # Listing groups a profile is a member of
    groups_of = await generated.op("profile_groups", "list_groups_of_profile").asyncio(
        client_id=cid, profile_id=horse.id, client=api_client
    )
    assert groups_of.count == 1
    assert groups_of.results[0].group_id == group.id
    assert groups_of.results[0].group_name == "Group - edited"
    assert groups_of.results[0].profile_count == 2

    # Removing members (204, no body)
    removed = await generated.op("profile_groups", "remove_group_members").asyncio_detailed(
        client_id=cid,
        group_id=group.id,
        client=api_client,
        body=m.MembersChange(profile_ids=[str(horse.id)]),
    )
    assert removed.status_code == 204

    # Creating a new dynamic profile group, its rule tree typed node by node
    tree = m.RuleGroup(
        operator=m.RuleGroupOperator.OR,
        children=[
            m.RuleLeaf(
                attribute="total_comments_posted",
                condition=m.RuleLeafCondition.GREATER_THAN_OR_EQUAL,
                value=20,
            )
        ],
    )
    dynamic = await create.asyncio(
        client_id=cid,
        client=api_client,
        body=m.ProfileGroupCreate(
            name="Group1",
            description="Sample Profile Group",
            attributes=[m.GroupAttribute(key="key1", value="val1")],
            membership_type=m.ProfileGroupCreateMembershipType.DYNAMIC,
            rule_tree=tree,
        ),
    )
    assert isinstance(dynamic, m.ProfileGroup) and dynamic.membership_type.value == "dynamic"
    assert isinstance(dynamic.ruleset.id, UUID)
    stored = dynamic.ruleset.rule_tree
    assert isinstance(stored, m.RuleGroup) and stored.operator.value == "OR"
    assert stored.children[0].attribute == "total_comments_posted"
    assert stored.children[0].condition.value == "greater_than_or_equal"
    assert dynamic.evaluation.status.value in ("pending", "running", "succeeded")

    # Listing dynamic groups
    dynamic_page = await list_groups.asyncio(
        client_id=cid,
        client=api_client,
        membership_type=m.ListProfileGroupsMembershipTypeType0.DYNAMIC,
    )
    assert [g.id for g in dynamic_page.results] == [dynamic.id]

    # Previewing a tree
    preview = await generated.op("profile_groups", "preview_rule_tree").asyncio(
        client_id=cid, client=api_client, body=m.PreviewRequest(rule_tree=tree, sample_size=5)
    )
    assert preview.count == 0 and preview.sample == [] and isinstance(preview.as_of, datetime)

    # Deleting a profile group
    deleted = await generated.op("profile_groups", "delete_profile_group").asyncio_detailed(
        client_id=cid, group_id=group.id, client=api_client
    )
    assert deleted.status_code == 204


async def test_errors_parse_as_the_error_body(
    generated: Generated, api_client: Any, tenant: Tenant
) -> None:
    m = generated.models
    create = generated.op("profile_groups", "create_profile_group")
    misspelt = m.RuleGroup(
        operator=m.RuleGroupOperator.AND,
        children=[
            m.RuleLeaf(
                attribute="total_coments_posted", condition=m.RuleLeafCondition.EQUALS, value=1
            )
        ],
    )
    body = m.ProfileGroupCreate(
        name="G", membership_type=m.ProfileGroupCreateMembershipType.DYNAMIC, rule_tree=misspelt
    )
    response = await create.asyncio_detailed(
        client_id=tenant.client_id, client=api_client, body=body
    )
    assert response.status_code == 400
    error = response.parsed
    assert isinstance(error, m.ErrorBody) and error.error_code == "invalid"
    assert error.errors[0].loc == ["body", "rule_tree", "children", 0, "attribute"]
    assert "did you mean 'total_comments_posted'?" in error.errors[0].msg

    response = await create.asyncio_detailed(
        client_id="another-application", client=api_client, body=body
    )
    assert response.status_code == 403
    assert isinstance(response.parsed, m.ErrorBody)
    assert "another application" in response.parsed.detail
