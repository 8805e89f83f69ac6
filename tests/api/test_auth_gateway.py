"""The old server's AUTH_MODE=PROD block, the trusted-proxy mode, and restricted ops endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
from flask.testing import FlaskClient

from tests.api.api_helpers import assert_error, built_app
from tests.api.auth_helpers import AUDIENCE, HS_SECRET, ISSUER, bearer, claims, settings_from

ROOT = Path(__file__).resolve().parents[2]

GATEWAY = "10.20.0.5"
STRANGER = "203.0.113.9"

# The old server's production environment, as its operators have it (docs/OPERATIONS.md).
OLD_PROD_BLOCK = f"""
AUTH_MODE=PROD
AUTH_JWT_SECRET={HS_SECRET}
AUTH_JWT_ALG=HS256
AUTH_JWT_AUDIENCE={AUDIENCE}
AUTH_JWT_ISSUER={ISSUER}
AUTH_ALLOW_X_USER_ID_IN_PROD=false
FORWARDED_ALLOW_IPS={GATEWAY}
"""


def block(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.strip().splitlines())
    return {k.strip(): v.strip() for k, v in pairs}


def from_addr(address: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": address}}


def user_of(client: FlaskClient, address: str, headers: dict[str, str]) -> Any:
    r = client.get("/api/me", headers=headers, **from_addr(address))
    return r.json["user"] if r.status_code == 200 else r.status_code


def test_old_prod_block_starts_the_server(tmp_path: Path) -> None:
    """Copied as is into the environment, the block starts the WSGI app."""
    env = {**os.environ, **block(OLD_PROD_BLOCK), "SESSIONS_DIR": str(tmp_path / "s")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'council.db'}"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import wsgi; print(wsgi.app.extensions['council'].settings.auth_mode)",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "prod"


def test_old_prod_block_identifies_users(tmp_path: Path) -> None:
    with built_app(settings_from(block(OLD_PROD_BLOCK), tmp_path)) as app:
        client = app.test_client()
        header = {"X-Authenticated-User": "alice@corp.example"}
        token = jwt.encode(claims("bob@corp.example"), HS_SECRET, algorithm="HS256")
        # The gateway's header, from the gateway.
        assert user_of(client, GATEWAY, header) == "alice@corp.example"
        # A JWT, from anywhere.
        assert user_of(client, STRANGER, bearer(token)) == "bob@corp.example"
        # The same header from anywhere else is a forgery: 401, even with a good token.
        assert user_of(client, STRANGER, header) == 401
        assert user_of(client, STRANGER, {**header, **bearer(token)}) == 401
        # X-User-Id is not let through (AUTH_ALLOW_X_USER_ID_IN_PROD=false).
        assert user_of(client, GATEWAY, {"X-User-Id": "mallory"}) == 401
        assert user_of(client, GATEWAY, {}) == 401
        # Sessions belong to the identity: the gateway user and the token user are apart.
        sid = _create_from(client, GATEWAY, header)
        assert (
            client.get(
                f"/api/sessions/{sid}/status", headers=header, **from_addr(GATEWAY)
            ).status_code
            == 200
        )
        r = client.get(f"/api/sessions/{sid}/status", headers=bearer(token), **from_addr(STRANGER))
        assert_error(r, 404)


def _create_from(client: FlaskClient, address: str, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/sessions",
        data={"question": "Who owns this?"},
        content_type="multipart/form-data",
        headers=headers,
        **from_addr(address),
    )
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    return r.json["session_id"]


def test_prod_lets_x_user_id_through_when_allowed(tmp_path: Path) -> None:
    env = {**block(OLD_PROD_BLOCK), "AUTH_ALLOW_X_USER_ID_IN_PROD": "true"}
    with built_app(settings_from(env, tmp_path)) as app:
        client = app.test_client()
        assert user_of(client, GATEWAY, {"X-User-Id": "carol@corp.example"}) == (
            "carol@corp.example"
        )
        assert user_of(client, STRANGER, {"X-User-Id": "carol@corp.example"}) == 401


def test_proxy_mode_believes_the_header_only_from_trusted_networks(tmp_path: Path) -> None:
    env = {
        "AUTH_MODE": "proxy",
        "AUTH_PROXY_HEADER": "X-Forwarded-Email",
        "AUTH_TRUSTED_PROXIES": "10.20.0.0/24, ::1",
        "FORWARDED_ALLOW_IPS": "*",  # gunicorn's setting; AUTH_TRUSTED_PROXIES wins
    }
    with built_app(settings_from(env, tmp_path)) as app:
        client = app.test_client()
        header = {"X-Forwarded-Email": "dave@corp.example"}
        assert user_of(client, "10.20.0.77", header) == "dave@corp.example"
        assert user_of(client, "::1", header) == "dave@corp.example"
        for address in (STRANGER, "10.20.1.5", "127.0.0.1"):
            r = client.get("/api/me", headers=header, **from_addr(address))
            body = assert_error(r, 401, "unauthorized")
            assert "only accepted from the SSO gateway" in body["message"]
        # A trusted proxy that sent no header, an empty one, or a forged X-User-Id.
        assert user_of(client, "10.20.0.77", {}) == 401
        assert user_of(client, "10.20.0.77", {"X-Forwarded-Email": " "}) == 401
        assert user_of(client, "10.20.0.77", {"X-User-Id": "dave@corp.example"}) == 401
        assert user_of(client, "10.20.0.77", {"X-Forwarded-Email": "x" * 400}) == 401
        # Every session route refuses the forged header, not just /api/me.
        sid = _create_from(client, "10.20.0.77", header)
        r = client.get(f"/api/sessions/{sid}/summary", headers=header, **from_addr(STRANGER))
        assert_error(r, 401)


def test_no_peer_address_is_trusted_only_when_unix_is_listed(tmp_path: Path) -> None:
    header = {"X-Authenticated-User": "frank@corp.example"}
    with built_app(settings_from({"AUTH_MODE": "proxy"}, tmp_path / "a")) as app:
        assert user_of(app.test_client(), "", header) == 401
    env = {"AUTH_MODE": "proxy", "AUTH_TRUSTED_PROXIES": "unix"}
    with built_app(settings_from(env, tmp_path / "b")) as app:
        client = app.test_client()
        assert user_of(client, "", header) == "frank@corp.example"
        assert user_of(client, "127.0.0.1", header) == 401


def test_proxy_mode_defaults_to_gunicorns_forwarded_allow_ips(tmp_path: Path) -> None:
    env = {"AUTH_MODE": "proxy", "FORWARDED_ALLOW_IPS": "192.0.2.1,192.0.2.2"}
    with built_app(settings_from(env, tmp_path)) as app:
        client = app.test_client()
        header = {"X-Authenticated-User": "erin@corp.example"}
        assert user_of(client, "192.0.2.2", header) == "erin@corp.example"
        assert user_of(client, "127.0.0.1", header) == 401


# -- /metrics and the health detail --------------------------------------------------------


class _Socket:
    """What gunicorn puts in ``environ['gunicorn.socket']``: the accepted connection."""

    def __init__(self, port: int) -> None:
        self.port = port

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_ops_token_restricts_metrics_and_health_detail(tmp_path: Path) -> None:
    with built_app(settings_from({"OPS_TOKEN": "scrape-me"}, tmp_path)) as app:
        client = app.test_client()
        assert_error(client.get("/metrics"), 401, "unauthorized")
        assert_error(client.get("/metrics", headers=bearer("wrong")), 401)
        r = client.get("/metrics", headers=bearer("scrape-me"))
        assert r.status_code == 200 and b"council_http_requests_total" in r.data
        assert client.get("/metrics", headers={"X-Ops-Token": "scrape-me"}).status_code == 200
        public = client.get("/api/health")
        assert public.status_code == 200 and public.json == {"status": "ok"}
        detail = client.get("/api/health", headers=bearer("scrape-me"))
        assert detail.status_code == 200
        assert {"backend", "database", "flusher"} <= set(detail.json)


def test_ops_bind_serves_them_on_the_ops_listener_only(tmp_path: Path) -> None:
    with built_app(settings_from({"OPS_BIND": "127.0.0.1:9100"}, tmp_path)) as app:
        client = app.test_client()
        public = {"environ_base": {"gunicorn.socket": _Socket(8000)}}
        ops = {"environ_base": {"gunicorn.socket": _Socket(9100)}}
        assert_error(client.get("/metrics", **public), 401)
        # A Host header naming the ops port does not count: the socket does.
        assert_error(client.get("/metrics", headers={"Host": "x:9100"}, **public), 401)
        assert client.get("/metrics", **ops).status_code == 200
        assert client.get("/api/health", **public).json == {"status": "ok"}
        assert "flusher" in client.get("/api/health", **ops).json


def test_unrestricted_by_default(tmp_path: Path) -> None:
    with built_app(settings_from({}, tmp_path)) as app:
        client = app.test_client()
        assert client.get("/metrics").status_code == 200
        assert "flusher" in client.get("/api/health").json
