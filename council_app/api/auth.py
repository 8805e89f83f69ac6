"""Who is calling: dev mode trusts X-User-Id; token mode checks a bearer token."""

from __future__ import annotations

import hmac

from flask import request

from council_app.api.errors import ApiError
from council_app.services import services
from council_app.settings import DEV_USER, hash_token

MAX_USER_ID = 320


def current_user() -> str:
    settings = services().settings
    if settings.auth_mode == "dev":
        user = (request.headers.get("X-User-Id") or "").strip()
        if len(user) > MAX_USER_ID:
            raise ApiError(400, "bad_request", f"X-User-Id is over {MAX_USER_ID} characters")
        return user or DEV_USER
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <token>'")
    digest = hash_token(token.strip())
    # Compare against every configured digest, each in constant time, without stopping early.
    matched = None
    for user, known in settings.auth_tokens:
        if hmac.compare_digest(digest, known):
            matched = user
    if matched is None:
        raise ApiError(401, "unauthorized", "The bearer token is not valid")
    return matched
