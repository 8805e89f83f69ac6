"""POST /api/sessions/<id>/progress: progress reports from outside the process (PROGRESS_API=1).

Off by default.  External workers (and the serving tests) report hot keys here; the patch
goes through the same write-behind flusher as the built-in workflow's progress, so a 202
means "accepted in memory, written within one flush interval or at graceful shutdown".

Send one session's reports over one keep-alive connection (or to one process): revisions
order writes per process, and a report held by another worker with an older revision
would be refused as stale when both flush.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from council_app.api.contract import operation, validated_body
from council_app.api.door import check_request
from council_app.api.errors import ApiError
from council_app.api.schemas import Accepted, ProgressPatch
from council_app.api.sessions import owned_session
from council_app.services import services

bp = Blueprint("progress", __name__, url_prefix="/api/sessions")
bp.before_request(check_request)  # a report the stores cannot keep is a 422, not a 202

HOT_KEYS = tuple(ProgressPatch.model_fields)


@bp.post("/<session_id>/progress")
@operation(
    "Report progress of a session (hot keys, deep-merged)",
    description="Enabled by PROGRESS_API=1. Accepted in memory and written by the batched "
    "flusher; send one session's reports over one connection.",
    json=ProgressPatch,
    ok=Accepted,
    status=202,
    ok_description="Accepted; durable within one flush interval or at graceful shutdown",
    errors=(400, 401, 404, 410, 503),
    tags=["sessions"],
)
def report_progress(session_id: str) -> tuple[Response, int]:
    owned_session(session_id)
    body = validated_body(ProgressPatch)
    if body is None:  # not sent as JSON: the model was never asked
        raise ApiError(
            400, "bad_request", f"The body must be a non-empty JSON object of {', '.join(HOT_KEYS)}"
        )
    patch: dict[str, Any] = body.model_dump(exclude_unset=True)
    services().states.progress(session_id, patch)
    return jsonify({"status": "accepted"}), 202
