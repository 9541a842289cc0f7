"""/docs works as a person uses it, offline (its assets are served by the API): Authorize with
the bearer token, "Try it out" one operation, see its response."""

from playwright.sync_api import Page, expect

from tests.browser.conftest import Live


def test_docs_authorize_and_try_it_out(page: Page, live: Live) -> None:
    # Nothing from another host: a request that leaves the service fails the page.
    foreign: list[str] = []
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith(live.base_url) or r.url.startswith("data:")
            else foreign.append(r.url)
        ),
    )
    with live.http() as http:
        assert http.post("/profile-groups/", json={"name": "Seen from the docs"}).status_code == 201

    page.goto(f"{live.base_url}/docs")
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#auth-bearer-value").fill(live.token)
    dialog.locator("button.modal-btn.authorize").click()
    expect(dialog.locator("button", has_text="Logout")).to_be_visible()  # authorized
    dialog.locator("button.btn-done").click()

    op = page.locator("#operations-profile_groups-list_profile_groups")
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    op.locator('tr[data-param-name="client_id"] input').fill(live.client_id)
    op.get_by_role("button", name="Execute").click()

    response = op.locator(".live-responses-table .response")
    expect(response.locator(".response-col_status")).to_have_text("200")
    expect(response.locator(".response-col_description")).to_contain_text("Seen from the docs")
    curl = op.locator(".curl-command")
    expect(curl).to_contain_text("Authorization: Bearer")
    assert foreign == []
