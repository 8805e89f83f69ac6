"""/api/sessions: parse the request, check identity, call the workflow, shape the answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from council_app.api.auth import current_user
from council_app.api.errors import ApiError
from council_app.services import services
from council_app.session_ids import is_valid_session_id, session_dir
from council_app.settings import parse_bool
from council_app.store.base import SessionRow
from council_app.workflow.session_log import read_log_entries

bp = Blueprint("sessions", __name__, url_prefix="/api/sessions")

MAX_QUESTION_CHARS = 20_000
STATUS_KEYS = ("execution_status", "review_status", "execution_error", "review_error")


def flag(name: str) -> bool:
    """Boolean query parameters: true/false, 1/0, yes/no in any case; absent is false."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return False
    value = parse_bool(raw)
    if value is None:
        raise ApiError(400, "bad_request", f"Query parameter '{name}' must be true or false")
    return value


def _check_id(session_id: str) -> None:
    if not is_valid_session_id(session_id):
        raise ApiError(404, "not_found", "Session not found")


def _owned(row: SessionRow | None, user: str) -> SessionRow:
    """404 for missing and for other users' sessions (never reveal they exist); 410 deleted."""
    if row is None or row.user_id != user:
        raise ApiError(404, "not_found", "Session not found")
    if row.deleted_at is not None:
        raise ApiError(410, "gone", "This session was deleted")
    return row


def owned_session(session_id: str) -> SessionRow:
    _check_id(session_id)
    return _owned(services().states.meta(session_id), current_user())


