"""Rules of profile groups, their static members and a profile's groups (docs/groups.md)."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.applications.auth import (
    PROFILE_TOKEN_FORBIDDEN,
    Principal,
    check_may_ask,
    readable,
)
from profile_groups.config import Settings
from profile_groups.groups import evaluation
from profile_groups.groups.repositories.groups import GroupFilters, GroupRepository
from profile_groups.groups.repositories.membership import MembershipRepository
from profile_groups.groups.schemas import (
    MembersAdded,
    MembersChange,
    ProfileGroupCreate,
    ProfileGroupUpdate,
)
from profile_groups.groups.schemas import ProfileGroup as ProfileGroupOut
from profile_groups.kit.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PermissionDenied,
    found,
    invalid_field,
)
from profile_groups.kit.pagination import Paged, PageRequest, paginate
from profile_groups.kit.repository import count_rows, unique_or_conflict
from profile_groups.kit.retry import retry_in_savepoint
from profile_groups.models import Application, GroupMembership, ProfileGroup
from profile_groups.ops.metrics import count_member_changes
from profile_groups.segmentation.service import validate_rule_tree

CUSTOM_ID_TAKEN = {
    "uq_profile_groups_application_custom_id": "A profile group with this custom_id already exists."
}


def parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


def parse_attribute_filters(values: Sequence[str]) -> list[tuple[str, str | None]]:
    """`attribute=key:value` (key and value must match) or `attribute=key` (key present)."""
    out: list[tuple[str, str | None]] = []
    for raw in values:
        key, sep, value = raw.partition(":")
        if not key:
            raise invalid_field(["query", "attribute"], "Expected 'key:value' or 'key'.")
        out.append((key, value if sep else None))
    return out


async def get_group(session: AsyncSession, app: Application, group_id: UUID) -> ProfileGroup:
    return found(await GroupRepository(session).get(app.id, group_id))


async def get_group_by_custom_id(
    session: AsyncSession, app: Application, custom_id: str
) -> ProfileGroup:
    return found(await GroupRepository(session).get_by_custom_id(app.id, custom_id))


async def views(session: AsyncSession, groups: Sequence[ProfileGroup]) -> list[ProfileGroupOut]:
    """The group objects; dynamic ones get `ruleset` and `evaluation` (one query for all)."""
    dynamic = await evaluation.states(
        session, [g.id for g in groups if g.membership_type == "dynamic"]
    )
    out = []
    for group in groups:
        view = ProfileGroupOut.model_validate(group)
        if group.id in dynamic:
            view.ruleset, view.evaluation = dynamic[group.id]
        out.append(view)
    return out


async def view(session: AsyncSession, group: ProfileGroup) -> ProfileGroupOut:
    (out,) = await views(session, [group])
    return out


async def create_group(
    session: AsyncSession,
    arq: ArqRedis,
    settings: Settings,
    app: Application,
    data: ProfileGroupCreate,
) -> ProfileGroup:
    if data.rule_tree is not None:
        # Every problem of the tree is reported before anything is written.
        await validate_rule_tree(session, app.id, data.rule_tree)
    repo = GroupRepository(session)
    group = repo.add(
        ProfileGroup(
            application_id=app.id,
            name=data.name,
            description=data.description,
            is_active=data.is_active,
            custom_id=data.custom_id,
            attributes=[a.model_dump() for a in data.attributes],
            membership_type=data.membership_type,
        )
    )
    await unique_or_conflict(session, session.flush, CUSTOM_ID_TAKEN)
    await repo.refresh(group)
    if data.rule_tree is not None:
        await evaluation.set_ruleset(session, arq, settings, group, data.rule_tree)
    return group


async def update_group(
    session: AsyncSession,
    arq: ArqRedis,
    settings: Settings,
    app: Application,
    group_id: UUID,
    data: ProfileGroupUpdate,
) -> ProfileGroup:
    repo = GroupRepository(session)
    group = found(await repo.get(app.id, group_id, for_update=True))
    changes: dict[str, Any] = data.model_dump(
        exclude_unset=True, exclude={"rule_tree", "membership_type"}
    )
    if "attributes" in changes:
        changes["attributes"] = [a.model_dump() for a in data.attributes or []]
    new_tree = None
    if "rule_tree" in data.model_fields_set:
        if group.membership_type == "static":
            raise invalid_field(["body", "rule_tree"], "Only a dynamic group has a rule tree.")
        if data.rule_tree is None:
            raise invalid_field(["body", "rule_tree"], "A dynamic group requires a rule tree.")
        await validate_rule_tree(session, app.id, data.rule_tree)
        new_tree = data.rule_tree
    for field, value in changes.items():
        setattr(group, field, value)
    repo.touch(group)
    await unique_or_conflict(session, session.flush, CUSTOM_ID_TAKEN)
    await repo.refresh(group)
    if new_tree is not None:
        # A new ruleset with a new id; its evaluation is queued once the request commits.
        await evaluation.set_ruleset(session, arq, settings, group, new_tree)
    return group


async def delete_group(session: AsyncSession, app: Application, group_id: UUID) -> None:
    repo = GroupRepository(session)
    group = found(await repo.get(app.id, group_id, for_update=True))
    await MembershipRepository(session).remove_group(group)
    await repo.delete(group)


async def activate_group(session: AsyncSession, group_id: UUID) -> None:
    """CLI: bring back a group deactivated through the API."""
    if not await GroupRepository(session).set_active(group_id, True):
        raise NotFound(f"No profile group with id {group_id}.")


async def list_all_groups(
    session: AsyncSession, app: Application, *, inactive: bool
) -> Sequence[ProfileGroup]:
    """CLI: the application's active groups, or with `inactive` only the deactivated ones."""
    return await GroupRepository(session).list_all(app.id, active=not inactive)


