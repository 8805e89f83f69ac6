"""/api/docs: interactive API documentation (Swagger UI) for /api/openapi.json.

The Swagger UI files come from the ``swagger-ui-bundle`` package, served from this server:
no CDN, so the page works offline and under a strict Content-Security-Policy (no inline
script; the start-up code is ``docs_assets/init.js``).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from council_app.api.contract import operation

bp = Blueprint("docs", __name__, url_prefix="/api")

_OWN_ASSETS = Path(__file__).resolve().parent / "docs_assets"
# Only what the page loads; nothing else of the vendored folder is reachable.
_VENDOR_FILES = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-32x32.png",
        "favicon-16x16.png",
    }
)
_OWN_FILES = frozenset({"init.js"})

# Swagger UI sets inline styles; everything else is this origin's.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_TEXT = {"type": "string"}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Agent Council Server API</title>
  <link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/api/docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="/api/docs/assets/init.js"></script>
</body>
</html>
"""


@bp.get("/docs")
@operation(
    "Interactive documentation of this API (Swagger UI, served from this server)",
    tags=["operations"],
    ok_description="The page",
    openapi={"responses": {"200": {"content": {"text/html": {"schema": _TEXT}}}}},
)
def page() -> Response:
    response = Response(PAGE, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.get("/docs/assets/<name>")
@operation(
    "A file of the documentation page (Swagger UI's script, style sheet and icons)",
    tags=["operations"],
    ok_description="The file",
    openapi={
        "responses": {
            "200": {
                "content": {
                    t: {"schema": _TEXT} for t in ("text/javascript", "text/css", "image/png")
                }
            }
        }
    },
    errors=(404,),
)
def asset(name: str) -> Response:
    if name in _OWN_FILES:
        response = send_from_directory(_OWN_ASSETS, name, max_age=3600)
    elif name in _VENDOR_FILES:
        response = send_from_directory(swagger_ui_path, name, max_age=86400)
    else:
        abort(404)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
