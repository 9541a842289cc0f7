"""Why a profile is or is not in a group (docs/segmentation.md, "Explain"): the stored
membership beside, for a dynamic group, its current rule tree evaluated for that profile now by
the evaluation's own compiled SQL (segmentation.service.explain)."""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.applications.auth import PROFILE_TOKEN_FORBIDDEN, Principal
from profile_groups.groups.repositories.membership import MembershipRepository
from profile_groups.groups.repositories.rulesets import RulesetRepository
from profile_groups.groups.schemas import DynamicExplanation, StaticExplanation
from profile_groups.groups.service import get_group, parse_uuid, readable_profile
from profile_groups.kit.errors import Conflict, NotFound, PermissionDenied, found
from profile_groups.kit.repository import clock
from profile_groups.segmentation import service as segmentation

# The stored tree is checked again, as at every evaluation; its problems' paths start here.
TREE_LOC = ("rule_tree",)


async def explain_membership(
    session: AsyncSession,
    principal: Principal,
    group_id: UUID,
    *,
    profile_id: str | None = None,
    custom_id: str | None = None,
) -> DynamicExplanation | StaticExplanation:
    """The explanation of one profile (by id or custom id) in one group.

    The profile is resolved first, under the read policy of a profile's groups: a profile token
    asks about its own profile only (403 for any other, existing or not) and so learns nothing
    about groups through another profile's id. An id that is not a UUID names no profile.
    """
    pid: UUID | None = None
    if profile_id is not None:
        pid = parse_uuid(profile_id)
        if pid is None:
            raise NotFound() if principal.is_producer else PermissionDenied(PROFILE_TOKEN_FORBIDDEN)
    profile = await readable_profile(session, principal, profile_id=pid, custom_id=custom_id)
    group = await get_group(session, principal.app, group_id)
    membership = await MembershipRepository(session).get_member(group.id, profile.id)
    member = membership is not None
    if group.membership_type == "static":
        return StaticExplanation(
            member=member,
            membership_created_at=membership.membership_created_at if membership else None,
        )
    current = await RulesetRepository(session).active_of(principal.app.id, [group.id])
    if not current:
        raise Conflict("This group has no rule tree to explain.")
    tree = current[0].rule_tree
    # Checked against the catalogue as it is now, as the next evaluation will check it.
    checked, errors = await segmentation.check_tree(session, principal.app.id, tree, TREE_LOC)
    if checked is None:
        raise Conflict(
            "The group's rule tree no longer validates against the attribute catalogue, so it "
            f"is not evaluated. {segmentation.describe(errors)}"
        )
    as_of = await clock(session)
    explained = found(
        await segmentation.explain(session, principal.app.id, checked, tree, profile.id, as_of)
    )
    return DynamicExplanation(
        as_of=explained.as_of, member=member, matches=explained.matches, tree=explained.tree
    )
