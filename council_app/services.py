"""The per-process objects the app is made of, built once by ``create_app``."""

from __future__ import annotations

import atexit
import logging
import weakref
from dataclasses import dataclass, field

from flask import current_app

from council_app import recovery
from council_app.budget import SpendLedger
from council_app.flusher import ProgressFlusher
from council_app.providers import LLMProvider, make_provider, make_search_service
from council_app.providers.models import ModelDirectory
from council_app.providers.pricing import PriceTable
from council_app.readiness import Readiness, replay_once
from council_app.revisions import RevisionClock
from council_app.settings import Settings
from council_app.state import SessionStates
from council_app.store import build_store
from council_app.workflow.council import CouncilWorkflow

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    # State is reached through ``states`` only (the one door): the store and the flusher
    # are built in ``build_services`` and handed to it, never kept here (issue 14).
    states: SessionStates
    provider: LLMProvider
    prices: PriceTable
    workflow: CouncilWorkflow
    ledger: SpendLedger  # per-user daily spend (USER_DAILY_BUDGET_USD)
    models: ModelDirectory  # the provider's model list, cached (GET /api/models)

    def clock_next(self) -> int:
        """A fresh revision from this process's clock."""
        return self.states.next_revision()

    readiness: Readiness = field(init=False)  # start-up done? (schema, recovery replay)

    def start_background(self) -> None:
        """This process's threads: progress flusher, lease sweeper, start-up retry.  Called
        by ``create_app``, or (gunicorn) by ``post_worker_init`` in each worker."""
        self.states.start_background()
        if not self.readiness.ready:
            self.readiness.start()
        self.workflow.start_background()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Hand runs over, flush pending progress, release connections; True when nothing
        was lost."""
        self.readiness.stop()
        self.workflow.stop(timeout=min(timeout, 2.0))
        self.ledger.flush()  # spend the database refused so far: one more try
        left = self.states.stop(timeout)  # flushes, then releases connections
        for sid, write in left.items():
            # The database is still down: keep what is pending on disk for the next start.
            recovery.save(self.settings.sessions_dir, sid, progress=write)
        ok = not left
        return ok


def build_services(settings: Settings) -> Services:
    from council_app import metrics

    store = build_store(settings)
    clock = RevisionClock()
    flusher = ProgressFlusher(
        store, settings.state_flush_interval_ms / 1000, clock, on_flush=metrics.observe_flush
    )
    states = SessionStates(store, flusher, clock)
    provider = make_provider(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout_s=settings.llm_timeout_s,
        connect_timeout_s=settings.llm_connect_timeout_s,
        max_retries=settings.llm_max_retries,
        stream=settings.llm_stream,
        search=make_search_service(settings.searxng_url, settings.tavily_api_key),
        offline_latency_ms=settings.offline_latency_ms,
        offline_fail_members=frozenset(settings.offline_fail_members),
    )
    models = ModelDirectory(provider, settings.models_cache_s)
    prices = PriceTable.load(settings.prices_file)
    workflow = CouncilWorkflow(settings, states, provider, prices, metrics.observe_run)
    ledger = SpendLedger(store, settings.user_daily_budget_usd, lambda sid: _owner(states, sid))
    workflow.llm.on_cost = ledger.record_for_session
    workflow.known_model = models.is_known  # PUT /council refuses models not served
    services = Services(settings, states, provider, prices, workflow, ledger, models)
    services.readiness = Readiness(
        store.create_schema,
        lambda: replay_once(store, settings.sessions_dir),
        settings.sessions_dir,
    )
    ref = weakref.ref(services)
    atexit.register(lambda: (s := ref()) is not None and s.shutdown())
    return services


def _owner(states: SessionStates, session_id: str) -> str | None:
    row = states.meta(session_id)
    return row.user_id if row is not None else None


def services() -> Services:
    """The current app's services (background threads start with the process, not here)."""
    svc: Services = current_app.extensions["council"]
    return svc


_background_deferred = False


def defer_background_to_workers() -> None:
    """Gunicorn's master (with --preload it builds the app) must run no sweeper or
    flusher: the workers start theirs in ``post_worker_init``."""
    global _background_deferred
    _background_deferred = True


def background_deferred() -> bool:
    return _background_deferred
