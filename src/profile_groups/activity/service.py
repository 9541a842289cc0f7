"""Rules of event ingestion (docs/activity.md): per-item checks, profiles, idempotency."""

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.activity.event_types import EVENT_TYPES, EventType, Property, ValueKind
from profile_groups.activity.repository import ActivityRepository, EventRow, InsertResult
from profile_groups.activity.schemas import EventBatchResult
from profile_groups.kit.numbers import is_bigint, is_finite_number
from profile_groups.kit.retry import retry_on_race
from profile_groups.kit.schemas import ItemError
from profile_groups.kit.suggest import unknown_name
from profile_groups.kit.timestamps import parse_timestamp
from profile_groups.kit.validation import unknown_field
from profile_groups.models import Application
from profile_groups.ops.metrics import count_events

FIELDS = frozenset({"id", "type", "profile_id", "custom_id", "occurred_at", "value", "properties"})
MAX_FUTURE = timedelta(minutes=5)
MAX_ID = 255
# The spellings nearly every client sends, recognised by a regex so the common case skips the
# costliest item checks: a timestamp with an explicit offset (passed to PostgreSQL as sent) and a
# canonical UUID (no UUID() round trip). Other spellings are still accepted, and rewritten.
_PLAIN_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})\Z", re.ASCII
)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class Rejected(Exception):
    """One item is refused; the message is the `detail` the client sees."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # Finite as a double: an integer past that range is this item's rejection, not a 500.
    return is_finite_number(value)


def _string(item: dict[str, Any], key: str, limit: int = MAX_ID) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise Rejected(f"'{key}' must be a non-empty string.")
    if len(value) > limit:
        raise Rejected(f"'{key}' must be at most {limit} characters.")
    return value


def _uuid_text(value: Any) -> str:
    if isinstance(value, str) and _CANONICAL_UUID.match(value):
        return value
    try:
        return str(UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise Rejected("'profile_id' must be a UUID.") from None


def _occurred_at(value: Any, now: datetime) -> str:
    """The event's time as ISO 8601 text with its offset (the statement casts it)."""
    if value is None:
        return now.isoformat()
    if not isinstance(value, str):
        raise Rejected("'occurred_at' must be an ISO 8601 timestamp.")
    parsed = parse_timestamp(value)
    if parsed is None:
        raise Rejected("'occurred_at' must be an ISO 8601 timestamp.")
    if parsed > now + MAX_FUTURE:
        raise Rejected("'occurred_at' is more than 5 minutes in the future.")
    # The usual spelling means the same instant to PostgreSQL; any other one Python reads (naive,
    # basic format, week dates, offsets with seconds) is rewritten in UTC.
    if _PLAIN_TIMESTAMP.match(value):
        return value
    return parsed.isoformat()


def _properties(item: dict[str, Any]) -> dict[str, Any]:
    props = item.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise Rejected("'properties' must be an object.")
    return props


# What each kind of `value` must be (activity/event_types.py), and its phrase in a rejection.
_VALUES: dict[ValueKind, tuple[Callable[[Any], bool], str]] = {
    # Both kinds are finite as a double (kit/numbers.py): an integer past that range is refused.
    "integer": (lambda v: _is_int(v) and is_finite_number(v) and v >= 0, "an integer >= 0"),
    "number": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "string": (
        lambda v: isinstance(v, str) and 0 < len(v) <= MAX_ID,
        f"a string of 1-{MAX_ID} characters",
    ),
}


def _property(spec: EventType, prop: Property, props: dict[str, Any]) -> Any:
    """The property's value as stored (default applied, an integer id as text)."""
    # A default stands for an absent property only: an explicit null is ill-typed.
    value: Any = props.get(prop.name, prop.default)
    key = f"'properties.{prop.name}'"
    if value is None and prop.default is None:
        raise Rejected(f"{key} is required for {spec.name}.")
    if prop.kind == "choice":
        if value not in prop.choices:
            raise Rejected(f"{key} must be {' or '.join(map(repr, prop.choices))}.")
    elif prop.kind == "integer":
        if not is_bigint(value):
            raise Rejected(f"{key} must be an integer.")
    else:  # "id"
        if _is_int(value):
            value = str(value)
        if not isinstance(value, str) or not value or len(value) > MAX_ID:
            raise Rejected(f"{key} must be a string of 1-{MAX_ID} characters.")
    return value


