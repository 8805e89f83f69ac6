"""Agent Council Server: a council of AI personas answers, reviews, and a chairman decides."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from council_app.settings import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app.  Settings come from the environment, read here and only here;
    ``test_config`` overrides fields of ``Settings`` by name."""
    from council_app.api import errors, health, me, models, sessions
    from council_app.jsonio import OrjsonProvider
    from council_app.logging_setup import configure_logging
    from council_app.services import background_deferred, build_services

    settings: Settings = load_settings()
    if test_config:
        settings = dataclasses.replace(settings, **dict(test_config))
    configure_logging(settings.log_format)

    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length_mb * 1024 * 1024
    app.config["COUNCIL_SETTINGS"] = settings

    svc = build_services(settings)
    # Schema and recovery replay; during an outage the app still starts (503 until the
    # database answers; the retry thread finishes start-up then).
    svc.readiness.try_now()
    app.extensions["council"] = svc
    if not background_deferred():
        svc.start_background()

    errors.register_error_handlers(app)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(me.bp)
    app.register_blueprint(models.bp)
    _register_web(app)
    _register_cors(app, settings)
    _register_serving(app, settings)

    @app.before_request
    def _until_started() -> None:
        """Before start-up completed (database down at boot): 503, except health."""
        if svc.readiness.ready:
            return  # (the start-up retry thread is what gets it there)
        from flask import request

        from council_app.store import StoreUnavailable

        if request.path.startswith("/api/") and not request.path.startswith("/api/health"):
            raise StoreUnavailable(f"starting: {svc.readiness.last_error or 'database'}")

    @app.after_request
    def _security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    log.info(
        "Agent Council Server ready: backend=%s provider=%s",
        svc.states.backend,
        svc.provider.name,
    )
    return app


def _register_web(app: Flask) -> None:
    try:
        from council_app import web
    except ImportError:
        return
    app.register_blueprint(web.bp)


def _register_cors(app: Flask, settings: Settings) -> None:
    if not settings.cors_origins:
        return
    from flask import Response, request
    from flask_cors import CORS

    hooks = app.after_request_funcs.setdefault(None, [])
    before = list(hooks)
    CORS(
        app,
        resources={r"/api/*": {"origins": list(settings.cors_origins)}},
        methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization", "X-User-Id"],
        max_age=600,
    )
    # flask-cors looks at every response; only a browser's cross-origin request carries an
    # Origin header, and nothing else needs CORS headers.  Its hook runs only for those:
    # a poll from curl, a script or a same-origin page (most of /status) skips it.
    for i, hook in enumerate(hooks):
        if hook not in before:

            def when_cross_origin(response: Response, cors: Any = hook) -> Response:
                return cors(response) if "HTTP_ORIGIN" in request.environ else response

            hooks[i] = when_cross_origin


def _register_serving(app: Flask, settings: Settings) -> None:
    """Request ids and log context, /metrics with request timing, /api/openapi.json, and
    the opt-in progress endpoint (PROGRESS_API=1)."""
    from council_app import metrics
    from council_app.api import contract, docs, progress
    from council_app.api import metrics as metrics_api
    from council_app.logging_setup import init_request_context

    init_request_context(app)
    metrics.init_app(app)
    app.register_blueprint(metrics_api.bp)
    app.register_blueprint(contract.bp)
    app.register_blueprint(docs.bp)
    if settings.progress_api:
        app.register_blueprint(progress.bp)
