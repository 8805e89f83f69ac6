"""/api/openapi.json: an OpenAPI 3 document generated from the running app.

Paths and methods come from ``app.url_map`` (so a route can never be missing from the
document); what each operation takes and returns comes from ``@doc(...)`` declared next to
the view.  A route without ``@doc`` still appears, described generically.  Schemas are
kept loose where the workflow stores free-form model output, strict where clients rely on
a shape (errors, status, created session).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify
from werkzeug.routing import Rule

from council_app.domain import EFFORTS, MemberState
from council_app.workflow.council_input import MAX_AGENTS, MAX_NAME_CHARS, MAX_PERSONA_CHARS

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("openapi", __name__, url_prefix="/api")

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"

ERROR_DESCRIPTIONS = {
    400: "Bad request: a parameter or the body is invalid, or a step's prerequisite is missing",
    401: "Unauthorized: no identity, or an invalid token or untrusted gateway header",
    404: "Not found: no such session for this user, or nothing produced yet",
    409: "Conflict: another step is running or the session changed meanwhile",
    410: "Gone: the session was deleted",
    413: "Payload too large",
    415: "Unsupported media or file type",
    422: "Validation failed; 'errors' lists every field at fault",
    429: "The user's daily budget is spent (USER_DAILY_BUDGET_USD); retry after Retry-After",
    502: "The LLM provider failed after its retries",
    503: "The session database is unavailable; retry after Retry-After seconds",
}

_STR = {"type": "string"}
_INT = {"type": "integer"}
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_NULLABLE_OBJECT: dict[str, Any] = {"type": "object", "nullable": True}
_NULLABLE_STR = {"type": "string", "nullable": True}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {**_STR, "description": "Machine-readable code, e.g. not_found"},
            "message": {**_STR, "description": "Human-readable explanation"},
            "detail": {**_STR, "description": "Same as message (FastAPI-style clients)"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": _STR, "message": _STR},
                },
            },
        },
    },
    "ContextFile": {
        "type": "object",
        "required": ["filename", "extension", "size_bytes"],
        "properties": {"filename": _STR, "extension": _STR, "size_bytes": _INT},
    },
    "SessionCreated": {
        "type": "object",
        "required": ["session_id", "status", "question", "context_files"],
        "properties": {
            "session_id": _STR,
            "status": {**_STR, "description": "idle: created, no step run yet"},
            "question": _STR,
            "follow_up_of": {**_NULLABLE_STR, "description": "the session this one follows up"},
            "context_files": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ContextFile"},
            },
        },
    },
    "SessionListItem": {
        "type": "object",
        "required": ["session_id", "status", "current_step"],
        "properties": {
            "session_id": _STR,
            "question": _NULLABLE_STR,
            "current_step": _NULLABLE_STR,
            "status": _NULLABLE_STR,
            "created_at": _NULLABLE_STR,
            "updated_at": _NULLABLE_STR,
            "last_cost_usd": {"type": "number", "nullable": True},
            "last_total_tokens": {"type": "integer", "nullable": True},
        },
    },
    "SessionList": {
        "type": "object",
        "required": ["sessions", "limit", "offset"],
        "properties": {
            "sessions": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/SessionListItem"},
            },
            "limit": _INT,
            "offset": _INT,
            "next_cursor": _NULLABLE_STR,
        },
    },
    "Agent": {
        "type": "object",
        "required": ["name", "persona"],
        "properties": {
            "name": {**_STR, "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": r"\S"},
            "persona": {**_STR, "minLength": 1, "maxLength": MAX_PERSONA_CHARS, "pattern": r"\S"},
            "reasoning_effort": {**_STR, "enum": [*EFFORTS, None], "nullable": True},
            "enable_web_search": {"type": "boolean"},
            "model": {**_STR, "minLength": 1, "pattern": r"\S", "nullable": True},
        },
    },
    "Council": {
        "type": "object",
        "required": ["agents"],
        "properties": {
            "council_name": _STR,
            "strategy_summary": _STR,
            # This session's chairman (GET /api/models lists the choices); null: the default
            "chairman_model": {**_STR, "minLength": 1, "pattern": r"\S", "nullable": True},
            "agents": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_AGENTS,
                "items": {"$ref": "#/components/schemas/Agent"},
            },
        },
    },
    "RunStarted": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {
                **_STR,
                "description": "accepted (started now) or a word saying why nothing started",
            }
        },
    },
    "Status": {
        "type": "object",
        "required": ["status", "current_step", "execution_status", "review_status", "progress"],
        "properties": {
            "status": _NULLABLE_STR,
            "current_step": _NULLABLE_STR,
            "execution_status": _ANY_OBJECT,
            "review_status": _ANY_OBJECT,
            "execution_error": {"nullable": True},
            "review_error": {"nullable": True},
            "progress": {
                "type": "object",
                "properties": {"execution": {"nullable": True}, "review": {"nullable": True}},
            },
            "tokens": _NULLABLE_OBJECT,
            "members": {
                "type": "object",
                "description": "Per step (build/execute/review/synthesize), per member: "
                "{state, text, preview}; state is one of " + ", ".join(MemberState),
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "state": {"type": "string", "enum": list(MemberState)},
                            "text": {"type": "string"},
                            "preview": {"type": "string", "nullable": True},
                        },
                    },
                },
            },
        },
    },
    "Reviews": {
        "type": "object",
        "required": ["reviews", "aggregated_scores"],
        "properties": {
            "reviews": {"type": "array", "items": {}},
            "aggregated_scores": _ANY_OBJECT,
        },
    },
    "Verdict": {
        "type": "object",
        "required": ["verdict"],
        "properties": {"verdict": _NULLABLE_STR},
    },
    "Summary": {
        "type": "object",
        "required": ["session_id", "question", "status", "current_step", "provider"],
        "properties": {
            "session_id": _STR,
            "question": _STR,
            "status": _NULLABLE_STR,
            "current_step": _NULLABLE_STR,
            "council_config": _NULLABLE_OBJECT,
            "execution_results": {"nullable": True},
            "peer_reviews": {"nullable": True},
            "aggregated_scores": {"nullable": True},
            "chairman_verdict": _NULLABLE_STR,
            "follow_up_of": _NULLABLE_STR,
            "follow_ups": {"type": "array", "items": _STR, "nullable": True},
            "tokens": _NULLABLE_OBJECT,
            "provider": _STR,
        },
    },
    "Logs": {
        "type": "object",
        "required": ["logs"],
        "properties": {"logs": {"type": "array", "items": _ANY_OBJECT}},
    },
    "Deleted": {
        "type": "object",
        "required": ["session_id", "deleted", "hard"],
        "properties": {
            "session_id": _STR,
            "deleted": {"type": "boolean"},
            "hard": {"type": "boolean"},
        },
    },
    "Health": {
        "type": "object",
        # Only status when OPS_TOKEN / OPS_BIND restrict the detail.
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "backend": _STR,
            "database_url": _NULLABLE_STR,
            "database": {
                "type": "object",
                "required": ["ok"],
                "properties": {
                    "ok": {"type": "boolean"},
                    "latency_ms": {"type": "number"},
                    "error": _STR,
                },
            },
            # {name, offline, base_url, hint, web_search: {available, via}}: api/models.py
            "provider": _ANY_OBJECT,
            "flusher": _ANY_OBJECT,
        },
    },
    "ProgressPatch": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "execution_status": _ANY_OBJECT,
            "review_status": _ANY_OBJECT,
            "progress": _ANY_OBJECT,
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["accepted"]}},
    },
}


def ref(name: str) -> dict[str, str]:
    """A reference to one of the shared schemas above."""
    if name not in SCHEMAS:
        raise KeyError(f"unknown OpenAPI schema {name!r}")
    return {"$ref": f"#/components/schemas/{name}"}


def q_bool(name: str, description: str) -> dict[str, Any]:
    """A true/false query flag (absent means false)."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "boolean", "default": False},
    }


