"""Rules of event ingestion (SPEC §5.1, §5.2): per-item checks, profiles, idempotency."""

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.activity.repository import ActivityRepository, EventRow
from profile_groups.activity.schemas import EventBatchResult, Rejection
from profile_groups.kit.errors import RACE_SQLSTATES, sqlstate
from profile_groups.models import Application

# §5.2: the event types, and what each needs.
PLAIN_TYPES = frozenset(
    {
        "comment_posted",
        "comment_replied",
        "comment_reported",
        "reaction_added",
        "poll_answered",
        "social_connection_added",
        "social_connection_removed",
        "quest_started",
        "quest_completed",
        "quest_failed",
        "quest_reward_earned",
        "quest_reward_claimed",
        "streak_reset",
        "streak_milestone_reached",
        "streak_frozen",
        "streak_unfrozen",
        "reward_action_triggered",
        "leaderboard_viewed",
    }
)
EVENT_TYPES = PLAIN_TYPES | {
    "streak_activity",
    "tier_changed",
    "reward_earned",
    "reward_spent",
    "leaderboard_ranked",
}
STREAK_TYPES = ("consecutive", "periodic")
TIER_DIRECTIONS = ("upgrade", "downgrade")
FIELDS = frozenset({"id", "type", "profile_id", "custom_id", "occurred_at", "value", "properties"})
MAX_FUTURE = timedelta(minutes=5)
MAX_ID = 255
_BIGINT = 2**63 - 1
# The spellings nearly every client sends, recognised by a regex so the common case skips the
# costliest item checks: a timestamp with an explicit offset (passed to PostgreSQL as sent) and a
# canonical UUID (no UUID() round trip). Other spellings are still accepted, and rewritten.
_PLAIN_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})\Z", re.ASCII
)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
# Retries of a batch that lost a race (deadlock with a concurrent batch, profile deleted meanwhile).
_ATTEMPTS = 3


