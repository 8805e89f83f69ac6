"""A store that wraps another one (Kinto style): behaviour added around any backend.

``StoreDecorator`` hands every ``StateStore`` method it does not override to the wrapped
store, including methods added to the interface later (they are delegated by name when
this module is imported), and any other attribute (``engine``, backend-specific helpers)
through ``__getattr__``.  A decorator then overrides only what it changes, so taking it
out of ``build_store`` removes its behaviour and nothing else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from council_app.store.base import StateStore


class StoreDecorator(StateStore):
    """Everything goes to ``inner`` unless a subclass says otherwise."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.backend = inner.backend

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this object lacks: backend-specific ones.
        if name == "inner":  # not set yet (during unpickling, say): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: StoreDecorator, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"StoreDecorator.{name}"
    method.__doc__ = getattr(StateStore, name).__doc__
    return method


for _name, _value in inspect.getmembers(StateStore, inspect.isfunction):
    if not _name.startswith("_") and _name not in StoreDecorator.__dict__:
        setattr(StoreDecorator, _name, _delegate(_name))
# Every abstract method now has a delegate.
StoreDecorator.__abstractmethods__ = frozenset()


def unwrap(store: StateStore) -> StateStore:
    """The backend under any number of decorators."""
    while isinstance(store, StoreDecorator):
        store = store.inner
    return store
