"""The /api/v1 router: every feature's router, mounted under the application's path."""

from fastapi import APIRouter

from profile_groups.groups.router import router as groups_router
from profile_groups.profiles.router import router as profiles_router

api_router = APIRouter(prefix="/api/v1/applications/{client_id}")
api_router.include_router(profiles_router)
api_router.include_router(groups_router)
