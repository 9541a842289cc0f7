"""The /api/v1 router: every feature's router, mounted under the application's path."""

from fastapi import APIRouter

from profile_groups.activity.router import router as activity_router
from profile_groups.attributes.router import custom_attributes_router
from profile_groups.attributes.router import router as attributes_router
from profile_groups.groups.router import router as groups_router
from profile_groups.profiles.router import router as profiles_router

api_router = APIRouter(prefix="/api/v1/applications/{client_id}")
for feature in (
    profiles_router,
    custom_attributes_router,
    groups_router,
    activity_router,
    attributes_router,
):
    api_router.include_router(feature)
