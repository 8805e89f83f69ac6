"""The bare stack, outside the project: Flask + SQLAlchemy Core + psycopg2, nothing else.

``GET /bare/<id>`` reads one small JSONB row by primary key and returns it as JSON.  No
council_app import, no hooks, no pool pre-ping: what any Flask app on this stack pays per
request.  bench_status.py serves it with the same gunicorn command line as the app
(2 sync workers) and the same wrk load, so the ratio of the two is the project's own
per-request cost.  ``BARE_DATABASE_URL`` names the database (a search_path'd schema).
"""

from __future__ import annotations

import os

from flask import Flask, Response, abort, jsonify
from sqlalchemy import Column, MetaData, String, Table, create_engine, select
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
rows = Table(
    "bare_rows", metadata, Column("id", String(128), primary_key=True), Column("doc", JSONB)
)

engine = create_engine(os.environ["BARE_DATABASE_URL"], pool_size=2, max_overflow=2)
app = Flask(__name__)


@app.get("/bare/<row_id>")
def bare(row_id: str) -> Response:
    with engine.connect() as conn:
        doc = conn.execute(select(rows.c.doc).where(rows.c.id == row_id)).scalar()
    if doc is None:
        abort(404)
    return jsonify(doc)
