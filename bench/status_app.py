"""The real app (create_app, settings from the environment) plus one minimal route.

``GET /bench/minimal/<id>`` reads one small row by primary key through the app's own
engine and returns it as JSON: the ceiling of Flask + SQLAlchemy + psycopg2 under gunicorn
on this machine, which bench_status compares ``/status`` against.  Serve it with
``gunicorn --pythonpath <repo>,<repo>/bench status_app:app``.

With ``BENCH_PROPOSED_LOAD_HOT=1`` the store's ``load_hot`` is replaced by the change the
benchmark recommends (a statement built once, naming only the columns ``SessionRow`` reads),
so its effect is measured in the same run as the code as it is.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import bindparam, select

from council_app import create_app
from council_app.services import services
from council_app.store.base import SessionRow
from council_app.store.schema import session_state, sessions

bp = Blueprint("bench", __name__, url_prefix="/bench")

_QUERY = select(sessions.c.status)


@bp.get("/minimal/<session_id>")
def minimal(session_id: str) -> Response:
    with services().store.engine.connect() as conn:
        status = conn.execute(_QUERY.where(sessions.c.id == session_id)).scalar()
    return jsonify({"status": status})


def proposed_load_hot(store: Any) -> Any:
    """load_hot with its statement built once and without the legacy ``sessions.state``."""
    original = store.load_hot
    query = (
        select(*[c for c in sessions.c if c.name != "state"], session_state.c.progress)
        .select_from(sessions.outerjoin(session_state, session_state.c.session_id == sessions.c.id))
        .where(sessions.c.id == bindparam("sid"))
    )

    def load_hot(session_id: str) -> tuple[SessionRow, dict[str, Any]] | None:
        with store._tx() as conn:
            row = conn.execute(query, {"sid": session_id}).first()
        if row is None:
            return original(session_id)  # the legacy-file fallback, unchanged
        return SessionRow.from_db(row), dict(row.progress or {})

    return load_hot


app = create_app()
app.register_blueprint(bp)
if os.environ.get("BENCH_PROPOSED_LOAD_HOT") == "1":
    _store = app.extensions["council"].store
    _store.load_hot = proposed_load_hot(_store)
