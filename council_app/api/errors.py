"""Every error leaves as JSON ``{"error", "message", "detail"}``; no traceback reaches a client.

Storage errors are mapped here, in one place: the database being unreachable is a 503.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from council_app.budget import BudgetExceeded, utc_now
from council_app.state import SessionGone
from council_app.store import StoreError, StoreUnavailable
from council_app.store.base import RevisionConflict, StoreDataError
from council_app.workflow.errors import WorkflowError
from council_app.workflow.uploads import UploadRejected

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.extra = extra


def error_response(status: int, error: str, message: str, **extra: Any) -> tuple[Response, int]:
    body = {"error": error, "message": message, "detail": message, **extra}
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api(e: ApiError) -> tuple[Response, int]:
        return error_response(e.status, e.error, e.message, **e.extra)

    @app.errorhandler(WorkflowError)
    def _workflow(e: WorkflowError) -> tuple[Response, int]:
        return error_response(e.status_code, e.code, e.message, **e.extra)

    @app.errorhandler(UploadRejected)
    def _upload(e: UploadRejected) -> tuple[Response, int]:
        error = {413: "file_too_large", 415: "unsupported_file_type"}.get(e.status, "bad_upload")
        return error_response(e.status, error, e.message)

    @app.errorhandler(SessionGone)
    def _gone(e: SessionGone) -> tuple[Response, int]:
        return error_response(404, "not_found", "Session not found")

    @app.errorhandler(RevisionConflict)
    def _conflict(e: RevisionConflict) -> tuple[Response, int]:
        return error_response(
            409, "conflict", "The session is being changed by another request; try again"
        )

    @app.errorhandler(BudgetExceeded)
    def _budget(e: BudgetExceeded) -> tuple[Response, int]:
        response, status = error_response(
            429,
            "budget_exceeded",
            str(e),
            spent_today_usd=round(e.spent, 6),
            daily_budget_usd=e.budget,
            resets_at=e.resets_at.isoformat().replace("+00:00", "Z"),
        )
        response.headers["Retry-After"] = str(e.retry_after_s(utc_now()))
        return response, status

    @app.errorhandler(StoreDataError)
    def _refused(e: StoreDataError) -> tuple[Response, int]:
        # The door (workflow/storable.py) should have refused it: log it, and answer as
        # the door would, since retrying the same request cannot succeed.
        log.error("Storage refused request data: %s", e)
        return error_response(
            422,
            "unstorable_input",
            "The request holds a value the session database cannot store (a NUL character, "
            "an unpaired surrogate, or nesting too deep); remove it and try again",
        )

    @app.errorhandler(StoreUnavailable)
    def _unavailable(e: StoreUnavailable) -> tuple[Response, int]:
        log.warning("Storage unavailable: %s", e)
        response, status = error_response(
            503,
            "storage_unavailable",
            "The session database is unavailable right now; try again in a few seconds",
        )
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(StoreError)
    def _store(e: StoreError) -> tuple[Response, int]:
        log.error("Storage error: %s", e)
        return error_response(503, "storage_error", "The session database failed; try again")

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> tuple[Response, int]:
        status = e.code or 500
        messages = {
            404: "No such endpoint; see /api/openapi.json",
            405: "This endpoint does not accept that method",
            413: "The request is larger than the server accepts (MAX_CONTENT_LENGTH_MB)",
        }
        message = messages.get(status) or (e.description or e.name)
        response, status = error_response(status, e.name.lower().replace(" ", "_"), message)
        if status == 405 and e.get_response().headers.get("Allow"):
            response.headers["Allow"] = e.get_response().headers["Allow"]
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> tuple[Response, int]:
        log.exception("Unhandled error")
        return error_response(500, "internal_error", "Something went wrong on the server")
