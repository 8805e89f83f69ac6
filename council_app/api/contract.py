"""The API contract: spectree validates requests with the models of ``api/schemas.py`` and
writes /api/openapi.json from the same models, so what is checked and what is documented
cannot drift.

spectree (rather than flask-openapi3 or APIFlask) because it decorates the views of the
existing blueprints without replacing the Flask app or blueprint classes.  Three things
are ours: refusals keep the API's error shape (``{error, message, detail}`` with per-field
``errors``; query parameters and forms 400, a council 400 when it is not one at all and 422
when it breaks a rule, as before), responses are described but not
re-validated at run time (the summary is streamed as raw JSON text), and routes that
answer something other than JSON (pages, files, metrics) carry their own fragment.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from spectree import Response as Responses
from spectree import SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin

from council_app.api.auth import current_user
from council_app.api.errors import ApiError
from council_app.api.schemas import Error, OpenApiDocument
from council_app.workflow.council_input import MAX_AGENTS, field_errors, refuse

F = TypeVar("F", bound=Callable[..., Any])

API_VERSION = "1.0.0"

ERROR_DESCRIPTIONS = {
    400: "Bad request: a parameter or the body is invalid, or a step's prerequisite is missing",
    401: "Unauthorized: no identity, or an invalid token or untrusted gateway header",
    404: "Not found: no such session for this user, or nothing produced yet",
    409: "Conflict: another step is running or the session changed meanwhile",
    410: "Gone: the session was deleted",
    413: "Payload too large",
    415: "Unsupported media or file type",
    422: "Validation failed, or a value the session database cannot store; 'errors' lists "
    "every field at fault",
    429: "The user's daily budget is spent (USER_DAILY_BUDGET_USD); retry after Retry-After",
    502: "The LLM provider failed after its retries",
    503: "The session database is unavailable; retry after Retry-After seconds",
}


class _DescribedResponses(FlaskPlugin):
    """Requests refused in the API's error shape; responses are documented from their
    models, not validated on the way out."""

    def request_validation(
        self, request: Any, query: Any, json: Any, form: Any, headers: Any, cookies: Any
    ) -> None:
        if query is None and json is None and form is None:
            # Nothing to check (the status poll, say): skip spectree's copy of every
            # header and cookie.
            request.context = Context(None, None, None, None, None)
            return
        # Refused here, before spectree would serialise pydantic's errors (with their
        # inputs, which may be uploaded files) as its own 422.
        try:
            super().request_validation(request, query, json, form, headers, cookies)  # type: ignore[no-untyped-call]
        except ValidationError as e:
            current_user()  # who asks comes first: 401 before a 400 about the request
            _refuse(e)

    def validate_response(
        self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool
    ) -> Any:
        if isinstance(resp, Response):  # files stream as they are (direct passthrough)
            return resp, None
        return super().validate_response(resp, None, True, force_resp_serialize)


def _refuse(error: ValidationError) -> NoReturn:
    """A refused request leaves in the API's error shape."""
    if error.title.endswith("Query"):  # query parameters: 400, as they have always been
        errors = [
            {**e, "field": "query"} if e["field"] == "body" else e for e in field_errors(error)
        ]
        first = errors[0]
        message = first["message"]
        if first["field"] != "query":
            message = f"Query parameter '{first['field']}': {message}"
        raise ApiError(400, "bad_request", message, errors=errors)
    if error.title == "Council":
        raise refuse(error)
    raise ApiError(
        400,
        "bad_request",
        "; ".join(f"{e['field']}: {e['message']}" for e in field_errors(error)),
        errors=field_errors(error),
    )


api = SpecTree(
    "flask",
    backend=_DescribedResponses,
    validation_error_status=422,
    validation_error_model=Error,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    annotations=False,
    title="Agent Council Server",
    version=API_VERSION,
    description="A council of AI personas answers a question, reviews each other's answers, "
    "and a chairman writes the verdict.",
)


