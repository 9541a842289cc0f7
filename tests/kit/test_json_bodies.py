"""JSON request bodies (docs/api.md): text PostgreSQL cannot store is a 400 naming where it is, on
every endpoint, and bodies the fast parser refuses are still judged by the JSON standard."""

from typing import Any

from profile_groups.kit.routing import BAD_TEXT
from tests.activity.helpers import new_profile, send, values
from tests.conftest import Api

JSON = {"Content-Type": "application/json"}


async def post_raw(api: Api, path: str, body: bytes) -> Any:
    return await api.post(path, content=body, headers=JSON)


async def test_nul_in_an_event_is_a_400_naming_the_field(api: Api) -> None:
    p = await new_profile(api)
    good = {"type": "comment_posted", "profile_id": p["id"]}
    bad: list[tuple[dict[str, Any], list[Any]]] = [
        ({"type": "comment_posted", "custom_id": "a\u0000b"}, ["custom_id"]),
        ({**good, "id": "evt\u0000"}, ["id"]),
        ({**good, "properties": {"note": ["ok", "x\u0000"]}}, ["properties", "note", 1]),
        ({**good, "properties": {"k\u0000": 1}}, ["properties", "k\u0000"]),
    ]
    for item, where in bad:
        r = await api.post("/events/", json={"events": [good, item]})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error_code"] == "invalid" and body["detail"] == BAD_TEXT
        assert body["errors"][0]["loc"] == ["body", "events", 1, *where]
    # Nothing of a refused request was stored.
    assert (await values(api, p["id"]))["values"]["total_comments_posted"] == 0


async def test_unpaired_surrogates_are_a_400(api: Api) -> None:
    p = await new_profile(api)
    head = b'{"events": [{"type": "comment_posted", "profile_id": "' + p["id"].encode() + b'"'
    for tail in [b', "id": "x\\ud800"}]}', b', "id": "\\udc00x"}]}', b', "id": "\xed\xa0\x80"}]}']:
        r = await post_raw(api, "/events/", head + tail)
        assert r.status_code == 400, (tail, r.text)
        assert r.json()["errors"][0]["loc"] == ["body", "events", 0, "id"]


async def test_escaped_text_that_is_fine_is_accepted(api: Api) -> None:
    p = await new_profile(api, custom_id="caf\u00e9 \U0001f600")
    # A surrogate pair is one character; an escaped backslash before "u0000" is plain text.
    body = (
        b'{"events": [{"type": "comment_posted", "custom_id": "caf\\u00e9 \\ud83d\\ude00",'
        b' "id": "a\\\\u0000b"}]}'
    )
    r = await post_raw(api, "/events/", body)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    # The client id was stored as sent: the retry is a duplicate.
    assert (await post_raw(api, "/events/", body)).json()["duplicates"] == 1
    assert (await values(api, p["id"]))["values"]["total_comments_posted"] == 1


async def test_every_endpoint_refuses_unstorable_text(api: Api) -> None:
    r = await api.post("/profiles/", json={"custom_id": "a\u0000"})
    assert r.status_code == 400 and r.json()["errors"][0]["loc"] == ["body", "custom_id"]
    r = await api.post("/profile-groups/", json={"name": "n\u0000"})
    assert r.status_code == 400 and r.json()["errors"][0]["loc"] == ["body", "name"]


async def test_malformed_json_still_gets_the_standard_error(api: Api) -> None:
    for body in [b'{"events": [1, 2,]}', b'{"events": ', b"\xff\xfe"]:
        r = await post_raw(api, "/events/", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["detail"] == "Malformed JSON in request body."
    # Bodies only the standard parser reads (NaN) are still read.
    r = await post_raw(api, "/events/", b'{"events": [NaN]}')
    assert r.status_code == 200 and r.json()["rejected"][0]["index"] == 0


async def test_amounts_travel_as_exact_decimals(api: Api) -> None:
    p = await new_profile(api)
    await send(
        api,
        {"type": "reward_earned", "profile_id": p["id"], "value": 0.1},
        {"type": "reward_earned", "profile_id": p["id"], "value": 0.2},
    )
    # NUMERIC all the way: 0.3, not the 0.30000000000000004 of binary floats.
    assert (await values(api, p["id"]))["values"]["reward_balance_total_earned"] == 0.3
