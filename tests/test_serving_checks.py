from __future__ import annotations

from council_app.serving import dev_mode_warning, non_loopback_binds


def test_loopback_and_unix_binds_are_private() -> None:
    private = ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "unix:/tmp/g.sock", "127.5.0.1:1"]
    assert non_loopback_binds(private) == []


def test_public_binds_are_named() -> None:
    binds = ["0.0.0.0:8000", "[::]:8000", "10.1.2.3:80", "council.example:80", "127.0.0.1:1"]
    assert non_loopback_binds(binds) == binds[:4]


def test_dev_mode_warns_only_when_exposed() -> None:
    assert dev_mode_warning("dev", ["127.0.0.1:8000"]) is None
    assert dev_mode_warning("token", ["0.0.0.0:8000"]) is None
    message = dev_mode_warning("dev", ["0.0.0.0:8000"])
    assert message is not None
    assert "0.0.0.0:8000" in message and "AUTH_MODE=token" in message
