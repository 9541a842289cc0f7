"""The admin console (docs/console.md): static HTML, CSS and JavaScript modules served at
/console/. It is a client of the public /api/v1 API only, so it holds no route of its own beyond
the files and knows no feature."""

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

# The console loads nothing from another host and runs no inline script: a policy that says so
# makes an injected <script> or a foreign request fail instead of run. The token lives in the
# page, so no referrer leaves it and no other site may frame it.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Revalidated on every load (ETag), so a new version of the service is picked up at once.
    (b"cache-control", b"no-cache"),
]


class _Hardened:
    """The static files with the console's security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def install_console(app: FastAPI) -> None:
    """Serve the console at /console/ (and send /console there)."""

    @app.get("/console", include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", _Hardened(StaticFiles(directory=STATIC, html=True)), name="console")
