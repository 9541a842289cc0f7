"""Opaque, HMAC-signed pagination cursors: the boundary key of a page and its direction."""

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

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()[:32]

    def encode(self, key: Sequence[Any], forward: bool) -> str:
        payload = json.dumps({"k": [_encode_key(v) for v in key], "f": forward}).encode()
        raw = json.dumps({"p": payload.decode(), "s": self._sign(payload)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[list[Any], bool]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            outer = json.loads(raw)
            payload = outer["p"].encode()
            if not hmac.compare_digest(self._sign(payload), outer["s"]):
                raise ValueError("bad signature")
            inner = json.loads(payload)
            return [_decode_key(v) for v in inner["k"]], bool(inner["f"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise invalid_field(["query", "cursor"], "Invalid cursor.") from exc
