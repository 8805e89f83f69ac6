"""AUTH_MODE=jwt: tokens signed with keys made here, checked for signature, exp, nbf, aud,
iss and alg; keys from a public key or from a loopback JWKS endpoint that rotates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from flask.testing import FlaskClient

from council_app.settings import ConfigError
from tests.api.api_helpers import assert_error, built_app, create
from tests.api.auth_helpers import (
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    JwksServer,
    SigningKey,
    bearer,
    claims,
    settings_from,
)

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib (PyJWKClient) would send the JWKS request to a proxy from the environment."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("RS256", "rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ES256", "ec-1")


def jwt_env(**extra: str) -> dict[str, str]:
    return {
        "AUTH_MODE": "jwt",
        "AUTH_JWT_AUDIENCE": AUDIENCE,
        "AUTH_JWT_ISSUER": ISSUER,
        **extra,
    }


@pytest.fixture
def pem_client(tmp_path: Path, rsa_key: SigningKey) -> Iterator[FlaskClient]:
    env = jwt_env(AUTH_JWT_PUBLIC_KEY=rsa_key.public_pem(), AUTH_JWT_ALG="RS256")
    with built_app(settings_from(env, tmp_path)) as app:
        yield app.test_client()


def me(client: FlaskClient, token: str) -> str:
    r = client.get("/api/me", headers=bearer(token))
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json["user"]


def test_rs256_token_identifies_its_user_and_owns_sessions(
    pem_client: FlaskClient, rsa_key: SigningKey
) -> None:
    alice = rsa_key.sign(claims("alice@example.com"))
    bob = rsa_key.sign(claims("bob@example.com"))
    assert me(pem_client, alice) == "alice@example.com"
    sid = create(pem_client, headers=bearer(alice))
    assert pem_client.get(f"/api/sessions/{sid}/status", headers=bearer(alice)).status_code == 200
    assert_error(pem_client.get(f"/api/sessions/{sid}/status", headers=bearer(bob)), 404)
    listed = pem_client.get("/api/sessions", headers=bearer(bob)).json["sessions"]
    assert listed == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "api://some-other-app"}, "another audience"),
        ({"iss": "https://evil.example.com/"}, "another issuer"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"exp": None}, "'exp'"),
        ({"preferred_username": None, "sub": None}, "names no user"),
    ],
)
def test_bad_claims_are_401(
    pem_client: FlaskClient, rsa_key: SigningKey, change: dict, needle: str
) -> None:
    token = rsa_key.sign(claims(**change))
    body = assert_error(pem_client.get("/api/me", headers=bearer(token)), 401, "unauthorized")
    assert needle in body["message"]


def test_small_clock_skew_is_tolerated(pem_client: FlaskClient, rsa_key: SigningKey) -> None:
    now = int(time.time())
    # Expired 10 s ago and valid from 10 s on: within the default 30 s leeway.
    token = rsa_key.sign(claims(exp=now - 10, nbf=now + 10, iat=now + 10))
    assert me(pem_client, token) == "alice@example.com"
    late = rsa_key.sign(claims(exp=now - 60))
    assert_error(pem_client.get("/api/me", headers=bearer(late)), 401)


def test_forged_and_confused_tokens_are_401(pem_client: FlaskClient, rsa_key: SigningKey) -> None:
    other = SigningKey("RS256", "rsa-1")  # same kid, another key
    forged = other.sign(claims())
    unsigned = jwt.encode(claims(), None, algorithm="none")
    # The classic confusion: HS256 with the server's public key as the HMAC secret.
    pem = rsa_key.public_pem().encode()
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims()).encode())
    import hashlib
    import hmac

    signature = hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()
    confused = (header + b"." + payload + b"." + jwt.utils.base64url_encode(signature)).decode()
    for token in (forged, unsigned, confused, "not-a-jwt", forged + "x"):
        assert_error(pem_client.get("/api/me", headers=bearer(token)), 401, "unauthorized")
    assert_error(pem_client.get("/api/me"), 401)
    assert_error(pem_client.get("/api/me", headers={"X-User-Id": "alice"}), 401)


def test_claim_order_and_configured_claim(tmp_path: Path) -> None:
    env = jwt_env(AUTH_JWT_SECRET=HS_SECRET)
    with built_app(settings_from(env, tmp_path)) as app:
        client = app.test_client()

        def sign(**kw: object) -> str:
            return jwt.encode(claims(**kw), HS_SECRET, algorithm="HS256")

        assert me(client, sign()) == "alice@example.com"
        assert me(client, sign(preferred_username=None, upn="Alice@Corp.example")) == (
            "Alice@Corp.example"
        )
        assert me(client, sign(preferred_username=None, email="a@x.example")) == "a@x.example"
        assert me(client, sign(preferred_username=None)) == "00000000-aaaa-bbbb-cccc-000000000001"
    env["AUTH_USER_CLAIMS"] = "email"
    with built_app(settings_from(env, tmp_path / "2")) as app:
        client = app.test_client()
        token = jwt.encode(claims(email="e@x.example"), HS_SECRET, algorithm="HS256")
        assert me(client, token) == "e@x.example"
        assert_error(
            client.get(
                "/api/me", headers=bearer(jwt.encode(claims(), HS_SECRET, algorithm="HS256"))
            ),
            401,
        )


def test_jwks_keys_rotate_and_unknown_kids_refetch_once(
    tmp_path: Path, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    with JwksServer([rsa_key]) as idp:
        env = jwt_env(AUTH_JWKS_URL=idp.url, AUTH_JWKS_MIN_REFRESH_S="0")
        with built_app(settings_from(env, tmp_path)) as app:
            client = app.test_client()
            for _ in range(5):
                assert me(client, rsa_key.sign(claims())) == "alice@example.com"
            assert idp.requests == 1  # cached

            # The provider rotates to an EC key: the first token with the new kid fetches once.
            idp.keys = [ec_key]
            assert me(client, ec_key.sign(claims("bob@example.com"))) == "bob@example.com"
            assert idp.requests == 2
            for _ in range(3):
                assert me(client, ec_key.sign(claims("bob@example.com"))) == "bob@example.com"
            assert idp.requests == 2
            # The retired key is gone from the fetched set.
            assert_error(client.get("/api/me", headers=bearer(rsa_key.sign(claims()))), 401)


def test_made_up_kids_cannot_flood_the_identity_provider(
    tmp_path: Path, rsa_key: SigningKey
) -> None:
    with JwksServer([rsa_key]) as idp:
        env = jwt_env(AUTH_JWKS_URL=idp.url, AUTH_JWKS_MIN_REFRESH_S="3600")
        with built_app(settings_from(env, tmp_path)) as app:
            client = app.test_client()
            assert me(client, rsa_key.sign(claims())) == "alice@example.com"
            for i in range(20):
                token = rsa_key.sign(claims(), kid=f"made-up-{i}")
                body = assert_error(client.get("/api/me", headers=bearer(token)), 401)
                assert "signing key is unknown" in body["message"]
            # One initial fetch, one refetch for the first unknown kid, then the cooldown.
            assert idp.requests == 2


def test_jwks_outage_is_503_while_cached_keys_keep_working(
    tmp_path: Path, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    idp = JwksServer([rsa_key]).__enter__()
    env = jwt_env(AUTH_JWKS_URL=idp.url, AUTH_JWKS_MIN_REFRESH_S="0")
    with built_app(settings_from(env, tmp_path)) as app:
        client = app.test_client()
        assert me(client, rsa_key.sign(claims())) == "alice@example.com"
        idp.stop()
        assert me(client, rsa_key.sign(claims())) == "alice@example.com"  # from the cache
        body = assert_error(client.get("/api/me", headers=bearer(ec_key.sign(claims()))), 503)
        assert body["error"] == "auth_unavailable"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AUTH_MODE": "jwt"}, "AUTH_MODE=jwt needs AUTH_JWKS_URL"),
        ({"AUTH_MODE": "jwt", "AUTH_JWT_ALG": "none", "AUTH_JWT_SECRET": "s"}, "AUTH_JWT_ALG"),
        ({"AUTH_MODE": "jwt", "AUTH_JWT_ALG": "RS256", "AUTH_JWT_SECRET": "s"}, "RS256 needs"),
        (
            {"AUTH_MODE": "jwt", "AUTH_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\\nxx"},
            "AUTH_JWT_PUBLIC_KEY is not a public key",
        ),
        ({"AUTH_MODE": "jwt", "AUTH_JWKS_URL": "file:///etc/passwd"}, "AUTH_JWKS_URL"),
        ({"AUTH_MODE": "proxy", "FORWARDED_ALLOW_IPS": "gateway"}, "FORWARDED_ALLOW_IPS"),
        ({"USER_DAILY_BUDGET_USD": "lots"}, "USER_DAILY_BUDGET_USD"),
        ({"OPS_BIND": "9100"}, "OPS_BIND"),
    ],
)
def test_unusable_identity_settings_stop_startup(
    env: dict[str, str], needle: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(env, tmp_path)
    assert needle in str(info.value)


def test_public_key_from_a_file_and_escaped_newlines(tmp_path: Path, ec_key: SigningKey) -> None:
    path = tmp_path / "idp.pem"
    path.write_text(ec_key.public_pem())
    for value in (str(path), ec_key.public_pem().replace("\n", "\\n")):
        env = jwt_env(AUTH_JWT_PUBLIC_KEY=value, AUTH_JWT_ALG="ES256")
        settings = settings_from(env, tmp_path)
        with built_app(settings) as app:
            assert me(app.test_client(), ec_key.sign(claims())) == "alice@example.com"