def operation(
    summary: str,
    *,
    ok: type[BaseModel] | None = None,
    status: int = 200,
    ok_description: str = "Success",
    errors: Iterable[int] = (),
    query: type[BaseModel] | None = None,
    json: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    tags: Iterable[str] = (),
    description: str = "",
    openapi: dict[str, Any] | None = None,
    other: dict[int, type[BaseModel]] | None = None,
) -> Callable[[F], F]:
    """Validate a view's request and describe it: ``ok`` answers with ``status``, every code
    in ``errors`` with the Error model; ``openapi`` merges a raw fragment into the operation
    (non-JSON answers, response headers)."""
    codes: dict[str, Any] = {f"HTTP_{code}": (Error, ERROR_DESCRIPTIONS[code]) for code in errors}
    codes[f"HTTP_{status}"] = (ok, ok_description)
    for code, model in (other or {}).items():
        codes[f"HTTP_{code}"] = (model, ERROR_DESCRIPTIONS.get(code, "Response"))

    def mark(view: F) -> F:
        view.__doc__ = summary + ("\n\n" + description if description else "")
        view.__openapi_extra__ = openapi or {}  # type: ignore[attr-defined]
        validated: F = api.validate(
            query=query, json=json, form=form, resp=Responses(**codes), tags=list(tags)
        )(view)
        return validated

    return mark


M = TypeVar("M", bound=BaseModel)


def validated_query(model: type[M]) -> M:
    """The query parameters spectree validated for this request (``operation(query=...)``)."""
    found = getattr(getattr(request, "context", None), "query", None)
    if not isinstance(found, model):
        raise RuntimeError(f"{model.__name__} was not validated for this view")
    return found


def validated_body(model: type[M]) -> M | None:
    """The JSON or form body spectree validated; None when it was not JSON/a form at all
    (spectree checks a JSON body only under a JSON content type, a form under a form one)."""
    context = getattr(request, "context", None)
    for kind in ("json", "form"):
        found = getattr(context, kind, None)
        if isinstance(found, model):
            return found
    return None


# -- the document ------------------------------------------------------------------------

_lock = threading.Lock()
_PAGE_RESPONSES = {
    "200": {"description": "The page or file"},
    "404": {"description": "No such page or file"},
}


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def build_document(app: Flask) -> dict[str, Any]:
    """spectree's document for ``app``, plus what it cannot know: routes it skips (static
    files), raw fragments, the deployment's agent cap and the security schemes."""
    with _lock, app.app_context():
        models = copy.deepcopy(api.models)  # spectree lifts nested $defs out, in place
        try:
            document: dict[str, Any] = api._generate_spec()
        finally:
            api.models = models
    paths: dict[str, Any] = document["paths"]
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        path = _plain_path(rule.rule)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            op = paths.setdefault(path, {}).get(method.lower())
            if op is None:  # a route spectree leaves out (static files)
                op = paths[path][method.lower()] = {
                    "summary": f"{rule.endpoint} (not described in detail)",
                    "parameters": _path_parameters(rule.rule),
                }
            # The ids clients were generated with (blueprint_view), not spectree's.
            op["operationId"] = rule.endpoint.replace(".", "_") + (
                f"_{method.lower()}" if len(methods) > 1 else ""
            )
            if not op.get("responses"):  # a page without @operation: what it is known to answer
                op["responses"] = copy.deepcopy(_PAGE_RESPONSES)
            extra = getattr(view, "__openapi_extra__", None)
            if extra:
                _merge(op, extra)
            if not op.get("tags"):
                op["tags"] = [rule.endpoint.partition(".")[0]]
            if not op.get("description"):
                op.pop("description", None)
    services = app.extensions.get("council")
    cap = services.settings.council_max_agents if services is not None else MAX_AGENTS
    schemas = document["components"]["schemas"]
    if "Council" in schemas:
        schemas["Council"]["properties"]["agents"]["maxItems"] = cap
    document["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "AUTH_MODE=token / jwt"},
        "devUser": {
            "type": "apiKey",
            "in": "header",
            "name": "X-User-Id",
            "description": "AUTH_MODE=dev: who you are (optional)",
        },
    }
    document.pop("security", None)
    if not document.get("tags"):
        document.pop("tags", None)
    return document


def _plain_path(rule: str) -> str:
    """``/a/<string:x>`` -> ``/a/{x}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", rule)
    ]


# Not "openapi": spectree leaves endpoints named openapi* out of the document.
bp = Blueprint("api_document", __name__, url_prefix="/api")


@bp.get("/openapi.json")
@operation("This OpenAPI document", ok=OpenApiDocument, tags=["operations"])
def openapi_json() -> Response:
    document = current_app.extensions.get("council_openapi")
    if document is None:
        document = current_app.extensions["council_openapi"] = build_document(current_app)
    return jsonify(document)
