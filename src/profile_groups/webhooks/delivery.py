"""One delivery attempt: sign per the Standard Webhooks specification and POST (docs/webhooks.md).

The body is the stored payload, byte for byte; `webhook-id` is the delivery's id, the same on
every attempt; `webhook-timestamp` is the attempt's time (receivers reject old ones, so a retry
is signed anew). The request goes to the address the target check resolved, never to a second
lookup of the name, with the name kept for `Host` and TLS (SNI and certificate).
"""

import asyncio
import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from profile_groups.webhooks.targets import (
    IPAddress,
    Target,
    TargetRefused,
    checked_address,
    parse_url,
)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
TIMEOUT_SECONDS = 10.0
# How much of a receiver's answer is read (and kept as `last_error` of a failure).
MAX_RESPONSE_BYTES = 4096
MAX_ERROR_CHARS = 500
USER_AGENT = "profile-groups-webhooks/1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secrets_: list[str], message_id: str, timestamp: datetime, payload: str) -> str:
    """The `webhook-signature` header: one `v1,<base64>` per secret, space-separated (receivers
    accept the message if any matches, which is what lets a rotation overlap)."""
    return " ".join(Webhook(s).sign(message_id, timestamp, payload) for s in secrets_)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").replace("\x00", "")
    return " ".join(text.split())[:MAX_ERROR_CHARS]


def _pinned_url(target: Target, address: IPAddress) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{target.port}"
    return target.url._replace(netloc=netloc, fragment="").geturl()


def _host_header(target: Target) -> str:
    default = 443 if target.url.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


async def attempt(
    client: httpx.AsyncClient,
    *,
    url: str,
    message_id: str,
    payload: str,
    secrets_: list[str],
    allow_private: bool,
) -> Outcome:
    """POST `payload` to `url` once: success is a 2xx within TIMEOUT_SECONDS (redirects are not
    followed: a 3xx is a failure). Never raises for the receiver's or the network's faults."""
    try:
        target = parse_url(url)
        address = await checked_address(target, allow_private=allow_private)
    except TargetRefused as exc:
        return Outcome(False, None, str(exc))
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": _host_header(target),
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature(secrets_, message_id, now, payload),
    }
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            request = client.build_request(
                "POST",
                _pinned_url(target, address),
                content=payload.encode(),
                headers=headers,
                extensions=extensions,
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                body = b""
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return Outcome(False, None, f"No answer within {TIMEOUT_SECONDS:g} s.")
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] or "error")
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code, None)
    detail = _printable(body[:MAX_RESPONSE_BYTES])
    error = f"The receiver answered {response.status_code}."
    if detail:
        error = f"{error} {detail}"[:MAX_ERROR_CHARS]
    return Outcome(False, response.status_code, error)


def client() -> httpx.AsyncClient:
    """The dispatcher's HTTP client. Connections are not kept alive: a pooled connection is
    keyed by address, and one opened for one name must not carry another's request."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: the checked address is the one called
        limits=httpx.Limits(max_keepalive_connections=0),
    )
