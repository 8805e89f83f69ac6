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

    # The interface's abstract methods, spelled out so that type checkers see a concrete
    # class; any other method of the interface is delegated by the loop below.

    def create_schema(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.create_schema(*args, **kwargs)

    def create_session(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.create_session(*args, **kwargs)

    def get_session(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get_session(*args, **kwargs)

    def list_sessions(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.list_sessions(*args, **kwargs)

    def running_sessions(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.running_sessions(*args, **kwargs)

    def load(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.load(*args, **kwargs)

    def load_hot(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.load_hot(*args, **kwargs)

    def write_state(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.write_state(*args, **kwargs)

    def write_progress(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.write_progress(*args, **kwargs)

    def put_member(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.put_member(*args, **kwargs)

    def run_members(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.run_members(*args, **kwargs)

    def drop_members(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.drop_members(*args, **kwargs)

    def mark_deleted(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.mark_deleted(*args, **kwargs)

    def ping(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.ping(*args, **kwargs)

    def add_spend(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.add_spend(*args, **kwargs)

    def spend_on(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.spend_on(*args, **kwargs)

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
