"""What the stores can keep, checked at the door: one validator for every entry point.

PostgreSQL JSONB and the orjson serialiser refuse some values that JSON parsers and form
decoders let through; accepted, they fail a later write (and, in a batch, every write
beside them).  So anything a client sends is checked before it is accepted and refused with
a 422 that names the field and says what to change:

* U+0000 (NUL) anywhere, in keys or values: PostgreSQL text and JSONB cannot hold it;
* unpaired UTF-16 surrogates (``\\ud800`` alone): not Unicode, not encodable as UTF-8;
* nesting deeper than ``MAX_JSON_DEPTH``: orjson writes at most 254 levels, and nothing
  this service stores needs more than a handful;
* non-finite numbers and integers outside 64 bits: JSON cannot carry the former, orjson
  and the metadata columns cannot carry the latter.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from typing import Any, TypeVar

from council_app.workflow.errors import WorkflowError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_JSON_DEPTH = 64
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


class Unstorable(WorkflowError):
    """A value the stores cannot keep (422); ``extra['field']`` names where it is."""

    status_code = 422
    code = "unstorable_input"


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored, or None."""
    if "\x00" in value:
        return "contains a NUL character (U+0000); remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff); send valid Unicode"
    return None


def check_text(value: str, field: str) -> str:
    """``value`` if it can be stored; else ``Unstorable`` naming ``field``."""
    problem = text_problem(value)
    if problem:
        raise Unstorable(f"'{field}' {problem}", field=field)
    return value


def check_json(value: Any, field: str = "body") -> Any:
    """``value`` if every key and value in it can be stored; else ``Unstorable`` with the
    path of the first offender (``body.agents[2].persona``)."""
    problem = _problem(value, field, 0)
    if problem:
        where, what = problem
        where = where if len(where) <= 120 else where[:117] + "..."
        raise Unstorable(f"'{where}' {what}", field=where)
    return value


def check_texts(values: Iterable[tuple[str, str]]) -> None:
    """(field, text) pairs: form fields, query parameters, file names."""
    for field, value in values:
        check_text(value, field)


def _problem(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    if depth > MAX_JSON_DEPTH:
        return path, f"is nested deeper than {MAX_JSON_DEPTH} levels; flatten it"
    if isinstance(value, str):
        problem = text_problem(value)
        return (path, problem) if problem else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            return path, "is an integer outside the 64-bit range; send it as a string"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, "has a key that is not a string"
            key_problem = text_problem(key)
            if key_problem:
                return f"{path} key {key[:40]!r}", key_problem
            found = _problem(item, f"{path}.{key}", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _problem(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return None
    return path, f"has a value of type {type(value).__name__}, which JSON cannot carry"


def scrub(value: Any) -> Any:
    """``value`` with what cannot be stored replaced by U+FFFD (NUL, unpaired surrogates),
    for text that did not come from a client and must not be lost for a character (a paid
    LLM answer).  Returns ``value`` itself when nothing needed replacing."""
    if isinstance(value, str):
        if text_problem(value) is None:
            return value
        cleaned = value.replace("\x00", "\ufffd")
        return cleaned.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        items = {scrub(k): scrub(v) for k, v in value.items()}
        same = all(a is b for a, b in zip(value.values(), items.values(), strict=True))
        return value if same and list(items) == list(value) else items
    if isinstance(value, list):
        cleaned_list = [scrub(v) for v in value]
        return (
            value if all(a is b for a, b in zip(value, cleaned_list, strict=True)) else cleaned_list
        )
    return value


def storable_completion(completion: T) -> T:
    """An LLM completion whose text, tool calls and citations the stores can keep (see
    ``scrub``); the same object when they already can."""
    fields = {name: getattr(completion, name) for name in ("text", "tools_used", "citations")}
    cleaned = {name: scrub(v) for name, v in fields.items()}
    if all(cleaned[name] is fields[name] for name in fields):
        return completion
    log.warning("An LLM answer held characters the database cannot store; replaced by U+FFFD")
    return dataclasses.replace(completion, **cleaned)  # type: ignore[type-var]
