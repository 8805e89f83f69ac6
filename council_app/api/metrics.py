"""/metrics: Prometheus text exposition of the whole server (every gunicorn worker)."""

from __future__ import annotations

from flask import Blueprint, Response

from council_app import metrics
from council_app.api.auth import ops_allowed
from council_app.api.contract import operation
from council_app.api.errors import ApiError

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@operation(
    "Prometheus metrics",
    description="Requests, errors and latency per route, flusher and run figures; in "
    "multiprocess mode the sum over every live worker.",
    tags=["operations"],
    openapi={"responses": {"200": {"content": {"text/plain": {"schema": {"type": "string"}}}}}},
    errors=(401,),
)
def scrape() -> Response:
    if not ops_allowed():
        raise ApiError(
            401, "unauthorized", "Send 'Authorization: Bearer <OPS_TOKEN>' (or scrape OPS_BIND)"
        )
    body, content_type = metrics.render()
    return Response(body, status=200, content_type=content_type)
