"""Random profiles, activity and rule trees, and what the plain-Python reference says they match:
shared by the compiler's property test and the incremental engine's.

Event times, datetime rule values and windows are drawn from one grid of offsets from `AS_OF`, so
boundaries (an event exactly `window_days` ago, a datetime rule value equal to a stored time) are
hit often.
"""

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from profile_groups.attributes.registry import (
    ALIASES,
    PLATFORM_ATTRIBUTES,
    AttributeDef,
    DataType,
    custom_attribute_def,
)
from profile_groups.db import AsyncSessionMaker
from profile_groups.models import Profile
from tests.activity.reference import reference_values, windowed_counts
from tests.conftest import Api
from tests.segmentation.reference import holds

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "300"))


def property_settings(max_examples: int) -> settings:
    """Hypothesis settings of the database-backed property tests."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            # The fixtures are set up once for all examples; each example resets its own data.
            HealthCheck.function_scoped_fixture,
        ],
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )


CUSTOM: dict[str, DataType] = {
    "score": "number",
    "label": "string",
    "flag": "boolean",
    "seen_at": "datetime",
}
CUSTOM_DEFS: dict[str, AttributeDef] = {
    k: custom_attribute_def(k, t, "") for k, t in CUSTOM.items()
}
CATALOGUE: dict[str, AttributeDef] = {**PLATFORM_ATTRIBUTES, **CUSTOM_DEFS}
DATA_TYPES = {k: a.data_type for k, a in CATALOGUE.items()}
KEYS = sorted([*CATALOGUE, *ALIASES])

# One as_of for the whole run, at a whole second so ISO strings round-trip simply.
AS_OF = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
OFFSETS = [
    timedelta(days=d, hours=h) for d in (0, 1, 2, 3, 6, 7, 8, 29, 30, 31, 45) for h in (0, 6)
]
WINDOWS = [1, 3, 7, 30]
DAYS = [0, 1, 3, 7, 8, 30, 45]
STRINGS = ["", "a", "A", "ab", "aB", "AB%", "%", "_", "a_b", "a%b", "x\\y", "\\", "Gold", "gold",
           "GOLD", "silver", "é", "É"]  # fmt: skip
NUMBERS = [0, 1, 2, 3, 5, -1, 0.5, 1.5, 2.75, -1.25, 0.3333333333333333, 0.6666666666666666]


def iso(offset: timedelta, fmt: int = 0) -> str:
    t = AS_OF - offset
    if fmt == 1:  # naive: UTC (docs/api.md)
        return t.replace(tzinfo=None).isoformat()
    if fmt == 2:  # another zone
        return t.astimezone(UTC).astimezone(tz=None).isoformat()
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


strings = st.one_of(st.sampled_from(STRINGS), st.text(alphabet="aAbB%_\\é ", max_size=4))
numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(-2, 12))
datetimes = st.builds(iso, st.sampled_from(OFFSETS), st.sampled_from([0, 0, 0, 1, 2]))


def scalar(data_type: str) -> st.SearchStrategy[Any]:
    return {"number": numbers, "string": strings, "datetime": datetimes}[data_type]


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(KEYS))
    attr = CATALOGUE[ALIASES.get(key, key)]
    cond = draw(st.sampled_from(attr.conditions))
    dt = attr.data_type
    value: Any
    if cond in ("is", "is_empty", "is_not_empty"):
        value = draw(st.booleans())
    elif cond in ("within_last_x_days", "not_within_last_x_days"):
        value = draw(st.sampled_from(DAYS))
    elif cond == "between":
        a, b = draw(scalar(dt)), draw(scalar(dt))
        value = sorted([a, b], key=lambda v: _sort_key(v, dt))
    elif cond in ("in", "not_in"):
        value = draw(st.lists(scalar(dt), min_size=1, max_size=4))
    elif cond in ("before", "after"):
        value = draw(datetimes)
    else:
        value = draw(scalar(dt))
    leaf: dict[str, Any] = {"attribute": key, "condition": cond, "value": value}
    if attr.supports_window and draw(st.booleans()):
        leaf["window_days"] = draw(st.sampled_from(WINDOWS))
    return leaf


def _sort_key(value: Any, data_type: str) -> Any:
    if data_type == "datetime":
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    return value


def trees(depth: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    if depth >= 4:
        return leaves()
    inner = st.fixed_dictionaries(
        {
            "operator": st.sampled_from(["AND", "OR"]),
            "children": st.lists(trees(depth + 1), min_size=1, max_size=3),
        }
    )
    return st.one_of(leaves(), inner) if depth > 1 else inner


EVENT_TYPES = [
    "comment_posted", "comment_replied", "comment_reported", "reaction_added", "poll_answered",
    "social_connection_added", "social_connection_removed", "quest_started", "quest_completed",
    "quest_failed", "quest_reward_earned", "quest_reward_claimed", "streak_activity",
    "streak_reset", "streak_milestone_reached", "streak_frozen", "streak_unfrozen", "tier_changed",
    "reward_earned", "reward_spent", "reward_action_triggered", "leaderboard_viewed",
    "leaderboard_ranked",
]  # fmt: skip


@st.composite
def events(draw: st.DrawFn, profiles: int) -> dict[str, Any]:
    type_ = draw(st.sampled_from(EVENT_TYPES))
    event: dict[str, Any] = {
        "profile": draw(st.integers(0, profiles - 1)),
        "type": type_,
        "occurred_at": iso(draw(st.sampled_from(OFFSETS))),
    }
    if type_ == "streak_activity":
        event["value"] = draw(st.integers(0, 6))
        streak_type = draw(st.sampled_from([None, "consecutive", "periodic"]))
        if streak_type:
            event["properties"] = {"streak_type": streak_type}
    elif type_ == "tier_changed":
        event["value"] = draw(st.sampled_from(["Gold", "gold", "Silver", "a_b", "%"]))
        event["properties"] = {
            "rank": draw(st.integers(0, 4)),
            "direction": draw(st.sampled_from(["upgrade", "downgrade"])),
        }
    elif type_ in ("reward_earned", "reward_spent"):
        event["value"] = draw(st.sampled_from([0, 1, 2.5, 10, 0.25]))
    elif type_ == "leaderboard_ranked":
        event["properties"] = {"leaderboard_id": draw(st.sampled_from(["lb1", "lb2", "lb3"]))}
    return event


@st.composite
def profiles_and_events(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = draw(st.integers(1, 5))
    profiles = []
    for i in range(n):
        attrs: dict[str, Any] = {}
        for key, dt in CUSTOM.items():
            if draw(st.booleans()):
                attrs[key] = draw(st.booleans()) if dt == "boolean" else draw(scalar(dt))
        custom_id = draw(st.one_of(st.none(), strings.filter(bool)))
        profiles.append(
            {
                "id": str(uuid.uuid4()),
                "nickname": draw(st.one_of(st.none(), strings)),
                "custom_id": None if custom_id is None else f"{custom_id}{i}",
                "created_at": iso(draw(st.sampled_from(OFFSETS))),
                "custom_attributes": attrs,
            }
        )
    evs = draw(st.lists(events(n), max_size=14))
    return profiles, evs


_DEFINED: set[str] = set()


async def define_custom(api: Api) -> None:
    if api.tenant.client_id in _DEFINED:
        return
    _DEFINED.add(api.tenant.client_id)
    for key, data_type in CUSTOM.items():
        r = await api.post("/custom-attributes/", json={"key": key, "data_type": data_type})
        assert r.status_code == 201, r.text


async def load(
    api: Api, sessionmaker: AsyncSessionMaker, app_id: UUID, profiles: list[dict[str, Any]],
    evs: list[dict[str, Any]],
) -> list[dict[str, Any]]:  # fmt: skip
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Profile).where(Profile.application_id == app_id))
    r = await api.post("/profiles/bulk/", json={"profiles": profiles})
    assert r.status_code == 200 and r.json()["errors"] == [], r.text
    body = [
        {k: v for k, v in e.items() if k != "profile"}
        | {"profile_id": profiles[e["profile"]]["id"]}
        for e in evs
    ]
    if body:
        r = await api.post("/events/", json={"events": body})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == len(body), r.text
    return body


def expected(
    tree: dict[str, Any], profiles: list[dict[str, Any]], sent: list[dict[str, Any]]
) -> set[str]:
    out = set()
    for p in profiles:
        mine = [
            {**e, "occurred_at": datetime.fromisoformat(e["occurred_at"])}
            for e in sent
            if e["profile_id"] == p["id"]
        ]
        ref_profile = {
            **p,
            "created_at": datetime.fromisoformat(p["created_at"]),
        }
        values = reference_values(mine, ref_profile, AS_OF, CUSTOM_DEFS)

        def windowed(key: str, days: int, mine: list[dict[str, Any]] = mine) -> Any:
            return windowed_counts(mine, AS_OF, days)[key]

        if holds(tree, values, DATA_TYPES, AS_OF, windowed):
            out.add(p["id"])
    return out
