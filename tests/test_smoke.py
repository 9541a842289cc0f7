from tests.conftest import Api


async def test_create_and_get_group(api: Api) -> None:
    r = await api.post("/profile-groups/", json={"name": "G"})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    r = await api.get(f"/profile-groups/{gid}")
    assert r.status_code == 200
    assert r.json()["name"] == "G"