async def list_groups(
    session: AsyncSession,
    app: Application,
    page: PageRequest,
    *,
    membership_type: str | None,
    custom_id: str | None,
    name: str | None,
    attribute: Sequence[str],
) -> Paged[ProfileGroupOut]:
    filters = GroupFilters(membership_type, custom_id, name, parse_attribute_filters(attribute))
    repo = GroupRepository(session)
    stmt = repo.list_statement(app.id, filters)
    paged = await paginate(
        session,
        page,
        stmt,
        [(ProfileGroup.created_at, "created_at"), (ProfileGroup.id, "id")],
        await count_rows(session, stmt),
        entity=True,
    )
    return Paged(await views(session, paged.rows), paged.count, paged.next, paged.previous)


# Members ----------------------------------------------------------------------------------


def _ids_of(change: MembersChange, *, allow_synonym: bool) -> tuple[str, list[str]]:
    given = {
        name: getattr(change, name)
        for name in ("profile_ids", "custom_ids", "application_profile_ids")
        if getattr(change, name) is not None
    }
    if not allow_synonym and "application_profile_ids" in given:
        raise invalid_field(
            ["body", "application_profile_ids"], "Use 'profile_ids' to add members."
        )
    if "application_profile_ids" in given and "profile_ids" not in given:
        given["profile_ids"] = given.pop("application_profile_ids")
    if len(given) != 1:
        raise BadRequest("Either 'profile_ids' or 'custom_ids' must be provided, not both.")
    ((space, ids),) = given.items()
    return space, ids


