"""Suggestions ("did you mean") for names a client got wrong (docs/api.md, "Did you mean"):
body fields, rule tree keys and attributes, conditions, event types. One matcher, so every hint
reads alike."""

import difflib
from collections.abc import Iterable

# Lists of allowed values up to this length are spelled out in the message; a longer one (the
# attribute catalogue) is pointed to instead.
SHORT_LIST = 12


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option `word` was most probably meant as, if one is close enough."""
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def allowed_list(options: Iterable[str]) -> str | None:
    """The options quoted and comma-separated when the list is short, else None."""
    names = list(options)
    if not names or len(names) > SHORT_LIST:
        return None
    return ", ".join(f"'{name}'" for name in names)


def unknown_name(kind: str, word: str, options: Iterable[str], listed_in: str = "") -> str:
    """`Unknown {kind} 'x'; did you mean 'y'? Allowed: 'a', 'b'.`: the guess when one is close,
    the allowed values when they are few, else (without a guess) where they are listed."""
    names = list(options)
    sentence = f"Unknown {kind} '{word}'"
    guess = closest(word, names)
    sentence += f"; did you mean '{guess}'?" if guess is not None else "."
    allowed = allowed_list(names)
    if allowed is not None:
        sentence += f" Allowed: {allowed}."
    elif listed_in and guess is None:
        sentence += f" The {len(names)} allowed values are listed in {listed_in}."
    return sentence
