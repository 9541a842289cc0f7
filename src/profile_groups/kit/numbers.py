"""What a JSON number in a request may be (docs/api.md): finite, and within what the database
compares it as."""

import math
from typing import Any

# bigint, for values stored or summed as integers.
BIGINT_MAX = 2**63 - 1


def is_finite_number(value: Any) -> bool:
    """A JSON number (not a boolean) that is finite as a double.

    An integer past the double range (about 1.8e308) is not one: `math.isfinite` raises
    OverflowError on it, and PostgreSQL could not compare it as a double either.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_bigint(value: Any) -> bool:
    """A JSON integer (not a boolean) that fits a bigint."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= BIGINT_MAX
