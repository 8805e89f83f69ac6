"""One LLM call as the workflow makes it: priced into the run's meter, logged per session."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from council_app.providers import Completion, LLMProvider, ProviderError
from council_app.providers.base import OnDelta
from council_app.providers.pricing import PriceTable
from council_app.session_ids import session_dir
from council_app.workflow.costs import CostMeter
from council_app.workflow.session_log import SessionLog
from council_app.workflow.storable import scrub, storable_completion

log = logging.getLogger(__name__)


class LlmCalls:
    def __init__(self, provider: LLMProvider, prices: PriceTable, sessions_root: Path) -> None:
        self.provider = provider
        self.prices = prices
        self.sessions_root = sessions_root
        # (session id, USD) after every priced call: the owner's daily spend (budget.py).
        self.on_cost: Callable[[str, float], None] | None = None

    def call(
        self,
        sid: str,
        step: str,
        agent: str,
        messages: list[dict[str, str]],
        model: str,
        meter: CostMeter,
        *,
        reasoning_effort: str | None = None,
        json_mode: bool = False,
        web_search: bool = False,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """One LLM call: cost added to the meter and one line in the session's log.

        ``cancel``/``deadline`` (monotonic) reach the provider, which stops at its next
        chunk or retry; ``on_delta`` receives the text streamed so far.
        """
        started = time.perf_counter()
        entry: dict[str, Any] = {"step": step, "agent": agent, "model": model, "prompt": messages}
        try:
            completion = self.provider.complete(
                messages,
                model=model,
                task=step,
                reasoning_effort=reasoning_effort,
                json_mode=json_mode,
                web_search=web_search,
                on_delta=None if on_delta is None else (lambda text: on_delta(scrub(text))),
                cancel=cancel,
                deadline=deadline,
            )
        except ProviderError as e:
            # Same keys as a successful call, so log readers need no special case.
            entry.update(
                provider=self.provider.name,
                input_tokens=0,
                output_tokens=0,
                cost_usd=0.0,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                error=str(e),
                response=None,
                retries=e.retries,  # each failed attempt: reason and wait before the next
            )
            self._log(sid, entry)
            raise
        # Paid for: a NUL or lone surrogate in it must not make it unstorable (422 is for
        # clients; this answer is kept with U+FFFD in their place).
        completion = storable_completion(completion)
        # The gateway's own figure first, else tokens x listed price; None when unknown.
        cost = self.prices.cost_of(completion)
        meter.add(step, agent, completion.input_tokens, completion.output_tokens, cost)
        if self.on_cost is not None and cost is not None:  # unknown adds nothing
            try:
                self.on_cost(sid, cost)
            except Exception:  # the answer is paid for: never lose it to the spend ledger
                log.exception("Could not record the spend of %s", sid)
        entry.update(
            provider=completion.provider,
            model=completion.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cost_usd=cost,
            cost_known=cost is not None,
            usage_known=completion.usage_known,
            gateway_cost_usd=completion.gateway_cost_usd,
            duration_ms=round(completion.duration_ms, 1),
            error=None,
            response=completion.text,
            web_search=web_search,
            tools_used=completion.tools_used,
            citations=completion.citations,
            retries=completion.retries,
            dropped_params=list(completion.dropped_params),
        )
        self._log(sid, entry)
        return completion

    def _log(self, sid: str, entry: dict[str, Any]) -> None:
        folder = session_dir(self.sessions_root, sid)
        if not folder.is_dir():
            # Hard-deleted meanwhile (or never created here): never recreate the folder
            # with the prompts in it.
            log.info("No folder for %s: its LLM call is not logged", sid)
            return
        try:
            SessionLog(folder).append(entry)
        except OSError as e:
            log.warning("Could not append to the log of %s: %s", sid, e)
