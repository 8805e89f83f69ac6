"""The hang breaker: opened only by a silent server, fails fast while open, then lets one
probe through at a time (no database needed: the errors are the driver's own types)."""

from __future__ import annotations

import threading

import pytest

from council_app.store import StoreUnavailable
from council_app.store.pg_deadline import DeadlineExceeded
from council_app.store.pg_hang import HangBreaker


def hang() -> None:
    try:
        raise DeadlineExceeded("PostgreSQL did not finish answering within 4 s")
    except DeadlineExceeded as e:
        raise StoreUnavailable("PostgreSQL unavailable") from e


def test_only_a_silent_server_opens_it() -> None:
    breaker = HangBreaker(hold_off_s=60)
    with pytest.raises(StoreUnavailable), breaker.guard():
        raise StoreUnavailable("connection refused")  # fast already: not a hang
    assert not breaker.is_open
    with pytest.raises(StoreUnavailable), breaker.guard():
        hang()
    assert breaker.is_open and breaker.opened == 1
    refused = 0
    for _ in range(50):
        try:
            with breaker.guard():
                raise AssertionError("must not run while open")
        except StoreUnavailable as e:
            refused += "not asking again" in str(e) and "within 4 s" in str(e)
    assert refused == 50 and breaker.opened == 1
    breaker.reset()  # a health ping that succeeded
    with breaker.guard():
        pass


def test_after_the_hold_off_one_probe_at_a_time() -> None:
    breaker = HangBreaker(hold_off_s=0.0)
    with pytest.raises(StoreUnavailable), breaker.guard():
        hang()
    inside, release = threading.Event(), threading.Event()

    def probe() -> None:
        with breaker.guard():
            inside.set()
            release.wait(10)

    prober = threading.Thread(target=probe)
    prober.start()
    assert inside.wait(10)
    others = 0
    for _ in range(20):  # while the probe waits, everyone else is refused at once
        try:
            with breaker.guard():
                raise AssertionError("only the probe may run")
        except StoreUnavailable:
            others += 1
    release.set()
    prober.join(10)
    assert others == 20
    assert not breaker.is_open  # the probe succeeded
    with breaker.guard():
        pass
