"""The old server's AUTH_MODE=PROD block under real gunicorn: the gateway header is believed
from the gateway's address only, and a forwarded-for header cannot pose as the gateway."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from .live_server import LiveServer, server_env

pytestmark = [pytest.mark.slow]

SECRET = "a-shared-secret-of-at-least-32-bytes!!"


def old_prod_block(gateway: str) -> dict[str, str]:
    return {
        "AUTH_MODE": "PROD",
        "AUTH_JWT_SECRET": SECRET,
        "AUTH_JWT_ALG": "HS256",
        "AUTH_JWT_AUDIENCE": "api://agent-council",
        "AUTH_ALLOW_X_USER_ID_IN_PROD": "false",
        "FORWARDED_ALLOW_IPS": gateway,
    }


def test_gateway_on_loopback_identifies_users(tmp_path: Path) -> None:
    env = server_env(tmp_path, None, **old_prod_block("127.0.0.1"))
    with LiveServer(tmp_path, env, workers=1) as server:
        server.start()
        status, _, body = server.request(
            "GET", "/api/me", headers={"X-Authenticated-User": "alice@corp.example"}
        )
        assert (status, body["user"]) == (200, "alice@corp.example")
        token = jwt.encode(
            {"upn": "bob@corp.example", "aud": "api://agent-council", "exp": 2_000_000_000},
            SECRET,
            algorithm="HS256",
        )
        status, _, body = server.request(
            "GET", "/api/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert (status, body["user"]) == (200, "bob@corp.example")
        status, _, _ = server.request("GET", "/api/me", headers={"X-User-Id": "mallory"})
        assert status == 401
        assert server.error_lines() == []


def test_forwarded_for_cannot_pose_as_the_gateway(tmp_path: Path) -> None:
    env = server_env(tmp_path, None, **old_prod_block("10.20.0.5"))
    with LiveServer(tmp_path, env, workers=1) as server:
        server.start()
        for extra in ({}, {"X-Forwarded-For": "10.20.0.5"}, {"X-Real-IP": "10.20.0.5"}):
            headers = {"X-Authenticated-User": "alice@corp.example", **extra}
            status, _, body = server.request("GET", "/api/me", headers=headers)
            assert status == 401, (extra, body)
            assert body["error"] == "unauthorized"
