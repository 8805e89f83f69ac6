"""A client-side deadline for every wait on PostgreSQL, so a hung server cannot hang us.

``statement_timeout`` only helps while the server still answers.  When it stops answering
with TCP still up (a stopped process, a black-holing network, a stuck PgBouncer), libpq
waits forever: keepalives are answered by the kernel, and ``connect_timeout`` only covers
connecting.  psycopg2's wait callback (its "green" mode) lets Python do every wait itself,
with ``poll()``; this one gives up at a deadline, shuts the socket so the connection is
known dead (SQLAlchemy then invalidates it instead of pooling it), and raises
``OperationalError`` naming the limit.

The callback is process-wide (psycopg2 allows one); connections that are not
``DeadlineConnection`` (other engines, tools) wait without a deadline, as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
from typing import Any

import psycopg2
import psycopg2.extensions as ext


class DeadlineExceeded(psycopg2.OperationalError):  # type: ignore[misc]  # no stubs
    """PostgreSQL gave no answer within the deadline; the connection was closed."""


class DeadlineConnection(ext.connection):  # type: ignore[misc]  # no stubs
    """A psycopg2 connection that gives up waiting.  Limits are class attributes (the
    callback runs inside ``__init__`` while connecting); ``answer_timeout_s`` may be
    overridden per connection, None meaning no limit (long migration batches)."""

    connect_timeout_s: float = 2.0
    answer_timeout_s: float | None = 5.0


def connection_class(connect_timeout_s: float, answer_timeout_s: float) -> type[Any]:
    """A ``DeadlineConnection`` subclass with these limits, for ``connection_factory``."""
    return type(
        "BoundedConnection",
        (DeadlineConnection,),
        {"connect_timeout_s": connect_timeout_s, "answer_timeout_s": answer_timeout_s},
    )


def wait_with_deadline(conn: Any) -> None:
    """psycopg2 wait callback: like ``psycopg2.extras.wait_select``, with a deadline."""
    limit: float | None = None
    what = "answering"
    if isinstance(conn, DeadlineConnection):
        connecting = conn.status == ext.STATUS_SETUP
        limit = conn.connect_timeout_s if connecting else conn.answer_timeout_s
        what = "connecting" if connecting else "answering"
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        try:
            state = conn.poll()
            if state == ext.POLL_OK:
                return
            if state == ext.POLL_READ:
                events = select.POLLIN
            elif state == ext.POLL_WRITE:
                events = select.POLLOUT
            else:
                raise psycopg2.OperationalError(f"unexpected poll state {state}")
            poller = select.poll()
            poller.register(conn.fileno(), events)
            if deadline is None:
                poller.poll()
                continue
            remaining = deadline - time.monotonic()
            if remaining > 0 and poller.poll(remaining * 1000):
                continue
            if time.monotonic() < deadline:
                continue
        except KeyboardInterrupt:
            conn.cancel()
            continue
        _abandon(conn)
        raise DeadlineExceeded(f"PostgreSQL did not finish {what} within {limit:g} s")


def _abandon(conn: Any) -> None:
    """Shut the socket and let libpq notice, so the connection reads as closed."""
    with contextlib.suppress(OSError, ValueError):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
    with contextlib.suppress(psycopg2.Error):
        conn.poll()


def install() -> None:
    """Make psycopg2 call ``wait_with_deadline`` for every wait in this process."""
    if ext.get_wait_callback() is not wait_with_deadline:
        ext.set_wait_callback(wait_with_deadline)
