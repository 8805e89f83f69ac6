"""/api/docs: interactive API documentation (Swagger UI) for /api/openapi.json.

The Swagger UI files (5.x: it reads OpenAPI 3.1, which the document is) come from the
``swagger-ui-py`` package, served from this server: no CDN, so the page works offline and
under a strict Content-Security-Policy (no inline script; the start-up code is
``docs_assets/init.js``).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory

from council_app.api.contract import operation

bp = Blueprint("docs", __name__, url_prefix="/api")

_OWN_ASSETS = Path(__file__).resolve().parent / "docs_assets"


def _vendor_folder() -> Path:
    """swagger-ui-py's ``static`` folder, found without importing the package (its
    ``__init__`` loads Jinja and YAML for framework handlers this server does not use)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


swagger_ui_path = _vendor_folder()
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
