"""Validation at the door: every request's query, form fields, file names and JSON body
are checked with ``workflow.storable`` before a view runs, so nothing the stores cannot
keep is ever acknowledged (422 naming the field instead of a 202 that poisons a flush)."""

from __future__ import annotations

import orjson
from flask import request

from council_app.workflow.storable import Unstorable, check_json, check_text, check_texts

_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def check_request() -> None:
    """``before_request`` hook of the API blueprints."""
    has_body = request.method in ("POST", "PUT", "PATCH")
    if not has_body and not request.environ.get("QUERY_STRING"):
        return  # a poll (GET, no query): nothing to check, nothing parsed
    for key, values in request.args.lists():
        check_text(key, "query parameter name")
        check_texts((f"query parameter '{key[:40]}'", v) for v in values)
    if not has_body:
        return
    if request.mimetype in _FORMS:
        for key, values in request.form.lists():
            check_text(key, "form field name")
            check_texts((key[:40], v) for v in values)
        for key, files in request.files.lists():
            check_texts(
                (f"{key[:40]}[{i}] file name", f.filename or "") for i, f in enumerate(files)
            )
        return
    if not request.content_length and not request.get_data(cache=True):
        return
    body = request.get_json(silent=True, force=True)  # cached: the view reads the same
    if body is not None:
        check_json(body)
        return
    try:
        orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError as e:
        if "surrogate" in str(e):
            raise Unstorable(
                f"'body' contains an unpaired UTF-16 surrogate escape ({e}); send valid Unicode",
                field="body",
            ) from None
    # Anything else that is not JSON is the view's to refuse (400, in its own words).
