"""The event types' table (activity/event_types.py) against the contract, the aggregates table,
the attribute registry and ingestion: what the table declares is what the service does."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import DateTime, literal, select
from sqlalchemy.dialects import postgresql

from profile_groups.activity.event_types import (
    EVENT_TYPES,
    LAST_EVENT_AT,
    EventType,
    Match,
    windowed,
)
from profile_groups.activity.repository import EventRow, _batch_rows
from profile_groups.activity.service import Rejected, parse_event
from profile_groups.attributes.expressions import WINDOWED_KEYS, _platform_expressions
from profile_groups.attributes.registry import CATEGORIES, PLATFORM_ATTRIBUTES
from profile_groups.db import AsyncSessionMaker
from profile_groups.models.activity import Event, ProfileActivity
from tests.activity.helpers import ago, new_profile, send, values
from tests.conftest import Api

# The contract's event types (docs/activity.md), written out so the table cannot drift from it.
CONTRACT_TYPES = {
    "comment_posted", "comment_replied", "comment_reported", "reaction_added", "poll_answered",
    "social_connection_added", "social_connection_removed", "quest_started", "quest_completed",
    "quest_failed", "quest_reward_earned", "quest_reward_claimed", "streak_activity",
    "streak_reset", "streak_milestone_reached", "streak_frozen", "streak_unfrozen",
    "tier_changed", "reward_earned", "reward_spent", "reward_action_triggered",
    "leaderboard_viewed", "leaderboard_ranked",
}  # fmt: skip
NOW = datetime.now(UTC)
PID = "0b8f7c2e-52a7-4a57-9d3e-1f2a3b4c5d6e"


def fed_columns(t: EventType) -> list[str]:
    """Every profile_activity column the entry names, repeats included."""
    out = [c.column for c in t.counts] + [s.column for s in t.sums]
    out += [*t.last_at, *t.first_at, *t.max_value]
    for g in t.latest:
        out += [g.at, g.seq, *(name for name, _ in g.values)]
    if t.distinct:
        out.append(t.distinct.column)
    return out


def parse(type_: str, value: Any = None, **props: Any) -> EventRow:
    item: dict[str, Any] = {"type": type_, "profile_id": PID}
    if value is not None:
        item["value"] = value
    if props:
        item["properties"] = props
    return parse_event(item, NOW)


def rejection(type_: str, value: Any = None, **props: Any) -> str:
    with pytest.raises(Rejected) as info:
        parse(type_, value, **props)
    return str(info.value)


# -- the table against the contract, the aggregates and the registry ---------------------------


def test_the_table_has_exactly_the_contract_types() -> None:
    assert len(CONTRACT_TYPES) == 23
    assert set(EVENT_TYPES) == CONTRACT_TYPES
    assert all(name == t.name for name, t in EVENT_TYPES.items())
    assert max(map(len, EVENT_TYPES)) <= Event.__table__.c.type.type.length  # VARCHAR(40)


def test_every_aggregate_column_is_fed_by_exactly_one_entry() -> None:
    named = [LAST_EVENT_AT, *(c for t in EVENT_TYPES.values() for c in fed_columns(t))]
    assert sorted(c for c in set(named) if named.count(c) > 1) == []
    keys_and_bookkeeping = {"application_id", "profile_id", "updated_at"}
    aggregates = {c.name for c in ProfileActivity.__table__.columns} - keys_and_bookkeeping
    assert set(named) - aggregates == set(), "named by the table, missing on ProfileActivity"
    assert aggregates - set(named) == set(), "on ProfileActivity, fed by no entry"


def test_windowed_keys_are_the_registrys_windowed_attributes() -> None:
    registry = {k for k, a in PLATFORM_ATTRIBUTES.items() if a.supports_window}
    assert set(windowed()) == registry
    assert registry == WINDOWED_KEYS


def test_a_windowed_attribute_reads_the_column_of_the_same_events() -> None:
    # Without a window the attribute reads the all-time column of the aggregate the table names,
    # in the category of the event type that feeds it.
    expressions = _platform_expressions(literal(NOW, DateTime(timezone=True)))
    for key, (t, aggregate) in windowed().items():
        sql = str(expressions[key]().compile(dialect=postgresql.dialect()))
        assert f"profile_activity.{aggregate.column}" in sql, (key, sql)
        assert PLATFORM_ATTRIBUTES[key].category == t.category, key


def test_categories_are_catalogue_categories() -> None:
    for t in EVENT_TYPES.values():
        assert t.category in CATEGORIES and t.category not in ("custom", "profile"), t.name


def test_filters_name_declared_values() -> None:
    # A Match filters on a property the type checks, with a value that property can take.
    matches: list[tuple[EventType, Match]] = [
        (t, c.when) for t in EVENT_TYPES.values() for c in t.counts if c.when
    ] + [(t, g.when) for t in EVENT_TYPES.values() for g in t.latest if g.when]
    assert matches
    for t, m in matches:
        choices = {p.name: p.choices for p in t.properties}.get(m.property, ())
        assert m.value in choices, (t.name, m)


def test_split_latest_groups_cover_every_value_of_one_always_present_property() -> None:
    for t in EVENT_TYPES.values():
        parts = [g for g in t.latest if g.when]
        if not parts:
            continue
        [prop] = {g.when.property for g in parts if g.when}
        [declared] = [p for p in t.properties if p.name == prop]
        assert {g.when.value for g in parts if g.when} == set(declared.choices), t.name
        # Present on every stored event: a default, or required (no default).
        assert declared.default is None or declared.default in declared.choices
        # The unsplit group takes its values from the parts, matched by source.
        for whole in (g for g in t.latest if g.when is None):
            for part in parts:
                assert {s for _, s in whole.values} <= {s for _, s in part.values}, t.name


def test_latest_values_come_from_a_value_or_a_declared_property() -> None:
    for t in EVENT_TYPES.values():
        for g in t.latest:
            for _, source in g.values:
                if source is None:
                    assert t.value is not None, t.name
                else:
                    assert source in {p.name for p in t.properties}, t.name
        for c in [*(s.column for s in t.sums), *t.max_value]:
            assert t.value is not None and t.value.kind != "string", (t.name, c)


# -- ingestion's checks, derived from the table -------------------------------------------------


def test_integer_value() -> None:
    assert parse("streak_activity", 0).value_num == 0
    assert parse("streak_activity", 30).value_num == 30
    assert rejection("streak_activity") == (
        "'value' is required for streak_activity (the streak length)."
    )
    for bad in (-1, 1.5, True, "3", [1]):
        assert rejection("streak_activity", bad) == (
            "'value' of streak_activity must be an integer >= 0."
        ), bad


def test_number_value() -> None:
    for good in (0, 2.5, 10**20):
        row = parse("reward_spent", good)
        assert (row.value_num, row.value_text) == (good, None)
    assert rejection("reward_earned") == "'value' is required for reward_earned (the amount)."
    for bad in (-0.5, float("inf"), float("nan"), True, "3"):
        assert rejection("reward_spent", bad) == "'value' of reward_spent must be a number >= 0."


def test_string_value() -> None:
    ok = {"rank": 1, "direction": "upgrade"}
    for good in ("G", "x" * 255):
        row = parse("tier_changed", good, **ok)
        assert (row.value_num, row.value_text) == (None, good)
    assert rejection("tier_changed", **ok) == (
        "'value' is required for tier_changed (the new tier's name)."
    )
    for bad in ("", "x" * 256, 3):
        assert rejection("tier_changed", bad, **ok) == (
            "'value' of tier_changed must be a string of 1-255 characters."
        ), bad


def test_choice_property_with_a_default() -> None:
    sent = {"note": "kept"}
    item = {"type": "streak_activity", "profile_id": PID, "value": 3, "properties": sent}
    assert parse_event(item, NOW).properties == {"note": "kept", "streak_type": "consecutive"}
    assert sent == {"note": "kept"}  # the default goes into a copy
    assert parse("streak_activity", 3, streak_type="periodic").properties == {
        "streak_type": "periodic"
    }
    for bad in ("weekly", None, 1):
        assert rejection("streak_activity", 3, streak_type=bad) == (
            "'properties.streak_type' must be 'consecutive' or 'periodic'."
        ), bad


def test_required_choice_and_integer_properties() -> None:
    for rank in (-3, 0, 2**63 - 1):
        assert parse("tier_changed", "Gold", rank=rank, direction="downgrade").properties == {
            "rank": rank,
            "direction": "downgrade",
        }
    assert rejection("tier_changed", "Gold", direction="upgrade") == (
        "'properties.rank' is required for tier_changed."
    )
    for bad in ("1", 1.5, True, 2**63):
        assert rejection("tier_changed", "Gold", rank=bad, direction="upgrade") == (
            "'properties.rank' must be an integer."
        ), bad
    assert rejection("tier_changed", "Gold", rank=1) == (
        "'properties.direction' is required for tier_changed."
    )
    assert rejection("tier_changed", "Gold", rank=1, direction="sideways") == (
        "'properties.direction' must be 'upgrade' or 'downgrade'."
    )


def test_id_property() -> None:
    assert parse("leaderboard_ranked", leaderboard_id="b").properties == {"leaderboard_id": "b"}
    assert parse("leaderboard_ranked", leaderboard_id=7).properties == {"leaderboard_id": "7"}
    assert rejection("leaderboard_ranked") == (
        "'properties.leaderboard_id' is required for leaderboard_ranked."
    )
    for bad in ("", "x" * 256, 1.5, True):
        assert rejection("leaderboard_ranked", leaderboard_id=bad) == (
            "'properties.leaderboard_id' must be a string of 1-255 characters."
        ), bad


def test_types_without_a_value_ignore_one_and_keep_properties() -> None:
    row = parse("comment_posted", 5, post_id="p-1", streak_type="weekly")
    assert (row.value_num, row.value_text) == (None, None)
    assert row.properties == {"post_id": "p-1", "streak_type": "weekly"}
    assert parse("streak_frozen").properties is None


# -- the batch parameter and the fold, in PostgreSQL ---------------------------------------------


async def test_a_batch_of_event_rows_binds_as_json_arrays(sessionmaker: AsyncSessionMaker) -> None:
    # EventRow is a NamedTuple: json encodes it as an array, unpacked by position in SQL.
    row = EventRow(PID, None, "reward_earned", "2025-01-02T03:04:05+00:00", 2.5, None,
                   {"k": "v"}, "e-1")  # fmt: skip
    rows = _batch_rows()
    async with sessionmaker() as session:
        got = (await session.execute(select(rows), {"rows": [row]})).one()
    assert str(got.profile_id) == PID and got.custom_id is None and got.ord == 0
    assert got.type == "reward_earned" and got.value_num == Decimal("2.5")
    assert got.occurred_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got.properties == {"k": "v"} and got.client_event_id == "e-1"


async def test_a_property_named_like_a_split_one_does_not_split_other_types(api: Api) -> None:
    # streak_type splits streak activity only; on a tier change it is metadata, and the latest
    # tier change of the batch is still the one that counts.
    pid = (await new_profile(api))["id"]
    await send(
        api,
        {"type": "tier_changed", "profile_id": pid, "value": "Bronze", "occurred_at": ago(1),
         "properties": {"rank": 1, "direction": "downgrade", "streak_type": "x"}},
        {"type": "tier_changed", "profile_id": pid, "value": "Silver", "occurred_at": ago(2),
         "properties": {"rank": 2, "direction": "upgrade"}},
        {"type": "streak_reset", "profile_id": pid, "occurred_at": ago(3),
         "properties": {"streak_type": "periodic"}},
        {"type": "streak_activity", "profile_id": pid, "value": 4, "occurred_at": ago(3)},
        {"type": "streak_reset", "profile_id": pid, "occurred_at": ago(4)},
    )  # fmt: skip
    got = (await values(api, pid))["values"]
    assert (got["status_tier"], got["current_tier_rank"]) == ("Bronze", 1)
    # The streak activity was accepted after the reset at the same time: it is the later one.
    assert got["current_streak_length"] == 4
