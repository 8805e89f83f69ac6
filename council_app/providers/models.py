"""The models the configured provider serves, asked once and kept a few minutes.

``GET /api/models`` shows the list (the UI picks from it) and ``PUT /council`` refuses a
model that is not on it, but only while a list is actually available: a gateway without
``GET /models`` (or one that is down) never blocks editing a council.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import catalog
from .base import LLMProvider, ProviderError

log = logging.getLogger(__name__)

_RETRY_FAILED_AFTER_S = 30.0  # a failed listing is asked again this soon, not after the TTL


@dataclass(frozen=True)
class ModelList:
    models: list[str] | None  # None: the provider could not say
    fetched_at: str
    source: str  # "provider" | "offline" | "unavailable"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "available": self.models is not None,
            "fetched_at": self.fetched_at,
            "source": self.source,
            "error": self.error,
        }


class ModelDirectory:
    """Caches ``provider.list_models()`` for ``ttl_s`` seconds (thread-safe)."""

    def __init__(self, provider: LLMProvider, ttl_s: float = 300.0) -> None:
        self.provider = provider
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, ModelList] | None = None

    def current(self, refresh: bool = False) -> ModelList:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and not refresh:
                at, found = self._cached
                ttl = self.ttl_s if found.models is not None else _RETRY_FAILED_AFTER_S
                if now - at < ttl:
                    return found
            found = self._fetch()
            self._cached = (now, found)
            return found

    def is_known(self, model: str) -> bool | None:
        """True/False when the provider lists its models; None when no list is available."""
        found = self.current()
        if found.models is None:
            return None
        return model in found.models

    def _fetch(self) -> ModelList:
        stamp = datetime.now(UTC).isoformat()
        lister = getattr(self.provider, "list_models", None)
        if self.provider.name == "offline" or not callable(lister):
            # The stand-in answers to any model name: nothing to refuse.
            return ModelList(None, stamp, "offline")
        try:
            models = lister()
        except ProviderError as e:
            log.warning("Cannot list the provider's models: %s", e)
            return ModelList(None, stamp, "unavailable", str(e))
        # An endpoint such as OpenAI's also lists embedding, speech and image models, which
        # cannot answer a council question: not offered, and refused at PUT /council.
        return ModelList([m for m in models if catalog.can_chat(m)], stamp, "provider")
