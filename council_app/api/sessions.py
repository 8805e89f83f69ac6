"""/api/sessions: parse the request, check identity, call the workflow, shape the answer."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Any, BinaryIO, TypeVar, cast

import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from council_app.api.auth import current_user
from council_app.api.contract import operation, validated_body, validated_query
from council_app.api.door import check_request
from council_app.api.errors import ApiError
from council_app.api.schemas import (
    Council,
    CreateSessionForm,
    Deleted,
    DeleteQuery,
    ForceQuery,
    ListQuery,
    Logs,
    LogsQuery,
    Results,
    Reviews,
    RunQuery,
    RunStarted,
    SessionCreated,
    SessionList,
    Status,
    Summary,
    Verdict,
)
from council_app.services import services
from council_app.session_ids import is_valid_session_id, session_dir
from council_app.store.base import DocumentView, HotRow, ListCursor, SessionRow, document_view
from council_app.workflow.session_log import read_log_entries

bp = Blueprint("sessions", __name__, url_prefix="/api/sessions")
bp.before_request(check_request)  # nothing unstorable is ever accepted (422)

V = TypeVar("V", bound=Callable[..., Any])

# The origin-compatible answers (the old server's clients check for 200, not 201/202).
CREATED_200 = "Created: 200 (not 201) as the old server answered; Location names the session"
STARTED_200 = (
    "200 (not 202) as the old server answered: status accepted means the run started "
    "(Location: where to poll), another word says why nothing started"
)


def location(what: str) -> dict[str, Any]:
    """The Location header of a 200 that stands for a 201/202 (documented, not a model)."""
    header = {"description": f"Where {what} is", "schema": {"type": "string"}}
    return {"responses": {"200": {"headers": {"Location": header}}}}


STATUS_KEYS = ("execution_status", "review_status", "execution_error", "review_error")


def _check_id(session_id: str) -> None:
    if not is_valid_session_id(session_id):
        raise ApiError(404, "not_found", "Session not found")


Row = TypeVar("Row", SessionRow, HotRow)


def _owned(row: Row | None, user: str) -> Row:
    """404 for missing and for other users' sessions (never reveal they exist); 410 deleted."""
    if row is None or row.user_id != user:
        raise ApiError(404, "not_found", "Session not found")
    if row.deleted_at is not None:
        raise ApiError(410, "gone", "This session was deleted")
    return row


def owned_session(session_id: str) -> SessionRow:
    _check_id(session_id)
    return _owned(services().states.meta(session_id), current_user())


def spending_session(session_id: str) -> SessionRow:
    """``owned_session`` for a step that calls the LLM: refused (429) once the owner's daily
    budget is spent (USER_DAILY_BUDGET_USD)."""
    row = owned_session(session_id)
    services().ledger.check(row.user_id)
    return row


def owned_state(session_id: str) -> dict[str, Any]:
    owned_session(session_id)
    stored = services().states.load(session_id)
    if stored is None:
        raise ApiError(404, "not_found", "Session not found")
    return stored.state


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@bp.post("")
@operation(
    "Create a session from a question and optional files",
    form=CreateSessionForm,
    ok=SessionCreated,
    status=200,  # the old server's clients check for 200
    ok_description=CREATED_200,
    errors=(400, 401, 404, 410, 413, 415, 503),  # follow_up_of: 404 not yours, 410 deleted
    openapi=location("the new session"),
)
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
    form = validated_body(CreateSessionForm)
    if form is None:  # a form content type always is validated; this is for mypy
        raise ApiError(400, "bad_request", "'question' is required and must not be empty")
    question = form.question
    files = [
        (f.filename or "", cast(BinaryIO, f.stream)) for f in request.files.getlist("files") if f
    ]
    parent = (form.follow_up_of or "").strip() or None
    if parent is not None:
        owned_session(parent)  # 404 unless the caller's; 410 if deleted
    created = services().workflow.create_session(user, question, files, follow_up_of=parent)
    response = jsonify(created)
    response.headers["Location"] = f"/api/sessions/{created['session_id']}"
    return response, 200


@bp.get("")
@operation(
    "List the caller's sessions, newest first",
    query=ListQuery,
    ok=SessionList,
    errors=(400, 401, 503),
)
def list_sessions() -> Response:
    user = current_user()
    query = validated_query(ListQuery)
    limit, offset, search = query.limit, query.offset, query.q
    after = _cursor_arg(query.cursor)
    # One row more than the page says whether there is a next one.
    rows = services().states.list_sessions(
        user, limit + 1, offset, after=after, query=search or None
    )
    more = len(rows) > limit
    rows = rows[:limit]
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
            "next_cursor": encode_cursor(ListCursor.after(rows[-1])) if more else None,
        }
    )


