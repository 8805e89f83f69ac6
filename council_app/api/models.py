"""/api/models: which models the provider serves, and what the UI must say about it.

Besides the (cached) model list this carries the provider's description (offline stand-in
or not, whether web search is available and how) because ``/api/health``'s detail may be
reserved to operators while every signed-in user needs the banner and the checkbox note.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from council_app.api.auth import current_user
from council_app.api.contract import operation, validated_query
from council_app.api.schemas import ModelList, ModelsQuery
from council_app.providers import provider_info
from council_app.services import services

bp = Blueprint("models", __name__, url_prefix="/api")


@bp.get("/models")
@operation(
    "Models the provider serves (cached; ?refresh=1 asks again), the default council and "
    "chairman models, and whether answers are canned or web search is available",
    ok=ModelList,
    query=ModelsQuery,
    errors=(401, 503),
)
def list_models() -> Response:
    current_user()  # same identity rules as every other /api route
    svc = services()
    refresh = validated_query(ModelsQuery).refresh
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
