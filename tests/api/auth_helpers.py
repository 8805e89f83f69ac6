"""Keys made in the test, tokens signed with them, and a loopback JWKS endpoint that rotates."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from council_app.settings import Settings, load_settings

AUDIENCE = "api://agent-council"
ISSUER = "https://login.example.com/tenant/v2.0"
HS_SECRET = "a-shared-secret-of-at-least-32-bytes!!"


def settings_from(env: dict[str, str], tmp_path: Path) -> Settings:
    """Settings the way production reads them: from an environment block."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return load_settings(
        {
            **env,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'agent_council.db'}",
            "SESSIONS_DIR": str(tmp_path / "sessions"),
        }
    )


class SigningKey:
    """A private key made here; ``jwk`` is its public half as an identity provider lists it."""

    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        if kind == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.alg = kind
        self.jwk.update(kid=kid, use="sig", alg=kind)

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header}
        )


def claims(user: str = "alice@example.com", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "preferred_username": user,
        "sub": "00000000-aaaa-bbbb-cccc-000000000001",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class JwksServer:
    """Serves ``keys`` at /keys on 127.0.0.1; assign ``keys`` to rotate; counts requests."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = keys
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps({"keys": [k.jwk for k in outer.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