class Rejected(Exception):
    """One item is refused; the message is the `detail` the client sees."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


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
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected("'occurred_at' must be an ISO 8601 timestamp.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # input timestamps without a zone are UTC (SPEC §1)
    if parsed > now + MAX_FUTURE:
        raise Rejected("'occurred_at' is more than 5 minutes in the future.")
    # The usual spelling means the same instant to PostgreSQL; any other one Python reads (naive,
    # basic format, week dates, offsets with seconds) is rewritten in UTC.
    if _PLAIN_TIMESTAMP.match(value):
        return value
    return parsed.astimezone(UTC).isoformat()


def _properties(item: dict[str, Any]) -> dict[str, Any]:
    props = item.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise Rejected("'properties' must be an object.")
    return props


def _typed_fields(
    type_: str, item: dict[str, Any], props: dict[str, Any]
) -> tuple[int | float | None, str | None, dict[str, Any]]:
    """(value_num, value_text, properties) of one event, checked against §5.2."""
    value = item.get("value")
    if type_ == "streak_activity":
        if value is None:
            raise Rejected("'value' is required for streak_activity (the streak length).")
        if not _is_int(value) or value < 0:
            raise Rejected("'value' of streak_activity must be an integer >= 0.")
        streak_type = props.get("streak_type", "consecutive")
        if streak_type not in STREAK_TYPES:
            raise Rejected("'properties.streak_type' must be 'consecutive' or 'periodic'.")
        return value, None, {**props, "streak_type": streak_type}
    if type_ == "tier_changed":
        if value is None:
            raise Rejected("'value' is required for tier_changed (the new tier's name).")
        if not isinstance(value, str) or not value or len(value) > MAX_ID:
            raise Rejected(f"'value' of tier_changed must be a string of 1-{MAX_ID} characters.")
        rank = props.get("rank")
        if rank is None:
            raise Rejected("'properties.rank' is required for tier_changed.")
        if not _is_int(rank) or abs(rank) > _BIGINT:
            raise Rejected("'properties.rank' must be an integer.")
        direction = props.get("direction")
        if direction is None:
            raise Rejected("'properties.direction' is required for tier_changed.")
        if direction not in TIER_DIRECTIONS:
            raise Rejected("'properties.direction' must be 'upgrade' or 'downgrade'.")
        return None, value, props
    if type_ in ("reward_earned", "reward_spent"):
        if value is None:
            raise Rejected(f"'value' is required for {type_} (the amount).")
        if not _is_number(value) or value < 0:
            raise Rejected(f"'value' of {type_} must be a number >= 0.")
        return value, None, props
    if type_ == "leaderboard_ranked":
        board = props.get("leaderboard_id")
        if board is None:
            raise Rejected("'properties.leaderboard_id' is required for leaderboard_ranked.")
        if _is_int(board):
            board = str(board)
        if not isinstance(board, str) or not board or len(board) > MAX_ID:
            raise Rejected(
                f"'properties.leaderboard_id' must be a string of 1-{MAX_ID} characters."
            )
        return None, None, {**props, "leaderboard_id": board}
    # Types without a value: a stray `value` is ignored, properties are kept as metadata.
    return None, None, props


def parse_event(item: Any, now: datetime) -> EventRow:
    """Check one item of a batch against §5.1/§5.2; raises Rejected with the reason."""
    if not isinstance(item, dict):
        raise Rejected("Event must be a JSON object.")
    if not FIELDS.issuperset(item):
        raise Rejected(f"Unknown field '{sorted(set(item) - FIELDS)[0]}'.")
    type_ = item.get("type")
    if type_ is None:
        raise Rejected("'type' is required.")
    if not isinstance(type_, str) or type_ not in EVENT_TYPES:
        raise Rejected(f"Unknown event type {type_!r}.")
    raw_profile_id = item.get("profile_id")
    custom_id = _string(item, "custom_id")
    if (raw_profile_id is None) == (custom_id is None):
        raise Rejected("Exactly one of 'profile_id' or 'custom_id' is required.")
    profile_id: str | None = None
    if raw_profile_id is not None:
        profile_id = _uuid_text(raw_profile_id)
    client_id = _string(item, "id")
    occurred_at = _occurred_at(item.get("occurred_at"), now)
    if type_ in PLAIN_TYPES:
        # A stray `value` is ignored; properties are kept as metadata.
        props = _properties(item)
        value_num, value_text = None, None
    else:
        value_num, value_text, props = _typed_fields(type_, item, _properties(item))
    return (
        profile_id,
        custom_id,
        type_,
        occurred_at,
        value_num,
        value_text,
        props or None,
        client_id,
    )


async def ingest(session: AsyncSession, app: Application, items: Sequence[Any]) -> EventBatchResult:
    """Store a batch: the good items are kept, bad ones rejected with their index (SPEC §5.1).

    The events, the profile lookups and every aggregate they touch are one statement in the
    request's transaction, so a rule never sees an event without its effect on the attributes.
    """
    now = datetime.now(UTC)
    rejected: list[Rejection] = []
    rows: list[EventRow] = []
    positions: list[int] = []  # batch row -> index in the request
    seen_ids: set[str] = set()
    duplicates = 0
    for index, item in enumerate(items):
        try:
            row = parse_event(item, now)
        except Rejected as exc:
            rejected.append(Rejection(index=index, detail=str(exc)))
            continue
        client_id = row[7]
        if client_id is not None:
            # A repeated id inside one batch is a retry too: the first one counts.
            if client_id in seen_ids:
                duplicates += 1
                continue
            seen_ids.add(client_id)
        positions.append(index)
        rows.append(row)
    if not positions:
        return EventBatchResult(accepted=0, duplicates=duplicates, rejected=rejected)

    repo = ActivityRepository(session)
    for attempt in range(_ATTEMPTS):
        try:
            # A savepoint keeps the request's transaction usable if the batch loses a race.
            async with session.begin_nested():
                result = await repo.insert_events(app.id, rows)
            break
        except DBAPIError as exc:
            if sqlstate(exc) not in RACE_SQLSTATES or attempt == _ATTEMPTS - 1:
                raise
    unknown = result.unknown_profiles
    rejected += [Rejection(index=positions[i], detail="Unknown profile.") for i in unknown]
    rejected.sort(key=lambda r: r.index)
    return EventBatchResult(
        accepted=result.inserted,
        duplicates=duplicates + len(positions) - len(unknown) - result.inserted,
        rejected=rejected,
    )


async def prune_events(session: AsyncSession, retention_days: int, batch_size: int) -> int:
    """Delete one batch of raw events older than the retention period; aggregates stay."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    return await ActivityRepository(session).prune(cutoff, batch_size)