def owned_state(session_id: str) -> dict[str, Any]:
    owned_session(session_id)
    stored = services().states.load(session_id)
    if stored is None:
        raise ApiError(404, "not_found", "Session not found")
    return stored.state


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@bp.post("")
def create_session() -> tuple[Response, int]:
    user = current_user()
    if not request.mimetype.startswith("multipart/form-data") and request.mimetype not in (
        "application/x-www-form-urlencoded",
    ):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send multipart/form-data with a 'question' field and optional 'files'",
        )
    question = (request.form.get("question") or "").strip()
    if not question:
        raise ApiError(400, "bad_request", "'question' is required and must not be empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ApiError(400, "bad_request", f"'question' is over {MAX_QUESTION_CHARS} characters")
    files = [(f.filename or "", f.stream) for f in request.files.getlist("files") if f]
    created = services().workflow.create_session(user, question, files)
    return jsonify(created), 201


@bp.get("")
def list_sessions() -> Response:
    user = current_user()
    limit = _int_arg("limit", 50, 1, 500)
    offset = _int_arg("offset", 0, 0, 10_000_000)
    rows = services().store.list_sessions(user, limit, offset)
    return jsonify(
        {
            "sessions": [
                {
                    "session_id": r.session_id,
                    "question": r.question,
                    "current_step": r.current_step,
                    "status": r.status,
                    "created_at": _iso(r.created_at),
                    "updated_at": _iso(r.updated_at),
                    "last_cost_usd": r.cost_usd,
                    "last_total_tokens": r.total_tokens,
                }
                for r in rows
            ],
            "limit": limit,
            "offset": offset,
        }
    )


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only: int() would also take "1_000", " 5", "+5" and non-ASCII digits.
    value = int(raw) if raw.isascii() and raw.isdigit() else None
    if value is None or not low <= value <= high:
        raise ApiError(400, "bad_request", f"'{name}' must be a whole number from {low} to {high}")
    return value


@bp.post("/<session_id>/build_council")
def build_council(session_id: str) -> Response:
    owned_session(session_id)
    council = services().workflow.build_council(session_id, flag("force"))
    return jsonify(council)


@bp.put("/<session_id>/council")
def put_council(session_id: str) -> Response:
    owned_session(session_id)
    payload = request.get_json(silent=True, force=True)
    if payload is None:
        raise ApiError(400, "bad_request", 'The body must be JSON: {"agents": [...]}')
    return jsonify(services().workflow.set_council(session_id, payload))


@bp.post("/<session_id>/execute")
def execute(session_id: str) -> tuple[Response, int]:
    owned_session(session_id)
    outcome = services().workflow.start_execute(session_id, flag("force"))
    return jsonify({"status": outcome}), 202 if outcome == "accepted" else 200


@bp.post("/<session_id>/peer_review")
def peer_review(session_id: str) -> tuple[Response, int]:
    owned_session(session_id)
    outcome = services().workflow.start_review(session_id, flag("force"))
    return jsonify({"status": outcome}), 202 if outcome == "accepted" else 200


@bp.post("/<session_id>/cancel")
def cancel(session_id: str) -> tuple[Response, int]:
    owned_session(session_id)
    return jsonify({"status": services().workflow.cancel(session_id)}), 202


@bp.post("/<session_id>/synthesize")
def synthesize(session_id: str) -> Response:
    owned_session(session_id)
    return jsonify({"verdict": services().workflow.synthesize(session_id, flag("force"))})


@bp.get("/<session_id>/status")
def status(session_id: str) -> Response:
    """The hot path: reads the small hot column only, whatever the document's size."""
    _check_id(session_id)
    svc = services()
    found = svc.states.hot(session_id)
    row = _owned(found[0] if found else None, current_user())
    hot = found[1] if found else {}
    hot = svc.workflow.expire_if_stale(session_id, hot)
    progress = hot.get("progress") if isinstance(hot.get("progress"), dict) else {}
    body = {
        "status": hot.get("status") or row.status,
        "current_step": hot.get("current_step") or row.current_step,
        **{k: hot.get(k) for k in STATUS_KEYS},
        "progress": {"execution": progress.get("execution"), "review": progress.get("review")},
        "tokens": hot.get("tokens"),
    }
    for key in ("execution_status", "review_status"):
        if body[key] is None:
            body[key] = {}
    return jsonify(body)


@bp.get("/<session_id>/results")
def results(session_id: str) -> Response:
    state = owned_state(session_id)
    if not state.get("execution_results"):
        raise ApiError(404, "not_found", "No results yet: POST /execute and wait for it to finish")
    return jsonify(state["execution_results"])


@bp.get("/<session_id>/reviews")
def reviews(session_id: str) -> Response:
    state = owned_state(session_id)
    return jsonify(
        {
            "reviews": state.get("peer_reviews") or [],
            "aggregated_scores": state.get("aggregated_scores") or {},
        }
    )


SUMMARY_KEYS = (
    "session_id",
    "question",
    "status",
    "current_step",
    "council_config",
    "execution_results",
    "peer_reviews",
    "aggregated_scores",
    "chairman_verdict",
    "tokens",
    "log_file",
    "created_at",
    "updated_at",
)


@bp.get("/<session_id>/summary")
def summary(session_id: str) -> Response:
    row = owned_session(session_id)
    stored = services().states.load(session_id)
    state = stored.state if stored else {}
    body = {key: state.get(key) for key in SUMMARY_KEYS}
    body["session_id"] = session_id
    body["question"] = state.get("question") if isinstance(state.get("question"), str) else ""
    body["status"] = state.get("status") or row.status
    body["current_step"] = state.get("current_step") or row.current_step
    body["created_at"] = state.get("created_at") or _iso(row.created_at)
    body["updated_at"] = state.get("updated_at") or _iso(row.updated_at)
    for key in (*STATUS_KEYS, "build_error", "synthesis_error"):
        if key in state:
            body[key] = state[key]
    body["provider"] = services().provider.name
    return jsonify(body)


@bp.get("/<session_id>/logs")
def logs(session_id: str) -> Response:
    owned_session(session_id)
    limit = _int_arg("limit", 1000, 1, 100_000)
    folder = session_dir(services().settings.sessions_dir, session_id)
    return jsonify({"logs": read_log_entries(folder, limit)})


@bp.delete("/<session_id>")
def delete(session_id: str) -> Response:
    owned_session(session_id)
    hard = flag("hard")
    services().store.mark_deleted(session_id, hard=hard)
    if hard:
        from council_app.workflow.uploads import remove_session_files

        remove_session_files(session_dir(services().settings.sessions_dir, session_id))
    return jsonify({"session_id": session_id, "deleted": True, "hard": hard})
