"""Bearer JWTs from an SSO provider: signature, ``exp``/``nbf``/``aud``/``iss``, identity claim.

Keys come from ``AUTH_JWT_SECRET`` (HS*), ``AUTH_JWT_PUBLIC_KEY`` (RS*/ES*/PS*) or a JWKS
URL as Entra ID, Okta, Auth0 and Keycloak publish them.  The key family is chosen by the
token's ``alg`` and only among the configured algorithms, so a public key can never be
used as an HMAC secret (the classic algorithm-confusion forgery).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError

from council_app.settings import Settings

log = logging.getLogger(__name__)

JWKS_TIMEOUT_S = 5.0


class TokenRejected(Exception):
    """The token does not identify anyone; the message says why (safe to show)."""


class KeysUnavailable(Exception):
    """The JWKS endpoint cannot be reached: nobody can be verified right now (503)."""


class RotatingJwks(PyJWKClient):
    """PyJWKClient whose refetch for an unknown ``kid`` happens at most once per
    ``min_refresh_s``: a key rotated in is found on its first use, and a flood of tokens
    with made-up kids cannot turn into a flood of requests to the identity provider."""

    def __init__(self, url: str, lifespan_s: float, min_refresh_s: float) -> None:
        super().__init__(url, cache_jwk_set=True, lifespan=lifespan_s, timeout=JWKS_TIMEOUT_S)
        self.min_refresh_s = min_refresh_s
        self._last_forced = -math.inf
        self._refresh_lock = threading.Lock()
        self.fetches = 0  # for tests and logs: how often the endpoint was asked

    def fetch_data(self) -> Any:
        self.fetches += 1
        return super().fetch_data()

    def get_signing_key(self, kid: str) -> PyJWK:
        key = self.match_kid(self.get_signing_keys(), kid)
        if key is None:
            with self._refresh_lock:
                key = self.match_kid(self.get_signing_keys(), kid)  # another thread's refetch
                now = time.monotonic()
                if key is None and now - self._last_forced >= self.min_refresh_s:
                    self._last_forced = now
                    key = self.match_kid(self.get_signing_keys(refresh=True), kid)
        if key is None:
            raise PyJWKClientError(f"no key with kid {kid!r} in the JWKS")
        return key


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.algorithms = settings.auth_jwt_algorithms
        self.jwks = (
            RotatingJwks(
                settings.auth_jwks_url,
                settings.auth_jwks_cache_s,
                settings.auth_jwks_min_refresh_s,
            )
            if settings.auth_jwks_url
            else None
        )
        if not settings.auth_jwt_audience:
            log.warning("AUTH_JWT_AUDIENCE is unset: JWTs are accepted whatever their audience")

    @property
    def configured(self) -> bool:
        return bool(self.algorithms)

    def identify(self, token: str) -> str:
        """The user a valid token names; ``TokenRejected`` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRejected("The bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenRejected(f"Tokens signed with {alg!r} are not accepted")
        key = self._key(token, str(alg))
        s = self.settings
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=list(s.auth_jwt_audience) or None,
                issuer=s.auth_jwt_issuer,
                leeway=s.auth_jwt_leeway_s,
                options={"require": ["exp"], "verify_aud": bool(s.auth_jwt_audience)},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("The token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("The token is not valid yet (nbf/iat)") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("The token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("The token comes from another issuer") from None
        except jwt.MissingRequiredClaimError as e:
            raise TokenRejected(f"The token has no '{e.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("The token's signature does not verify") from None
        except jwt.InvalidTokenError as e:
            raise TokenRejected(f"The token is not valid ({type(e).__name__})") from None
        return self._user(claims)

    def _key(self, token: str, alg: str) -> Any:
        s = self.settings
        if alg.startswith("HS"):
            return s.auth_jwt_secret
        if self.jwks is not None:
            try:
                return self.jwks.get_signing_key_from_jwt(token).key
            except PyJWKClientConnectionError as e:
                log.warning("JWKS endpoint unreachable: %s", e)
                raise KeysUnavailable(str(e)) from None
            except (PyJWKClientError, jwt.InvalidTokenError) as e:
                raise TokenRejected(f"The token's signing key is unknown ({e})") from None
        return s.auth_jwt_public_key

    def _user(self, claims: dict[str, Any]) -> str:
        for name in self.settings.auth_user_claims:
            value = claims.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
        raise TokenRejected(
            f"The token names no user (none of {', '.join(self.settings.auth_user_claims)})"
        )
