"""Opaque, HMAC-signed pagination cursors: the boundary key of a page and its direction.

A cursor is bound to the list it came from: the signature covers a `binding` (the route and its
path parameters, so the application, and the group or profile of a sub-list), which is not in
the cursor itself. The same cursor on any other list, or of another application, fails the
signature check: a 400 (docs/api.md).
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from profile_groups.kit.errors import invalid_field


def _encode_key(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, UUID):
        return {"u": str(value)}
    return value


def _decode_key(value: Any) -> Any:
    if isinstance(value, dict):
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        if "u" in value:
            return UUID(value["u"])
        raise ValueError("bad key")
    return value


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes, binding: str) -> str:
        message = binding.encode(errors="surrogatepass") + b"\x00" + payload
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def encode(self, key: Sequence[Any], forward: bool, binding: str = "") -> str:
        payload = json.dumps({"k": [_encode_key(v) for v in key], "f": forward}).encode()
        raw = json.dumps({"p": payload.decode(), "s": self._sign(payload, binding)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str, binding: str = "") -> tuple[list[Any], bool]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            outer = json.loads(raw)
            payload = outer["p"].encode()
            if not hmac.compare_digest(self._sign(payload, binding), outer["s"]):
                raise ValueError("bad signature")
            inner = json.loads(payload)
            if not isinstance(inner["k"], list):
                raise ValueError("bad key")
            return [_decode_key(v) for v in inner["k"]], bool(inner["f"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise invalid_cursor() from exc


def invalid_cursor() -> Exception:
    return invalid_field(
        ["query", "cursor"],
        "Invalid cursor: altered, or not from this list of this application.",
        "cursor_invalid",
    )
