"""/api/me: who the server thinks you are, and what you spent today against your budget."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from council_app.api.auth import current_user
from council_app.api.contract import operation
from council_app.api.schemas import Me
from council_app.services import services

bp = Blueprint("me", __name__, url_prefix="/api")


@bp.get("/me")
@operation(
    "The caller's identity and spend today (UTC) against the daily budget",
    ok=Me,
    errors=(401, 503),
)
def me() -> Response:
    user = current_user()
    svc = services()
    spend = svc.ledger.today(user)
    return jsonify(
        {
            "user": user,
            "auth_mode": svc.settings.auth_mode,
            "day": spend.day.isoformat(),
            "spent_today_usd": spend.spent_usd,
            "daily_budget_usd": spend.budget_usd,
            "remaining_usd": spend.remaining_usd,
            "resets_at": spend.resets_at.isoformat().replace("+00:00", "Z"),
        }
    )