def _typed_fields(
    spec: EventType, item: dict[str, Any], props: dict[str, Any]
) -> tuple[int | float | None, str | None, dict[str, Any]]:
    """(value_num, value_text, properties) of one event, checked against its type's entry."""
    value_num: int | float | None = None
    value_text: str | None = None
    if spec.value is not None:
        value = item.get("value")
        if value is None:
            raise Rejected(f"'value' is required for {spec.name} ({spec.value.meaning}).")
        valid, expected = _VALUES[spec.value.kind]
        if not valid(value):
            raise Rejected(f"'value' of {spec.name} must be {expected}.")
        if spec.value.kind == "string":
            value_text = value
        else:
            value_num = value
    for prop in spec.properties:
        stored = _property(spec, prop, props)
        if stored is not props.get(prop.name):  # a default or a rewritten value
            props = {**props, prop.name: stored}
    return value_num, value_text, props


def parse_event(item: Any, now: datetime) -> EventRow:
    """Check one item of a batch (docs/activity.md); raises Rejected with the reason."""
    if not isinstance(item, dict):
        raise Rejected("Event must be a JSON object.")
    if not FIELDS.issuperset(item):
        raise Rejected(unknown_field(sorted(set(item) - FIELDS)[0], sorted(FIELDS)))
    type_ = item.get("type")
    if type_ is None:
        raise Rejected("'type' is required.")
    spec = EVENT_TYPES.get(type_) if isinstance(type_, str) else None
    if spec is None:
        if not isinstance(type_, str):
            raise Rejected(f"Unknown event type {type_!r}; 'type' is a string.")
        raise Rejected(
            unknown_name(
                "event type", type_, EVENT_TYPES, "the `type` enum of `Event` in /openapi.json"
            )
        )
    raw_profile_id = item.get("profile_id")
    custom_id = _string(item, "custom_id")
    if (raw_profile_id is None) == (custom_id is None):
        raise Rejected("Exactly one of 'profile_id' or 'custom_id' is required.")
    profile_id: str | None = None
    if raw_profile_id is not None:
        profile_id = _uuid_text(raw_profile_id)
    client_id = _string(item, "id")
    occurred_at = _occurred_at(item.get("occurred_at"), now)
    if spec.value is None and not spec.properties:
        # A stray `value` is ignored; properties are kept as metadata.
        props = _properties(item)
        value_num, value_text = None, None
    else:
        value_num, value_text, props = _typed_fields(spec, item, _properties(item))
    return EventRow(
        profile_id, custom_id, type_, occurred_at, value_num, value_text, props or None, client_id
    )


async def ingest(session: AsyncSession, app: Application, items: Sequence[Any]) -> EventBatchResult:
    """Store a batch: the good items are kept, bad ones rejected with their index.

    The events, the profile lookups and every aggregate they touch are one statement in the
    request's transaction, so a rule never sees an event without its effect on the attributes.
    """
    now = datetime.now(UTC)
    rejected: list[ItemError] = []
    rows: list[EventRow] = []
    positions: list[int] = []  # batch row -> index in the request
    seen_ids: set[str] = set()
    duplicates = 0
    for index, item in enumerate(items):
        try:
            row = parse_event(item, now)
        except Rejected as exc:
            rejected.append(ItemError(index=index, detail=str(exc)))
            continue
        client_id = row.client_event_id
        if client_id is not None:
            # A repeated id inside one batch is a retry too: the first one counts.
            if client_id in seen_ids:
                duplicates += 1
                continue
            seen_ids.add(client_id)
        positions.append(index)
        rows.append(row)
    if not positions:
        count_events(session, accepted=0, duplicates=duplicates, rejected=len(rejected))
        return EventBatchResult(accepted=0, duplicates=duplicates, rejected=rejected)

    repo = ActivityRepository(session)

    async def insert() -> InsertResult:
        # A savepoint keeps the request's transaction usable if the batch loses a race (a
        # deadlock with a concurrent batch, a profile deleted meanwhile).
        async with session.begin_nested():
            return await repo.insert_events(app.id, rows)

    result = await retry_on_race(insert)
    unknown = result.unknown_profiles
    rejected += [ItemError(index=positions[i], detail="Unknown profile.") for i in unknown]
    rejected.sort(key=lambda r: r.index)
    duplicates += len(positions) - len(unknown) - result.inserted
    count_events(session, accepted=result.inserted, duplicates=duplicates, rejected=len(rejected))
    return EventBatchResult(accepted=result.inserted, duplicates=duplicates, rejected=rejected)


async def prune_events(session: AsyncSession, retention_days: int, batch_size: int) -> int:
    """Delete one batch of raw events older than the retention period; aggregates stay."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    return await ActivityRepository(session).prune(cutoff, batch_size)
