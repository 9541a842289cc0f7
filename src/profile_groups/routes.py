"""The /api/v1 router: every feature's router, mounted under the application's path."""

from fastapi import APIRouter
from fastapi.routing import APIRoute

from profile_groups.activity.router import router as activity_router
from profile_groups.attributes.router import custom_attributes_router
from profile_groups.attributes.router import router as attributes_router
from profile_groups.groups.router import router as groups_router
from profile_groups.profiles.router import router as profiles_router
from profile_groups.webhooks.router import router as webhooks_router

# The operation ids of the groups routes (stable: clients generated from the document name their
# methods after them). Every other operation id is its route function's name
# (kit.openapi.operation_id); the groups router's function names are shorter than the ids the
# document promises, so they are named here once.
GROUP_OPERATION_IDS = {
    "create_group": "create_profile_group",
    "list_groups": "list_profile_groups",
    "preview": "preview_rule_tree",
    "get_group": "get_profile_group",
    "update_group": "update_profile_group",
    "delete_group": "delete_profile_group",
    "get_group_by_custom_id": "get_profile_group_by_custom_id",
    "add_members": "add_group_members",
    "remove_members": "remove_group_members",
    "list_members": "list_group_members",
    "get_member": "get_group_member",
    "evaluate": "evaluate_profile_group",
    "list_evaluations": "list_group_evaluations",
    "profile_groups": "list_groups_of_profile",
    "profile_groups_by_custom_id": "list_groups_of_profile_by_custom_id",
}


def _group_operation_id(route: APIRoute) -> str:
    return GROUP_OPERATION_IDS.get(route.name, route.name)


api_router = APIRouter(prefix="/api/v1/applications/{client_id}")
for feature in (
    profiles_router,
    custom_attributes_router,
    groups_router,
    activity_router,
    attributes_router,
    webhooks_router,
):
    if feature is groups_router:
        api_router.include_router(feature, generate_unique_id_function=_group_operation_id)
    else:
        api_router.include_router(feature)
