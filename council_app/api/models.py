"""/api/models: which models the provider serves, and what the UI must say about it.

Besides the (cached) model list this carries the provider's description (offline stand-in
or not, whether web search is available and how) because ``/api/health``'s detail may be
reserved to operators while every signed-in user needs the banner and the checkbox note.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from council_app.api.auth import current_user
from council_app.api.openapi import doc
from council_app.providers import provider_info
from council_app.services import services
from council_app.settings import parse_bool

bp = Blueprint("models", __name__, url_prefix="/api")

PROVIDER_SCHEMA = {
    "type": "object",
    "required": ["name", "offline", "web_search"],
    "properties": {
        "name": {"type": "string"},
        "offline": {"type": "boolean"},
        "base_url": {"type": "string", "nullable": True},
        "hint": {"type": "string", "nullable": True},
        "web_search": {
            "type": "object",
            "required": ["available"],
            "properties": {
                "available": {"type": "boolean"},
                "via": {"type": "string", "nullable": True},
            },
        },
    },
}


@bp.get("/models")
@doc(
    "Models the provider serves (cached; ?refresh=1 asks again), the default council and "
    "chairman models, and whether answers are canned or web search is available",
    ok={
        "type": "object",
        "required": ["models", "available", "default_model", "provider"],
        "properties": {
            "models": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "available": {"type": "boolean"},
            "fetched_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string", "enum": ["provider", "offline", "unavailable"]},
            "error": {"type": "string", "nullable": True},
            "default_model": {"type": "string"},
            "default_chairman_model": {"type": "string"},
            "provider": PROVIDER_SCHEMA,
        },
    },
    errors=(401, 503),
)
def list_models() -> Response:
    current_user()  # same identity rules as every other /api route
    svc = services()
    refresh = parse_bool(request.args.get("refresh", "")) is True
    found = svc.models.current(refresh=refresh)
    settings = svc.settings
    return jsonify(
        {
            **found.as_dict(),
            "default_model": settings.council_model,
            "default_chairman_model": settings.chairman_model or settings.council_model,
            "provider": provider_info(svc.provider).as_dict(),
        }
    )
