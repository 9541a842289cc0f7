"""The console's files as the API serves them (docs/console.md): HTML, modules and styles from
this origin only, with the headers that keep the token in the page."""

import re
from pathlib import Path

import httpx

STATIC = Path(__file__).resolve().parents[2] / "src" / "profile_groups" / "console" / "static"


async def test_the_console_page_and_its_modules_are_served_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/console/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="js/main.js">' in r.text

    for path in ("js/main.js", "js/builder.js", "console.css"):
        asset = await client.get(f"/console/{path}")
        assert asset.status_code == 200, path
        assert "content-security-policy" in asset.headers
    assert "javascript" in (await client.get("/console/js/main.js")).headers["content-type"]

    redirect = await client.get("/console")
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "/console/"


async def test_an_unknown_console_file_is_the_contracts_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/console/js/nope.js")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found.", "error_code": "not_found"}


def test_nothing_is_loaded_from_another_host() -> None:
    """No URL of another host in any file: the console works offline, and only talks to its
    own origin's /api/v1."""
    files = [p for p in STATIC.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for p in files:
        text = p.read_text()
        hosts = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text)
        # The only URLs allowed are examples shown as placeholders and the SVG namespace.
        allowed = {"http://www.w3.org", "https://example.com"}
        assert {h for h in hosts if not any(h.startswith(a) for a in allowed)} == set(), p
