"""Checks of how the server is exposed, used by the gunicorn hooks."""

from __future__ import annotations

import ipaddress


def non_loopback_binds(binds: list[str]) -> list[str]:
    """The bind addresses reachable from other machines (unix sockets never are)."""
    exposed = []
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        host = bind.rsplit(":", 1)[0] if ":" in bind else bind
        host = host.strip("[]")
        if host == "localhost":
            continue
        try:
            if ipaddress.ip_address(host).is_loopback:
                continue
        except ValueError:
            pass  # a host name other than localhost: assume it is reachable
        exposed.append(bind)
    return exposed


def dev_mode_warning(auth_mode: str, binds: list[str]) -> str | None:
    """Dev mode trusts X-User-Id from anyone: say so when others can reach the server."""
    exposed = non_loopback_binds(binds)
    if auth_mode != "dev" or not exposed:
        return None
    return (
        f"AUTH_MODE=dev while listening on {', '.join(exposed)}: anyone who can reach it can "
        "act as any user (X-User-Id). In production use SSO (AUTH_MODE=prod, proxy or jwt) "
        "or AUTH_MODE=token."
    )
