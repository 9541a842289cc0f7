"""Pure ASGI middleware for the cross-cutting rules of docs/api.md.

Pure ASGI (not BaseHTTPMiddleware) so request bodies stream through without being buffered twice
and so unexpected errors can still be answered with the request id.
"""

import json
import logging
import time
import uuid
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from profile_groups.kit.errors import TooLarge, UnsupportedMediaType, internal_error_body
from profile_groups.kit.logging import request_id_var

log = logging.getLogger("profile_groups.request")

MAX_BODY_BYTES = 5 * 1024 * 1024
_BODY_METHODS = {b"POST", b"PUT", b"PATCH", b"DELETE"}

REQUESTS = Counter(
    "profile_groups_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
LATENCY = Histogram(
    "profile_groups_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """Request id, access log, metrics, trailing slashes, body limits and last-resort 500s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = _header(scope, b"x-request-id")
        request_id = incoming.decode("latin-1")[:200] if incoming else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        # Every API route answers with and without its trailing slash, without a redirect.
        path: str = scope["path"]
        if path.startswith("/api/") and not path.endswith("/"):
            scope["path"] = path + "/"
            scope["raw_path"] = scope["path"].encode()

        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            rejection = self._reject_body(scope)
            if rejection is not None:
                await _send_json(send_wrapper, rejection.status_code, rejection.body())
                return
            await self.app(scope, self._limited(receive), send_wrapper)
        except _BodyTooLarge:
            if not status_holder["started"]:
                await _send_json(send_wrapper, 413, TooLarge().body())
        except Exception:
            log.exception("unhandled error", extra={"path": path})
            if not status_holder["started"]:
                await _send_json(send_wrapper, 500, internal_error_body(request_id))
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            method = scope["method"]
            REQUESTS.labels(method, route_path, str(status_holder["status"])).inc()
            LATENCY.labels(method, route_path).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": method,
                    "path": path,
                    "status": status_holder["status"],
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)

    @staticmethod
    def _reject_body(scope: Scope) -> TooLarge | UnsupportedMediaType | None:
        if scope["method"].encode() not in _BODY_METHODS:
            return None
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return TooLarge()
        has_body = (length is not None and length not in (b"0", b"")) or (
            _header(scope, b"transfer-encoding") is not None
        )
        content_type = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if (
            has_body
            and content_type
            and not (content_type == b"application/json" or content_type.endswith(b"+json"))
        ):
            return UnsupportedMediaType()
        return None

    @staticmethod
    def _limited(receive: Receive) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY_BYTES:
                    raise _BodyTooLarge
            return message

        return wrapped
