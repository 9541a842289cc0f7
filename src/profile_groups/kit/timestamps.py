"""The one reader and writer of timestamps (docs/api.md: ISO 8601, UTC, microseconds, `Z`)."""

from datetime import UTC, datetime
from typing import Any


def as_utc(value: datetime) -> datetime:
    """Input timestamps without a zone are UTC.

    Raises OverflowError for an aware time whose UTC instant is outside years 1-9999 (e.g.
    0001-01-01T00:00:00+14:00); `parse_timestamp` turns that into "not a timestamp"."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_timestamp(raw: Any) -> datetime | None:
    """An ISO 8601 string as an aware UTC datetime, or None when it is not one."""
    if not isinstance(raw, str):
        return None
    try:
        # Python 3.11 reads `Z`, offsets, fractions, basic format and date-only forms.
        return as_utc(datetime.fromisoformat(raw.strip()))
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        return None


def format_timestamp(value: datetime) -> str:
    """ISO 8601 UTC with microseconds and `Z`, e.g. 2025-04-28T12:16:49.670053Z.

    Zero-padded to four year digits, so the text of two timestamps sorts as they do (stored
    datetime custom attributes rely on it and cast back with ::timestamptz).
    """
    if value.tzinfo is not UTC:
        value = as_utc(value)
    # isoformat() is several times faster than strftime on large pages (and pads years < 1000,
    # which %Y does not); it drops zero microseconds.
    text = value.isoformat()[:-6]  # without "+00:00"
    return text + ("Z" if value.microsecond else ".000000Z")
