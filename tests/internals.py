"""What tests reach behind the one door (``SessionStates``) for, in one place.

The app gets state through ``svc.states`` only; ``Services`` no longer exposes the store or
the flusher (issue 14).  A test that must see the database as stored (not overlaid with
this process's unflushed progress), run SQL on its engine, or hold the flusher still,
asks here, so the reach-in is named and greppable.
"""

from __future__ import annotations

from typing import Any

from council_app.flusher import ProgressFlusher
from council_app.services import Services
from council_app.state import SessionStates
from council_app.store.base import StateStore


def _states(of: Services | SessionStates) -> SessionStates:
    return of.states if isinstance(of, Services) else of


def store_of(of: Services | SessionStates) -> StateStore:
    """The store behind the door (the database as stored, no overlay)."""
    store: StateStore = _states(of)._store
    return store


def flusher_of(of: Services | SessionStates) -> ProgressFlusher:
    """The progress flusher behind the door."""
    flusher: ProgressFlusher = _states(of)._flusher
    return flusher


def stored_hot(of: Services | SessionStates, session_id: str) -> dict[str, Any]:
    """The hot keys as the database holds them (after a flush: what landed)."""
    found = store_of(of).load_hot(session_id)
    assert found is not None, f"{session_id} is not stored"
    return found[1]