def _dedupe(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


async def _locked_static_group(
    session: AsyncSession, app: Application, group_id: UUID
) -> ProfileGroup:
    group = found(await GroupRepository(session).get(app.id, group_id, for_update=True))
    if group.membership_type == "dynamic":
        raise Conflict("The members of a dynamic group are managed by its rules.")
    return group


async def _resolve(
    repo: MembershipRepository, app: Application, space: str, ids: list[str]
) -> tuple[dict[str, UUID], list[str]]:
    """Map each requested id (in the space it was sent in) to a profile id; the rest are invalid."""
    if space == "profile_ids":
        parsed = {raw: parse_uuid(raw) for raw in ids}
        wanted = [u for u in parsed.values() if u is not None]
        found = (
            {pid for pid, _ in await repo.resolve_profiles(app.id, ids=wanted)} if wanted else set()
        )
        resolved = {raw: u for raw, u in parsed.items() if u is not None and u in found}
    else:
        rows = await repo.resolve_profiles(app.id, custom_ids=ids) if ids else []
        by_custom = {cid: pid for pid, cid in rows if cid is not None}
        resolved = {raw: by_custom[raw] for raw in ids if raw in by_custom}
    return resolved, [raw for raw in ids if raw not in resolved]


async def add_members(
    session: AsyncSession, app: Application, group_id: UUID, change: MembersChange
) -> MembersAdded:
    space, ids = _ids_of(change, allow_synonym=False)
    ids = _dedupe(ids)

    async def add() -> MembersAdded:
        group = await _locked_static_group(session, app, group_id)
        repo = MembershipRepository(session)
        resolved, invalid = await _resolve(repo, app, space, ids)
        inserted = await repo.add(group, list(set(resolved.values())))
        added = [raw for raw, pid in resolved.items() if pid in inserted]
        already = [raw for raw, pid in resolved.items() if pid not in inserted]
        return MembersAdded(successfully_added=added, already_added=already, invalid_ids=invalid)

    # A profile deleted while it is added (a deadlock, or its foreign key gone) is a lost race,
    # not a conflict of the client's: the retry resolves the ids again (it is then invalid).
    result = await retry_in_savepoint(session, add)
    count_member_changes(session, added=len(result.successfully_added))
    return result


async def remove_members(
    session: AsyncSession, app: Application, group_id: UUID, change: MembersChange
) -> None:
    space, ids = _ids_of(change, allow_synonym=True)

    async def remove() -> int:
        group = await _locked_static_group(session, app, group_id)
        repo = MembershipRepository(session)
        resolved, _ = await _resolve(repo, app, space, _dedupe(ids))
        return await repo.remove(group, list(set(resolved.values())))

    count_member_changes(session, removed=await retry_in_savepoint(session, remove))


async def list_members(
    session: AsyncSession, app: Application, group_id: UUID, page: PageRequest
) -> Paged[Any]:
    """Members, newest membership first."""
    group = await get_group(session, app, group_id)
    return await paginate(
        session,
        page,
        MembershipRepository(session).members_statement(group.id),
        [(GroupMembership.created_at, "membership_created_at"), (GroupMembership.profile_id, "id")],
        # profile_count is kept exact with the memberships, so it is the count.
        group.profile_count,
    )


async def get_member(
    session: AsyncSession, principal: Principal, group_id: UUID, profile_id: str
) -> Row[*tuple[Any, ...]]:
    """The membership check; a profile token may ask about its own profile only."""
    pid = parse_uuid(profile_id)
    if not principal.is_producer:
        if pid is None:
            raise PermissionDenied(PROFILE_TOKEN_FORBIDDEN)
        await readable_profile(session, principal, profile_id=pid)
    await get_group(session, principal.app, group_id)
    return found(await MembershipRepository(session).get_member(group_id, pid) if pid else None)


# A profile's groups ---------------------------------------------------------------------------


async def readable_profile(
    session: AsyncSession,
    principal: Principal,
    *,
    profile_id: UUID | None = None,
    custom_id: str | None = None,
) -> Row[UUID, str | None]:
    """(id, custom_id) of the profile named by id or custom id, if the caller may read it."""
    check_may_ask(principal, profile_id=profile_id, custom_id=custom_id)
    rows = await MembershipRepository(session).resolve_profiles(
        principal.app.id,
        ids=[profile_id] if profile_id is not None else (),
        custom_ids=[custom_id] if custom_id is not None else (),
    )
    return readable(
        principal, rows[0] if rows else None, profile_id=profile_id, custom_id=custom_id
    )


async def profile_groups(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    profile_id: UUID | None = None,
    custom_id: str | None = None,
) -> Paged[Any]:
    """The groups a profile is in, static and dynamic alike, newest membership first."""
    profile = await readable_profile(session, principal, profile_id=profile_id, custom_id=custom_id)
    repo = MembershipRepository(session)
    stmt = repo.profile_groups_statement(principal.app.id, profile.id)
    return await paginate(
        session,
        page,
        stmt,
        [
            (GroupMembership.created_at, "membership_created_at"),
            (GroupMembership.group_id, "group_id"),
        ],
        await count_rows(session, stmt),
    )
