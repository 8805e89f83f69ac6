"""Real gunicorn with OPS_BIND: /metrics and the health detail on the ops listener only."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from .live_server import LiveServer, server_env

pytestmark = [pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_ops_listener_next_to_the_public_one(tmp_path: Path) -> None:
    ops_port = free_port()
    env = server_env(tmp_path, None, OPS_BIND=f"127.0.0.1:{ops_port}", OPS_TOKEN="scrape-me")
    with LiveServer(tmp_path, env, workers=1) as server:
        server.start()
        assert server.port != ops_port
        status, body = get(server.port, "/metrics")
        assert status == 401 and b"unauthorized" in body
        # A Host header naming the ops port changes nothing: the accepted socket decides.
        assert get(server.port, "/metrics", {"Host": f"127.0.0.1:{ops_port}"})[0] == 401
        assert get(server.port, "/metrics", {"Authorization": "Bearer scrape-me"})[0] == 200
        status, body = get(ops_port, "/metrics")
        assert status == 200 and b"council_http_requests_total" in body
        assert get(server.port, "/api/health") == (200, b'{"status":"ok"}')
        status, body = get(ops_port, "/api/health")
        assert status == 200 and b"flusher" in body
        assert server.error_lines() == []