def q_int(name: str, low: int, high: int, default: int, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": low, "maximum": high, "default": default},
    }


def json_body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def form_body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    """A form body, multipart (with files) or urlencoded (fields only)."""
    fields_only = {
        **schema,
        "properties": {
            k: v
            for k, v in schema.get("properties", {}).items()
            if v.get("format") != "binary" and v.get("items", {}).get("format") != "binary"
        },
    }
    return {
        "required": True,
        "description": description,
        "content": {
            "multipart/form-data": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": fields_only},
        },
    }


def doc(
    summary: str,
    *,
    ok: dict[str, Any] | None = None,
    status: int = 200,
    errors: Iterable[int] = (),
    query: Iterable[dict[str, Any]] = (),
    body: dict[str, Any] | None = None,
    description: str | None = None,
    tags: Iterable[str] = (),
    responses: dict[int, dict[str, Any]] | None = None,
    ok_description: str = "Success",
) -> Callable[[F], F]:
    """Describe a view for the OpenAPI document; the route itself comes from the url_map.

    ``ok`` is the JSON schema of the success response (status ``status``); every code in
    ``errors`` answers with the shared Error schema; ``responses`` adds raw entries.
    """
    meta: dict[str, Any] = {"summary": summary}
    if description:
        meta["description"] = description
    if tags:
        meta["tags"] = list(tags)
    query = list(query)
    if query:
        meta["parameters"] = query
    if body is not None:
        meta["requestBody"] = body
    out: dict[str, Any] = {}
    if ok is not None:
        out[str(status)] = {
            "description": ok_description,
            "content": {"application/json": {"schema": ok}},
        }
    for code in errors:
        out[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    for code, response in (responses or {}).items():
        out[str(code)] = {"description": ERROR_DESCRIPTIONS.get(code, "Response"), **response}
    meta["responses"] = out

    def mark(view: F) -> F:
        view.__openapi__ = meta  # type: ignore[attr-defined]
        return view

    return mark


_PARAM = re.compile(r"<(?:(?P<conv>[A-Za-z_]\w*)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_]\w*)>")
_CONVERTER_TYPES = {"int": "integer", "float": "number"}


def _path_and_params(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    params: list[dict[str, Any]] = []

    def replace(m: re.Match[str]) -> str:
        conv = m.group("conv") or "default"
        schema: dict[str, Any] = {"type": _CONVERTER_TYPES.get(conv, "string")}
        if schema["type"] == "string" and conv != "path":
            schema["pattern"] = "^[^/]+$"
        params.append({"name": m.group("name"), "in": "path", "required": True, "schema": schema})
        return "{" + m.group("name") + "}"

    return _PARAM.sub(replace, rule.rule), params


def _generic(rule: Rule) -> dict[str, Any]:
    """What an undocumented route (web pages, static files) is known to answer."""
    return {
        "summary": f"{rule.endpoint} (not described in detail)",
        "responses": {
            "200": {"description": "The page or file"},
            "404": {"description": "No such page or file"},
        },
    }


def _with_agent_cap(app: Flask) -> dict[str, dict[str, Any]]:
    """SCHEMAS with the Council's maxItems set to this deployment's COUNCIL_MAX_AGENTS."""
    services = app.extensions.get("council")
    cap = services.settings.council_max_agents if services is not None else MAX_AGENTS
    council = SCHEMAS["Council"]
    agents = {**council["properties"]["agents"], "maxItems": cap}
    properties = {**council["properties"], "agents": agents}
    return {**SCHEMAS, "Council": {**council, "properties": properties}}


def _door_blueprints(app: Flask) -> set[str | None]:
    """Blueprints whose requests pass ``door.check_request`` (422 for unstorable input)."""
    from council_app.api.door import check_request

    return {name for name, funcs in app.before_request_funcs.items() if check_request in funcs}


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document for every rule in ``app.url_map``."""
    paths: dict[str, dict[str, Any]] = {}
    door = _door_blueprints(app)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        path, path_params = _path_and_params(rule)
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "__openapi__", None) or _generic(rule)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            op: dict[str, Any] = {
                k: (list(v) if isinstance(v, list) else v) for k, v in meta.items()
            }
            op["operationId"] = rule.endpoint.replace(".", "_") + (
                f"_{method.lower()}" if len(methods) > 1 else ""
            )
            op.setdefault("tags", [rule.endpoint.partition(".")[0]])
            if rule.endpoint.partition(".")[0] in door and "422" not in op["responses"]:
                # The door refuses what the stores cannot keep, on every operation.
                op["responses"] = {
                    **op["responses"],
                    "422": {"$ref": "#/components/responses/E422"},
                }
            params = path_params + list(meta.get("parameters", []))
            if params:
                op["parameters"] = params
            paths.setdefault(path, {})[method.lower()] = op
    responses = {
        f"E{code}": {
            "description": text,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for code, text in ERROR_DESCRIPTIONS.items()
    }
    schemas = _with_agent_cap(app)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Agent Council Server",
            "version": API_VERSION,
            "description": "A council of AI personas answers a question, reviews each "
            "other's answers, and a chairman writes the verdict.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "AUTH_MODE=token"},
                "devUser": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-User-Id",
                    "description": "AUTH_MODE=dev: who you are (optional)",
                },
            },
        },
    }


@bp.get("/openapi.json")
@doc(
    "This OpenAPI document",
    ok={"type": "object", "required": ["openapi", "paths"]},
    tags=["operations"],
)
def openapi_json() -> Response:
    spec = current_app.extensions.get("council_openapi")
    if spec is None:
        spec = current_app.extensions["council_openapi"] = build_spec(current_app)
    return jsonify(spec)