def encode_cursor(cursor: ListCursor) -> str:
    """Opaque to clients: the last row's sort key, base64url-encoded JSON."""
    raw = orjson.dumps([cursor.created_at.isoformat(), cursor.session_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_arg(raw: str | None) -> ListCursor | None:
    """The sort key a ``next_cursor`` holds (the model has checked its length)."""
    if not raw:
        return None
    try:
        if not raw.isascii():
            raise ValueError
        decoded = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        created, session_id = decoded
        when = datetime.fromisoformat(created)
        if not isinstance(session_id, str) or not session_id or when.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(
            400, "bad_request", "'cursor' is not a next_cursor this server gave out"
        ) from None
    return ListCursor(when, session_id)


@bp.post("/<session_id>/build_council")
@operation(
    "Build the council (personas) for the question",
    query=ForceQuery,
    ok=Council,
    errors=(400, 401, 404, 409, 410, 429, 502, 503),
)
def build_council(session_id: str) -> Response:
    spending_session(session_id)
    force = validated_query(ForceQuery).force
    council = services().workflow.build_council(session_id, force)
    return jsonify(council)


@bp.put("/<session_id>/council")
@operation(
    "Replace the council with an edited one",
    json=Council,
    ok=Council,
    errors=(400, 401, 404, 409, 410, 422, 503),
)
def put_council(session_id: str) -> Response:
    owned_session(session_id)
    council = validated_body(Council)
    if council is None:  # sent as a form: the model was never asked
        raise ApiError(400, "bad_request", 'The body must be JSON: {"agents": [...]}')
    return jsonify(services().workflow.set_council(session_id, council))


def _background_step(summary: str) -> Callable[[V], V]:
    """What execute and peer_review share: 200 either way (the old server's clients check
    for 200); ``status`` in the body says whether a run started (``accepted``) or why not."""
    return operation(
        summary,
        query=RunQuery,
        ok=RunStarted,
        status=200,
        ok_description=STARTED_200,
        errors=(400, 401, 404, 409, 410, 429, 503),
        openapi=location("the session's status, to poll (only when status is accepted)"),
    )


def _run_started(session_id: str, outcome: str) -> tuple[Response, int]:
    """200 with the outcome; a started run points at where to poll it."""
    response = jsonify({"status": outcome})
    if outcome == "accepted":
        response.headers["Location"] = f"/api/sessions/{session_id}/status"
    return response, 200


@bp.post("/<session_id>/execute")
@_background_step("Start the council's answers in the background (poll /status)")
def execute(session_id: str) -> tuple[Response, int]:
    spending_session(session_id)
    query = validated_query(RunQuery)
    outcome = services().workflow.start_execute(
        session_id, query.force, retry_failed=query.retry is not None
    )
    return _run_started(session_id, outcome)


@bp.post("/<session_id>/peer_review")
@_background_step("Start the peer review in the background (poll /status)")
def peer_review(session_id: str) -> tuple[Response, int]:
    spending_session(session_id)
    query = validated_query(RunQuery)
    outcome = services().workflow.start_review(
        session_id, query.force, retry_failed=query.retry is not None
    )
    return _run_started(session_id, outcome)


@bp.post("/<session_id>/cancel")
@operation(
    "Ask a running execute or review to stop",
    ok=RunStarted,
    status=202,
    errors=(401, 404, 409, 410, 503),
)
def cancel(session_id: str) -> tuple[Response, int]:
    owned_session(session_id)
    return jsonify({"status": services().workflow.cancel(session_id)}), 202


@bp.post("/<session_id>/synthesize")
@operation(
    "Have the chairman write the verdict",
    query=ForceQuery,
    ok=Verdict,
    errors=(400, 401, 404, 409, 410, 429, 502, 503),
)
def synthesize(session_id: str) -> Response:
    spending_session(session_id)
    return jsonify(
        {"verdict": services().workflow.synthesize(session_id, validated_query(ForceQuery).force)}
    )


@bp.get("/<session_id>/status")
@operation(
    "Progress of a session (cheap: reads the hot column only)",
    ok=Status,
    errors=(401, 404, 410, 503),
)
def status(session_id: str) -> Response:
    """The hot path: reads the small hot column only, whatever the document's size."""
    _check_id(session_id)
    svc = services()
    found = svc.states.hot(session_id)
    row = _owned(found[0] if found else None, current_user())
    hot = found[1] if found else {}
    found_progress = hot.get("progress")
    progress: dict[str, Any] = found_progress if isinstance(found_progress, dict) else {}
    body = {
        "status": hot.get("status") or row.status,
        "current_step": hot.get("current_step") or row.current_step,
        **{k: hot.get(k) for k in STATUS_KEYS},
        "progress": {"execution": progress.get("execution"), "review": progress.get("review")},
        "tokens": hot.get("tokens"),
        # Typed per member ({state, text, preview}, state a domain.MemberState), by step:
        # the UI reads these instead of parsing the legacy words above.
        "members": hot.get("members") if isinstance(hot.get("members"), dict) else {},
    }
    for key in ("execution_status", "review_status"):
        if body[key] is None:
            body[key] = {}
    return jsonify(body)


@bp.get("/<session_id>/results")
@operation(
    "The council's answers",
    ok=Results,
    errors=(401, 404, 410, 503),
)
def results(session_id: str) -> Response:
    view = _view(session_id, (), RESULTS_RAW_KEYS, require_state=True)
    text = view.raw["execution_results"]
    if text is None or (len(text) < 16 and not orjson.loads(text)):  # falsy: null, [], {}...
        raise ApiError(404, "not_found", "No results yet: POST /execute and wait for it to finish")
    return Response(text, mimetype="application/json")


@bp.get("/<session_id>/reviews")
@operation("The peer reviews and scores", ok=Reviews, errors=(401, 404, 410, 503))
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
    "follow_up_of",
    "follow_ups",
    "tokens",
    "log_file",
    "created_at",
    "updated_at",
)


@bp.get("/<session_id>/summary")
@operation("Everything about a session", ok=Summary, errors=(401, 404, 410, 503))
def summary(session_id: str) -> Response:
    view = _view(session_id, SUMMARY_SMALL_KEYS, SUMMARY_RAW_KEYS, require_state=False)
    row, state = view.row, view.small
    body = {key: state.get(key) for key in SUMMARY_KEYS if key not in SUMMARY_RAW_KEYS}
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
    return _json_with_raw(body, view.raw)


# /summary and /results of a completed session are hundreds of KB: the large values come
# from the store as JSON text (read_view) and go out as they are, never parsed here.
SUMMARY_RAW_KEYS = (
    "council_config",
    "execution_results",
    "peer_reviews",
    "aggregated_scores",
    "chairman_verdict",
)
SUMMARY_SMALL_KEYS = (
    *(k for k in SUMMARY_KEYS if k not in SUMMARY_RAW_KEYS and k != "session_id"),
    *STATUS_KEYS,
    "build_error",
    "synthesis_error",
)
RESULTS_RAW_KEYS = ("execution_results",)


def _view(
    session_id: str, small: tuple[str, ...], raw: tuple[str, ...], *, require_state: bool
) -> DocumentView:
    """The caller's session with ``raw`` keys as JSON text; 404/410 as ``owned_session``."""
    _check_id(session_id)
    view = services().states.view(session_id, small, raw)
    if view is not None:
        _owned(view.row, current_user())
        return view
    # Not in the database's document table (a legacy file) or not an object: parse.
    row = owned_session(session_id)
    stored = services().states.load(session_id)
    if stored is None and require_state:
        raise ApiError(404, "not_found", "Session not found")
    return document_view(row, stored.state if stored else {}, small, raw)


def _json_with_raw(body: dict[str, Any], raw: dict[str, str | None]) -> Response:
    """``body`` plus the ``raw`` members (JSON text, None for null) as one JSON object."""
    parts = [current_app.json.dumps(body)[:-1]]
    for key, text in raw.items():
        parts.append(f"{',' if len(parts) > 1 or body else ''}{orjson.dumps(key).decode()}:")
        parts.append(text if text is not None else "null")
    parts.append("}")
    return Response("".join(parts), mimetype="application/json")


@bp.get("/<session_id>/logs")
@operation(
    "The session's LLM call log",
    query=LogsQuery,
    ok=Logs,
    errors=(400, 401, 404, 410, 503),
)
def logs(session_id: str) -> Response:
    owned_session(session_id)
    limit = validated_query(LogsQuery).limit
    folder = session_dir(services().settings.sessions_dir, session_id)
    return jsonify({"logs": read_log_entries(folder, limit)})


@bp.delete("/<session_id>")
@operation(
    "Delete a session (soft by default)",
    query=DeleteQuery,
    ok=Deleted,
    errors=(400, 401, 404, 409, 410, 503),
)
def delete(session_id: str) -> Response:
    owned_session(session_id)
    hard = validated_query(DeleteQuery).hard
    # One workflow decision: the running check, the rows and the files (409 while running).
    services().workflow.delete_session(session_id, hard)
    return jsonify({"session_id": session_id, "deleted": True, "hard": hard})
