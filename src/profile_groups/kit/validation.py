"""Validation errors in the service's own words (docs/api.md, "Error messages").

pydantic's messages ("Field required", "Input should be a valid string", "Value error, ...",
"Extra inputs are not permitted") are rewritten here, once, for every 400 `invalid` and for the
per-item errors of batches: a sentence of ours per error type, and for an unknown field the field
that was probably meant ("did you mean") with the fields the object allows.
"""

import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from profile_groups.kit.suggest import allowed_list, closest

Loc = Sequence[str | int]

# One sentence per pydantic error type, formatted with the error's `ctx`.
_MESSAGES: dict[str, str] = {
    "missing": "This field is required.",
    "string_type": "Expected a string.",
    "string_sub_type": "Expected a string.",
    "bool_type": "Expected true or false.",
    "bool_parsing": "Expected true or false.",
    "int_type": "Expected an integer.",
    "int_parsing": "Expected an integer.",
    "int_from_float": "Expected an integer (a number without a fractional part).",
    "float_type": "Expected a number.",
    "float_parsing": "Expected a number.",
    "decimal_type": "Expected a number.",
    "decimal_parsing": "Expected a number.",
    "finite_number": "Expected a finite number.",
    "list_type": "Expected a list.",
    "tuple_type": "Expected a list.",
    "set_type": "Expected a list.",
    "dict_type": "Expected a JSON object.",
    "model_type": "Expected a JSON object.",
    "model_attributes_type": "Expected a JSON object.",
    "dataclass_type": "Expected a JSON object.",
    "uuid_type": "Expected a UUID (e.g. 174cc6dd-c1da-42d2-886e-c48b2bf803a8).",
    "uuid_parsing": "Expected a UUID (e.g. 174cc6dd-c1da-42d2-886e-c48b2bf803a8).",
    "uuid_version": "Expected a UUID of version {expected_version}.",
    "datetime_type": "Expected an ISO 8601 timestamp (e.g. 2025-04-28T12:16:49.670053Z).",
    "datetime_parsing": "Expected an ISO 8601 timestamp (e.g. 2025-04-28T12:16:49.670053Z).",
    "datetime_from_date_parsing": "Expected an ISO 8601 timestamp "
    "(e.g. 2025-04-28T12:16:49.670053Z).",
    "none_required": "Expected null.",
    "greater_than": "Must be greater than {gt}.",
    "greater_than_equal": "Must be {ge} or more.",
    "less_than": "Must be less than {lt}.",
    "less_than_equal": "Must be {le} or less.",
    "multiple_of": "Must be a multiple of {multiple_of}.",
    "string_pattern_mismatch": "Must match the pattern {pattern}.",
    "string_unicode": "Expected text (valid Unicode).",
    "json_type": "Expected JSON.",
    "json_invalid": "Malformed JSON: {error}.",
    "enum": "Expected {expected}.",
    "literal_error": "Expected {expected}.",
    "union_tag_invalid": "Expected {expected_tags} as {discriminator}.",
    "frozen_field": "This field cannot be changed.",
}


def _plural(count: Any, one: str) -> str:
    return f"{count} {one}" if count == 1 else f"{count} {one}s"


def _length_message(err: Mapping[str, Any]) -> str | None:
    ctx = err.get("ctx") or {}
    kind = err.get("type")
    if kind == "string_too_short":
        return f"Must be at least {_plural(ctx.get('min_length'), 'character')} long."
    if kind == "string_too_long":
        return f"Must be at most {_plural(ctx.get('max_length'), 'character')} long."
    got = f" (got {ctx['actual_length']})" if ctx.get("actual_length") is not None else ""
    if kind == "too_short":
        return f"Expected at least {_plural(ctx.get('min_length'), 'item')}{got}."
    if kind == "too_long":
        return f"Expected at most {_plural(ctx.get('max_length'), 'item')}{got}."
    return None


def _sentence(text: str) -> str:
    text = text.strip()
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else f"{text}."


def _choices_hint(err: Mapping[str, Any], message: str) -> str:
    """For an enum or literal: the expected value the input was probably meant as."""
    value = err.get("input")
    expected = str((err.get("ctx") or {}).get("expected", ""))
    if not isinstance(value, str):
        return message
    guess = closest(value, re.findall(r"'([^']*)'", expected))
    return f"{message[:-1]}; did you mean '{guess}'?" if guess else message


def message(err: Mapping[str, Any], allowed_fields: Sequence[str] | None = None) -> str:
    """The sentence for one pydantic error (`allowed_fields`: the fields of the object an
    unknown field was found in, for the did-you-mean)."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    loc = list(err.get("loc", ()))
    if kind == "missing" and loc == ["body"]:
        return "A JSON request body is required."
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        return unknown_field(name, allowed_fields or ())
    if kind in ("value_error", "assertion_error") and ctx.get("error") is not None:
        return _sentence(str(ctx["error"]))
    length = _length_message(err)
    if length is not None:
        return length
    template = _MESSAGES.get(kind)
    if template is not None:
        try:
            text = template.format(**ctx)
        except (KeyError, IndexError):
            text = template.split("{")[0].rstrip(" (") + "."
        return _choices_hint(err, text) if kind in ("enum", "literal_error") else text
    # A type without a sentence of ours: pydantic's, without its library phrasing.
    text = str(err.get("msg", "Invalid value."))
    text = text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    text = re.sub(r"^Input should be ", "Expected ", text)
    text = re.sub(r"^Input ", "The value ", text)
    return _sentence(text)


def unknown_field(name: str, allowed: Iterable[str]) -> str:
    """`Unknown field 'x'; did you mean 'y'?`, else the fields the object allows."""
    names = list(allowed)
    guess = closest(name, names)
    if guess is not None:
        return f"Unknown field '{name}'; did you mean '{guess}'?"
    listed = allowed_list(names)
    return f"Unknown field '{name}'. Allowed: {listed}." if listed else f"Unknown field '{name}'."


def _unwrap(tp: Any) -> Any:
    """The type inside `Annotated[...]` and `X | None`, or None when it is a union of several."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(tp) if a is not type(None)]
            if len(options) != 1:
                return None
            tp = options[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def fields_at(model: Any, path: Loc) -> list[str] | None:
    """The field names a client may send in the object at `path` inside `model`, if `path`
    leads to a model (through fields, list items and `X | None`)."""
    tp = model
    for part in path:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = get_args(tp)
            if get_origin(tp) not in (list, tuple) or not args:
                return None
            tp = args[0]
        elif _is_model(tp):
            fields = tp.model_fields
            field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
            if field is None:
                return None
            tp = field.annotation
        else:
            return None
    tp = _unwrap(tp)
    if not _is_model(tp):
        return None
    return [f.alias or name for name, f in tp.model_fields.items() if not f.exclude]


def items(
    errors: Iterable[Mapping[str, Any]], model: Any = None, prefix: Loc = ()
) -> list[dict[str, Any]]:
    """The `errors[]` of a 400: `{"loc", "msg", "type"}` in our words. `model` is the model
    that locations starting with `prefix` (`("body",)` for a request body) point into."""
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        allowed = None
        if (
            err.get("type") == "extra_forbidden"
            and model is not None
            and len(loc) > len(prefix)
            and loc[: len(prefix)] == list(prefix)
        ):
            allowed = fields_at(model, loc[len(prefix) : -1])
        out.append({"loc": loc, "msg": message(err, allowed), "type": str(err.get("type"))})
    return out
