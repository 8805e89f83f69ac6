"""Prometheus figures.  Cheap no-ops until prometheus_client is wired by the serving layer."""

from __future__ import annotations


def observe_flush(rows: int, seconds: float, ok: bool) -> None:
    """Called by the flusher after every batched write."""


def observe_run(kind: str, delta: int) -> None:
    """Called when a background run starts (+1) or ends (-1)."""
