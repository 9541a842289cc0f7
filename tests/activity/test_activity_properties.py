"""Property test (docs/activity.md): random event sets for a few profiles, shuffled, split into
random batches and ingested twice over with retries, give the attribute values of the plain-Python
reference; rolling windows read through AttributeContext match the reference too."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profile_groups.activity.service import EVENT_TYPES
from profile_groups.attributes.expressions import AttributeContext
from profile_groups.attributes.registry import PLATFORM_ATTRIBUTES
from profile_groups.db import AsyncSessionMaker
from tests.activity.helpers import new_profile, parse
from tests.activity.reference import WINDOWED, as_json, reference_values, windowed_counts
from tests.conftest import Api, Tenant
from tests.factories import application_id

BASE = datetime.now(UTC).replace(microsecond=0)
PROFILES = 3
LATEST_SENSITIVE = {
    "tier_changed",
    "streak_activity",
    "streak_reset",
    "streak_frozen",
    "streak_unfrozen",
}


@st.composite
def events(draw: st.DrawFn, types: list[str]) -> dict[str, Any]:
    type_ = draw(st.sampled_from(types))
    # Few distinct times, so ties on occurred_at (decided by accept order) are common.
    hours = (
        draw(st.integers(0, 24 * 45)) if draw(st.booleans()) else draw(st.sampled_from([1, 2, 50]))
    )
    event: dict[str, Any] = {
        "type": type_,
        "profile": draw(st.integers(0, PROFILES - 1)),
        "occurred_at": BASE - timedelta(hours=hours),
    }
    if type_ == "streak_activity":
        event["value"] = draw(st.integers(0, 30))
        streak_type = draw(st.sampled_from([None, "consecutive", "periodic"]))
        if streak_type is not None:
            event["properties"] = {"streak_type": streak_type}
    elif type_ == "tier_changed":
        event["value"] = draw(st.sampled_from(["Bronze", "Silver", "Gold"]))
        event["properties"] = {
            "rank": draw(st.integers(1, 5)),
            "direction": draw(st.sampled_from(["upgrade", "downgrade"])),
        }
    elif type_ in ("reward_earned", "reward_spent"):
        event["value"] = draw(st.integers(0, 4000)) / 4  # exact in binary and decimal
    elif type_ == "leaderboard_ranked":
        event["properties"] = {"leaderboard_id": draw(st.sampled_from(["a", "b", "c"]))}
    return event


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    # A few types per example, so each profile gets several events of a kind (and ties); the
    # types whose "latest" event matters are drawn more often.
    pool = sorted(EVENT_TYPES) + sorted(LATEST_SENSITIVE) * 3
    types = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique=True))
    size = draw(st.integers(0, 80))  # (plain st.lists stays mostly tiny)
    items = draw(st.lists(events(types), min_size=size, max_size=size))
    for i, item in enumerate(items):
        item["id"] = f"e{i}"
    # Every event is sent at least once; some batches are retried, and the whole set is sent
    # again in another order and batching.
    first = draw(st.permutations(items))
    second = draw(st.permutations(items))
    cuts = draw(st.lists(st.integers(0, len(items)), max_size=6))
    sends: list[list[dict[str, Any]]] = []
    for sequence in (first, second):
        bounds = sorted({0, len(items), *cuts})
        for lo, hi in itertools.pairwise(bounds):
            batch = list(sequence[lo:hi])
            sends.append(batch)
            if draw(st.booleans()):
                sends.append(draw(st.permutations(batch)))  # a retry
    by_custom_id = draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items)))
    window = draw(st.integers(1, 40))
    return {"items": items, "sends": sends, "by_custom_id": by_custom_id, "window": window}


def _wire(event: dict[str, Any], profile: dict[str, Any], by_custom_id: bool) -> dict[str, Any]:
    out = {k: v for k, v in event.items() if k not in ("profile", "occurred_at")}
    out["occurred_at"] = event["occurred_at"].isoformat()
    if by_custom_id:
        out["custom_id"] = profile["custom_id"]
    else:
        out["profile_id"] = profile["id"]
    return out


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_any_order_any_batching_matches_reference(
    api: Api, tenant: Tenant, sessionmaker: AsyncSessionMaker, scenario: dict[str, Any]
) -> None:
    profiles = [
        await new_profile(api, custom_id=f"c-{uuid.uuid4()}", nickname=f"n{i}")
        for i in range(PROFILES)
    ]
    items = scenario["items"]
    # Ids are per application and profiles are fresh, so make them unique to this example.
    tag = uuid.uuid4().hex
    wire = {
        item["id"]: {
            **_wire(item, profiles[item["profile"]], scenario["by_custom_id"][i]),
            "id": f"{tag}-{item['id']}",
        }
        for i, item in enumerate(items)
    }
    accepted_order: list[str] = []
    seen: set[str] = set()
    for batch in scenario["sends"]:
        response = await api.post("/events/", json={"events": [wire[e["id"]] for e in batch]})
        assert response.status_code == 200, response.text
        body = response.json()
        new = [e["id"] for e in batch if e["id"] not in seen]
        assert body == {"accepted": len(new), "duplicates": len(batch) - len(new), "rejected": []}
        accepted_order += new
        seen.update(new)
    assert sorted(accepted_order) == sorted(item["id"] for item in items)

    by_id = {item["id"]: item for item in items}
    app_id = await application_id(sessionmaker, tenant)
    for index, profile in enumerate(profiles):
        # The reference sees the events in the order they were first accepted (ties on time).
        mine = [by_id[i] for i in accepted_order if by_id[i]["profile"] == index]
        response = await api.get(f"/profiles/{profile['id']}/attributes/")
        assert response.status_code == 200
        body = response.json()
        as_of = parse(body["as_of"])
        ref_profile = {**profile, "created_at": parse(profile["created_at"])}
        assert body["values"] == as_json(reference_values(mine, ref_profile, as_of))

        # Rolling windows, through the same context the rule compiler uses.
        window = scenario["window"]
        ctx = AttributeContext(app_id, as_of, {})
        cols = [ctx.value(PLATFORM_ATTRIBUTES[k], window).label(k) for k in sorted(WINDOWED)]
        stmt = ctx.select(*cols).where(ctx.profile.id == uuid.UUID(profile["id"]))
        async with sessionmaker() as session:
            row = (await session.execute(stmt)).one()
        expected = windowed_counts(mine, as_of, window)
        got = {k: getattr(row, k) for k in sorted(WINDOWED)}
        assert got == {k: Decimal(str(v)) for k, v in expected.items()}
