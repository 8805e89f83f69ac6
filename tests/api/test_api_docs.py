"""/api/docs: the page and every file it loads come from this server (packaged assets)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.api.api_helpers import assert_error


def test_docs_page_loads_only_local_assets(client: FlaskClient) -> None:
    r = client.get("/api/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    page = r.get_data(as_text=True)
    assert "<script>" not in page  # no inline script: the CSP would refuse it
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(u.startswith("/api/docs/assets/") for u in urls), urls
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.data) > 100
    init = client.get("/api/docs/assets/init.js").get_data(as_text=True)
    assert '"/api/openapi.json"' in init and "validatorUrl: null" in init
    assert "http://" not in init and "https://" not in init


def test_only_the_pages_files_are_served(client: FlaskClient) -> None:
    for name in (
        "index.html",
        "swagger-ui.js.map",
        "..%2F..%2Fsettings.py",
        "oauth2-redirect.html",
    ):
        assert_error(client.get(f"/api/docs/assets/{name}"), 404)


def test_the_docs_are_in_the_document(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").json["paths"]
    assert "/api/docs" in paths
