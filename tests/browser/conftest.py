"""A live service for the browser tests and headless Chromium driving it.

`profile-groups run` as a process (API + worker, the way a person starts it) on a database of
its own on the test PostgreSQL, the test Redis and a free port; the sign-in link is read from
its banner. Chromium is the system's (/usr/bin/chromium, installed by .ci/run), launched by
Playwright through `executable_path`, never a browser Playwright downloads.
"""

import asyncio
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CLI = Path(sys.executable).with_name("profile-groups")
LINK = re.compile(r"Console:\s+(\S+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    base_url: str
    link: str
    client_id: str
    token: str
    log: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1/applications/{self.client_id}"

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )


# Package scope: its worker consumes the test Redis's queue, so it must be gone before the
# other packages' tests run their own workers on that queue.
@pytest.fixture(scope="package")
def live(servers: tuple[str, str]) -> Iterator[Live]:
    server_url, redis_url = servers
    name = f"profile_groups_browser_{secrets.token_hex(4)}"
    admin_url = make_url(server_url)
    db_url = admin_url.set(database=name).render_as_string(hide_password=False)
    _admin(server_url, f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="profile-groups-browser-"))
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(tmp),
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [str(CLI), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            m = LINK.search(line)
            if m:
                found["link"] = m.group(1)
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(60):
            raise RuntimeError("no console link in the banner:\n" + "".join(log))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        fragment = dict(p.split("=", 1) for p in found["link"].split("#", 1)[1].split("&"))
        yield Live(base, found["link"], fragment["client_id"], fragment["token"], log)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
        _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(server_url: str, statement: str) -> None:
    async def run() -> None:
        engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    # A thread of its own: the test session's event loop may be running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(autouse=True)
def _clean_database() -> None:
    """The live service has a database of its own: the suite's per-test truncation (an async
    fixture, which cannot run while Playwright's sync API holds this thread's event loop) is
    not needed here."""


# Package scope: Playwright's sync API runs an event loop in this thread while it is started,
# so it is stopped before the next package's async fixtures run.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    yield b
    b.close()


class Console:
    """Everything the page said on its console or threw, to assert none of it was an error.

    Chromium also logs every HTTP error answer of a fetch ("Failed to load resource: ... status
    of 400"). A flow that provokes one on purpose (a validation error, an endpoint this service
    does not offer yet) names the status and URL part it expects with `expect()`; any other is
    an error of the flow."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: list[tuple[int, str]] = []

    def expect(self, status: int, url_part: str) -> None:
        self.expected.append((status, url_part))

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        text = msg.text
        url = msg.location.get("url", "") if msg.location else ""
        m = re.search(r"status of (\d+)", text)
        if m and any(int(m.group(1)) == s and part in url for s, part in self.expected):
            return
        self.errors.append(f"{text} ({url})")

    def on_error(self, exc: Any) -> None:
        self.errors.append(f"pageerror: {exc}")


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    p.on("console", console.on_console)
    p.on("pageerror", console.on_error)
    p.set_default_timeout(15_000)
    yield p
    context.close()
    assert console.errors == [], console.errors
