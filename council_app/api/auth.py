"""Who is calling, by ``AUTH_MODE``:

* ``dev``: ``X-User-Id`` is believed (else ``dev-user@localhost``); local use only.
* ``token``: ``Authorization: Bearer`` checked against the configured token digests.
* ``proxy``: an SSO gateway's header (``X-Authenticated-User``), believed only when the
  connection comes from a trusted proxy address; from anywhere else the request is 401.
* ``jwt``: ``Authorization: Bearer <JWT>`` verified with a secret, a public key or JWKS.
* ``prod``: the old server's ``AUTH_MODE=PROD``: the gateway header from a trusted proxy,
  else a JWT, else (``AUTH_ALLOW_X_USER_ID_IN_PROD``) ``X-User-Id`` from a trusted proxy.

The identity is the header value or token claim as sent (an e-mail or UPN): the same owner
the migration carries over from the old database's ``users.external_id``.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from functools import lru_cache

from flask import current_app, request

from council_app.api.errors import ApiError
from council_app.api.jwt_verify import JwtVerifier, KeysUnavailable, TokenRejected
from council_app.services import services
from council_app.settings import DEV_USER, Settings, hash_token

MAX_USER_ID = 320  # sessions.user_id
_verifier_lock = threading.Lock()


def current_user() -> str:
    settings = services().settings
    mode = settings.auth_mode
    if mode == "dev":
        user = (request.headers.get("X-User-Id") or "").strip()
        if len(user) > MAX_USER_ID:
            raise ApiError(400, "bad_request", f"X-User-Id is over {MAX_USER_ID} characters")
        return user or DEV_USER
    if mode == "token":
        return _token_user(settings)
    if mode == "proxy":
        gateway_user = _header_user(settings, settings.auth_proxy_header)
        if gateway_user is None:
            raise _unauthorized(f"No {settings.auth_proxy_header} header from the SSO gateway")
        return gateway_user
    if mode == "jwt":
        return _jwt_user(_bearer(), settings)
    return _prod_user(settings)


def _prod_user(settings: Settings) -> str:
    user = _header_user(settings, settings.auth_proxy_header)
    if user is not None:
        return user
    verifier = _verifier(settings)
    token = _bearer(required=False)
    if token is not None and verifier.configured:
        return _jwt_user(token, settings)
    if settings.auth_allow_x_user_id:
        user = _header_user(settings, "X-User-Id")
        if user is not None:
            return user
    raise _unauthorized(
        f"Sign in through the SSO gateway ({settings.auth_proxy_header})"
        + (" or send 'Authorization: Bearer <JWT>'" if verifier.configured else "")
    )


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def _bearer(required: bool = True) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if not required:
            return None
        raise _unauthorized("Send 'Authorization: Bearer <token>'")
    return token.strip()


def _token_user(settings: Settings) -> str:
    token = _bearer()
    assert token is not None
    digest = hash_token(token)
    # Compare against every configured digest, each in constant time, without stopping early.
    matched = None
    for user, known in settings.auth_tokens:
        if hmac.compare_digest(digest, known):
            matched = user
    if matched is None:
        raise _unauthorized("The bearer token is not valid")
    return matched


def _jwt_user(token: str | None, settings: Settings) -> str:
    assert token is not None
    try:
        return _valid_user(_verifier(settings).identify(token), "The token's user claim")
    except TokenRejected as e:
        raise _unauthorized(str(e)) from None
    except KeysUnavailable:
        raise ApiError(
            503,
            "auth_unavailable",
            "The identity provider's keys cannot be fetched right now; try again shortly",
        ) from None


def _verifier(settings: Settings) -> JwtVerifier:
    """One per app: it holds the JWKS cache."""
    ext = current_app.extensions
    verifier: JwtVerifier | None = ext.get("council_jwt")
    if verifier is None:
        with _verifier_lock:
            verifier = ext.get("council_jwt")
            if verifier is None:
                verifier = ext["council_jwt"] = JwtVerifier(settings)
    return verifier


def _header_user(settings: Settings, header: str) -> str | None:
    """The header's user when present; a present header from an untrusted address is a
    forgery attempt (or a misconfigured proxy list) and is refused, not ignored."""
    raw = request.headers.get(header)
    if raw is None:
        return None
    if not is_trusted_proxy(request.remote_addr, settings.auth_trusted_proxies):
        raise _unauthorized(
            f"{header} is only accepted from the SSO gateway (AUTH_TRUSTED_PROXIES / "
            "FORWARDED_ALLOW_IPS)"
        )
    if not raw.strip():
        return None
    return _valid_user(raw, header)


def _valid_user(raw: str, source: str) -> str:
    user = raw.strip()
    if len(user) > MAX_USER_ID or not user.isprintable():
        raise _unauthorized(f"{source} is not a usable user name")
    return user


def is_trusted_proxy(address: str | None, trusted: tuple[str, ...]) -> bool:
    """Whether a peer address is one of the trusted proxies.  A request with no peer
    address (gunicorn on a UNIX socket) is trusted only when the list names ``unix``."""
    if not address:
        return "unix" in trusted
    if "*" in trusted:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(trusted))


@lru_cache(maxsize=16)
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in trusted if t not in ("*", "unix"))


# -- operations endpoints ------------------------------------------------------------------


def ops_restricted() -> bool:
    settings = services().settings
    return bool(settings.ops_token_hash or settings.ops_bind)


def ops_allowed() -> bool:
    """May this request see /metrics and the detailed health body?  Always, unless
    OPS_TOKEN or OPS_BIND is set; then with that token, or over the OPS_BIND listener."""
    settings = services().settings
    if not ops_restricted():
        return True
    if settings.ops_token_hash:
        token = _bearer(required=False) or request.headers.get("X-Ops-Token", "").strip()
        if token and hmac.compare_digest(hash_token(token), settings.ops_token_hash):
            return True
    if settings.ops_bind:
        return _local_port() == int(settings.ops_bind.rpartition(":")[2])
    return False


def _local_port() -> int | None:
    """The port the connection arrived on: from the socket under gunicorn (a Host header
    cannot fake it), else the server's SERVER_PORT."""
    sock = request.environ.get("gunicorn.socket")
    try:
        if sock is not None:
            return int(sock.getsockname()[1])
        return int(request.environ.get("SERVER_PORT", ""))
    except (OSError, ValueError, TypeError, IndexError):
        return None
