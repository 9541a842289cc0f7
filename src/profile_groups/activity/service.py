"""Rules of event ingestion (SPEC §5.1, §5.2): per-item checks, profiles, idempotency."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.activity.repository import ActivityRepository, NewEvent
from profile_groups.activity.schemas import EventBatchResult, Rejection
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
# Retries of a batch that lost a race (deadlock with a concurrent batch, profile deleted meanwhile).
_ATTEMPTS = 3
_RETRYABLE = {"40P01", "40001", "23503"}


class Rejected(Exception):
    """One item is refused; the message is the `detail` the client sees."""


@dataclass(frozen=True)
class ParsedEvent:
    index: int
    profile_id: UUID | None
    custom_id: str | None
    client_id: str | None
    event: NewEvent


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


def _occurred_at(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise Rejected("'occurred_at' must be an ISO 8601 timestamp.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected("'occurred_at' must be an ISO 8601 timestamp.") from None
    # Input timestamps without a zone are UTC (SPEC §1).
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if parsed > now + MAX_FUTURE:
        raise Rejected("'occurred_at' is more than 5 minutes in the future.")
    return parsed


def _properties(item: dict[str, Any]) -> dict[str, Any]:
    props = item.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise Rejected("'properties' must be an object.")
    return props


def _typed_fields(
    type_: str, item: dict[str, Any], props: dict[str, Any]
) -> tuple[Decimal | None, str | None, dict[str, Any]]:
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
        return Decimal(value), None, {**props, "streak_type": streak_type}
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
        return Decimal(str(value)), None, props
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


def parse_event(index: int, item: Any, now: datetime) -> ParsedEvent:
    """Check one item of a batch; raises Rejected with the reason."""
    if not isinstance(item, dict):
        raise Rejected("Event must be a JSON object.")
    unknown = sorted(set(item) - FIELDS)
    if unknown:
        raise Rejected(f"Unknown field '{unknown[0]}'.")
    type_ = item.get("type")
    if type_ is None:
        raise Rejected("'type' is required.")
    if not isinstance(type_, str) or type_ not in EVENT_TYPES:
        raise Rejected(f"Unknown event type {type_!r}.")
    raw_profile_id = item.get("profile_id")
    custom_id = _string(item, "custom_id")
    if (raw_profile_id is None) == (custom_id is None):
        raise Rejected("Exactly one of 'profile_id' or 'custom_id' is required.")
    profile_id: UUID | None = None
    if raw_profile_id is not None:
        try:
            profile_id = UUID(str(raw_profile_id)) if isinstance(raw_profile_id, str) else None
        except ValueError:
            profile_id = None
        if profile_id is None:
            raise Rejected("'profile_id' must be a UUID.")
    client_id = _string(item, "id")
    occurred_at = _occurred_at(item.get("occurred_at"), now)
    value_num, value_text, props = _typed_fields(type_, item, _properties(item))
    return ParsedEvent(
        index=index,
        profile_id=profile_id,
        custom_id=custom_id,
        client_id=client_id,
        event=NewEvent(
            profile_id=profile_id or UUID(int=0),
            type=type_,
            occurred_at=occurred_at,
            value_num=value_num,
            value_text=value_text,
            properties=props or None,
            client_event_id=client_id,
        ),
    )


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(
        getattr(exc.orig, "__cause__", None), "sqlstate", None
    )


async def ingest(session: AsyncSession, app: Application, items: Sequence[Any]) -> EventBatchResult:
    """Store a batch: the good items are kept, bad ones rejected with their index (SPEC §5.1).

    The events and every aggregate they touch are written by one statement in the request's
    transaction, so a rule never sees an event without its effect on the attributes.
    """
    now = datetime.now(UTC)
    rejected: list[Rejection] = []
    parsed: list[ParsedEvent] = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse_event(index, item, now))
        except Rejected as exc:
            rejected.append(Rejection(index=index, detail=str(exc)))

    repo = ActivityRepository(session)
    for attempt in range(_ATTEMPTS):
        try:
            # A savepoint keeps the request's transaction usable if the batch loses a race.
            async with session.begin_nested():
                return await _store(repo, app.id, parsed, rejected)
        except DBAPIError as exc:
            if _sqlstate(exc) not in _RETRYABLE or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _store(
    repo: ActivityRepository,
    application_id: UUID,
    parsed: list[ParsedEvent],
    rejected: list[Rejection],
) -> EventBatchResult:
    rejected = list(rejected)
    ids = list({p.profile_id for p in parsed if p.profile_id is not None})
    custom_ids = list({p.custom_id for p in parsed if p.custom_id is not None})
    by_id, by_custom_id = await repo.resolve_profiles(application_id, ids, custom_ids)

    to_insert: list[NewEvent] = []
    seen_client_ids: set[str] = set()
    in_batch_duplicates = 0
    for item in parsed:
        if item.profile_id is not None:
            profile_id = item.profile_id if item.profile_id in by_id else None
        else:
            profile_id = by_custom_id.get(item.custom_id or "")
        if profile_id is None:
            rejected.append(Rejection(index=item.index, detail="Unknown profile."))
            continue
        if item.client_id is not None:
            # A repeated id inside one batch is a retry too: the first one counts.
            if item.client_id in seen_client_ids:
                in_batch_duplicates += 1
                continue
            seen_client_ids.add(item.client_id)
        to_insert.append(
            NewEvent(
                profile_id=profile_id,
                type=item.event.type,
                occurred_at=item.event.occurred_at,
                value_num=item.event.value_num,
                value_text=item.event.value_text,
                properties=item.event.properties,
                client_event_id=item.event.client_event_id,
            )
        )

    accepted = await repo.insert_events(application_id, to_insert) if to_insert else 0
    rejected.sort(key=lambda r: r.index)
    return EventBatchResult(
        accepted=accepted,
        duplicates=in_batch_duplicates + len(to_insert) - accepted,
        rejected=rejected,
    )


async def prune_events(session: AsyncSession, retention_days: int, batch_size: int) -> int:
    """Delete one batch of raw events older than the retention period; aggregates stay."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    return await ActivityRepository(session).prune(cutoff, batch_size)
