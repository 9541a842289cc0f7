"""Operational endpoints (docs/operations.md): liveness, readiness, metrics."""

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from profile_groups.ops.metrics import render
from profile_groups.ops.schemas import Health, NotReady, Readiness
from profile_groups.ops.service import readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database and Redis reachable, migrations at head, a worker seen",
    response_model=Readiness,
    responses={
        503: {"model": NotReady, "description": "A dependency is down or migrations are behind."}
    },
)
async def readyz(request: Request) -> Response:
    checks: dict[str, Any] = await readiness(request.app)
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    return JSONResponse(
        {
            "detail": "Service is not ready.",
            "error_code": "unavailable",
            "checks": checks,
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """HTTP, ingestion and membership counters of this process, and the domain's state read from
    PostgreSQL and Redis at each scrape (docs/operations.md)."""
    return Response(await render(request.app), media_type=CONTENT_TYPE_LATEST)
