"""A real HTTP receiver on loopback for webhook tests: every request is checked with the
`standardwebhooks` library, as a receiver would, and kept; it can answer errors or be down."""

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """`secrets`: the ones a request must verify with (any of them). `status`: what it answers."""

    secrets: list[str] = field(default_factory=list)
    status: int = 200
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    # Seconds to wait before answering, and how many requests were open at once at most.
    delay: float = 0.0
    active: int = 0
    max_active: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(headers, body, self.verify(headers, body)))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.active -= 1
            status = self.status
            reply = b'{"ok": true}' if status < 300 else b"receiver is failing"
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: {len(reply)}\r\n"
                "connection: close\r\n\r\n".encode()
                + reply
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.received if r.json["type"] == type_]
