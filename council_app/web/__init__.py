"""The built-in web UI: one HTML shell plus static CSS and plain ES modules.

The page talks only to the public JSON API (``/api/...``), so it doubles as a worked
example of a client. Nothing here touches the store or the workflow directly; the
blueprint only renders the shell and serves the static files, with a strict
Content-Security-Policy so model output can never run as script even if a bug in the
client rendered it as HTML.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, render_template

from council_app.domain import EFFORTS, RUNNING, MemberState, SessionStatus, Step
from council_app.workflow.council_input import MAX_AGENTS
from council_app.workflow.uploads import ALLOWED_EXTENSIONS

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    # Not "/static": Flask(__name__) always registers its own /static/<path> first, and
    # that rule would shadow this one (council_app/static does not exist, so: 404s).
    static_url_path="/assets",
)

#: Sub-pages of a session; every one renders the same shell and the client picks the view.
SESSION_VIEWS = ("council", "run", "results", "verdict")

DEFAULT_MAX_UPLOAD_MB = 20

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def _max_upload_mb() -> int:
    """The per-file upload limit the API enforces, for the picker's hint and early warning.

    The factory may keep its settings in several places; fall back to the documented
    default, since the API's own 413 is what the page finally shows anyway.
    """
    config = current_app.config
    for key in ("MAX_UPLOAD_MB", "max_upload_mb"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    candidates = [config.get("SETTINGS"), config.get("COUNCIL_SETTINGS")]
    candidates += list(current_app.extensions.values())
    for candidate in candidates:
        value = getattr(candidate, "max_upload_mb", None)
        if value is None:
            value = getattr(getattr(candidate, "settings", None), "max_upload_mb", None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_UPLOAD_MB


def _shell(session_id: str | None = None, view: str | None = None) -> str:
    """Render the single-page shell; the ES modules read the data-* attributes."""
    return render_template(
        "web/index.html",
        session_id=session_id or "",
        view=view or "",
        allowed_extensions=",".join(ALLOWED_EXTENSIONS),
        max_upload_mb=_max_upload_mb(),
    )


@bp.get("/")
def index() -> str:
    """Start page: the question box and the file picker."""
    return _shell()


@bp.get("/s/<session_id>")
def session_page(session_id: str) -> str:
    """A session; the client opens the view that fits the session's current step."""
    return _shell(session_id)


@bp.get("/s/<session_id>/<view>")
def session_view(session_id: str, view: str) -> str:
    """A session opened on one view (council, run, results or verdict)."""
    if view not in SESSION_VIEWS:
        abort(404)
    return _shell(session_id, view)


def domain_module(max_agents: int = MAX_AGENTS) -> str:
    """The typed words of ``council_app.domain`` as an ES module, so the client's lists
    are generated from the server's enums instead of copied by hand; and this
    deployment's council cap (COUNCIL_MAX_AGENTS)."""
    values: dict[str, object] = {
        "SESSION_STATUSES": [s.value for s in SessionStatus],
        "RUNNING_STATUSES": sorted(RUNNING),
        "STEPS": [s.value for s in Step],
        "MEMBER_STATES": [m.value for m in MemberState],
        "EFFORTS": list(EFFORTS),
        "MAX_AGENTS": max_agents,
    }
    lines = ["// Generated from council_app/domain.py by the web blueprint; do not edit."]
    lines += [
        f"export const {name} = Object.freeze({json.dumps(v)});" for name, v in values.items()
    ]
    return "\n".join(lines) + "\n"


@bp.get("/ui/domain.js")
def domain_js() -> Response:
    """Served like a static module (same origin, so the CSP allows it)."""
    cap = current_app.config["COUNCIL_SETTINGS"].council_max_agents
    response = Response(domain_module(cap), mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.after_request
def _security_headers(response: Response) -> Response:
    """Lock the UI down: same-origin scripts and styles only, no framing, no sniffing."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
