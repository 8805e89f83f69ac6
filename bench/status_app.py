"""The real app (create_app, settings from the environment) plus one minimal route.

``GET /bench/minimal/<id>`` reads one small row by primary key through the app's own
engine and returns it as JSON: the ceiling of Flask + SQLAlchemy + psycopg2 under gunicorn
on this machine, which bench_status compares ``/status`` against.  Serve it with
``gunicorn --pythonpath <repo>,<repo>/bench status_app:app``.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import select

from council_app import create_app
from council_app.services import services
from council_app.store.schema import sessions

bp = Blueprint("bench", __name__, url_prefix="/bench")

_QUERY = select(sessions.c.status)


@bp.get("/minimal/<session_id>")
def minimal(session_id: str) -> Response:
    # The app's own pool, reached behind the door on purpose: this route is the ceiling
    # /status is compared with, so it must skip everything the door adds.
    store = services().states._store
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        status = conn.execute(_QUERY.where(sessions.c.id == session_id)).scalar()
    return jsonify({"status": status})


app = create_app()
app.register_blueprint(bp)
