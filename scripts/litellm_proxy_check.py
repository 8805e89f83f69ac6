"""A whole council run through LiteLLM's proxy, offline: the manual check of docs/PROVIDERS.md.

Starts a loopback upstream that speaks Chat Completions (streamed or not) and answers each
council step plausibly; it refuses ``reasoning_effort`` for its non-reasoning model the way
OpenAI does (HTTP 400).  Starts ``litellm --config`` in front of it with two models, one
the catalogue knows (``gpt-5.1``, reasoning) and one alias it does not (``house-mini``, a
non-reasoning model), then runs build -> execute -> review -> synthesize through the app's
real provider pointed at the proxy, and prints what went over the wire and what it cost.

Usage (litellm[proxy] in its own virtualenv, it pins many packages):
    python -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'
    .venv/bin/python scripts/litellm_proxy_check.py --litellm /tmp/litellm-venv/bin/litellm
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MASTER_KEY = "sk-council-local-check-0123456789"
NON_REASONING = "house-mini"  # an alias: unknown to the catalogue, so the app sends effort
REASONING = "gpt-5.1"


class Upstream:
    """The "real" model server behind the proxy; records every request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                if body.get("reasoning_effort") and body["model"].endswith("gpt-4o-mini"):
                    error = {
                        "message": "Unsupported parameter: 'reasoning_effort' is not "
                        "supported with this model.",
                        "type": "invalid_request_error",
                        "param": "reasoning_effort",
                        "code": "unsupported_parameter",
                    }
                    return self._send(400, json.dumps({"error": error}).encode(), "json")
                text = _answer(body)
                usage = {"prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200}
                if not body.get("stream"):
                    payload = {
                        "id": "u",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    }
                    return self._send(200, json.dumps(payload).encode(), "json")
                head = {"id": "u", "object": "chat.completion.chunk", "created": 0}
                head["model"] = body["model"]
                events = [
                    {**head, "choices": [{"index": 0, "delta": {"content": text[i : i + 40]}}]}
                    for i in range(0, len(text), 40)
                ]
                events.append(
                    {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                )
                events.append({**head, "choices": [], "usage": usage})
                data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
                self._send(200, data + b"data: [DONE]\n\n", "event-stream")

            def _send(self, code: int, data: bytes, kind: str) -> None:
                self.send_response(code)
                ctype = "text/event-stream" if kind == "event-stream" else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


def _answer(body: dict[str, Any]) -> str:
    system = " ".join(m["content"] or "" for m in body["messages"] if m["role"] == "system")
    user = " ".join(m["content"] or "" for m in body["messages"] if m["role"] != "system")
    if "design advisory councils" in system:
        agent = {
            "name": "Generalist",
            "persona": "You advise.",
            "reasoning_effort": "low",
            "enable_web_search": False,
        }
        return json.dumps({"council_name": "Check", "strategy_summary": "s", "agents": [agent]})
    if "impartial reviewer" in system:
        ids = [int(i) for i in re.findall(r"=== PROPOSAL #(\d+) ===", user)]
        per = [
            {
                "proposal_id": i,
                "score": 4,
                "strengths": "clear",
                "weaknesses": "thin",
                "gaps_risks": "cost",
                "tldr": "good",
            }
            for i in ids
        ]
        return json.dumps({"overall_tldr": "solid", "per_proposal": per, "overall_ranking": ids})
    if "chairman" in system:
        return "## Verdict\n\nAdopt PostgreSQL in stages.\n\nTL;DR: adopt it in stages."
    return "Move session state to PostgreSQL, in stages.\n\nTL;DR: migrate carefully."


def start_proxy(litellm: str, upstream: Upstream, port: int) -> subprocess.Popen[bytes]:
    config = {
        "model_list": [
            {
                "model_name": NON_REASONING,
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": upstream.url,
                    "api_key": "upstream",
                },
            },
            {
                "model_name": REASONING,
                "litellm_params": {
                    "model": "openai/gpt-5.1",
                    "api_base": upstream.url,
                    "api_key": "upstream",
                },
            },
        ]
    }
    path = os.path.join(tempfile.mkdtemp(prefix="litellm-check-"), "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_MASTER_KEY=MASTER_KEY)
    proc = subprocess.Popen(
        [litellm, "--config", path, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the LiteLLM proxy did not start within 90 s")


def _usd(value: float | None) -> str:
    return f"{value:<10.6f}" if isinstance(value, float) else f"{value!s:<10}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", required=True, help="path of the litellm executable")
    parser.add_argument("--port", type=int, default=4011)
    args = parser.parse_args(argv)

    from council_app import create_app

    upstream = Upstream()
    started = time.monotonic()
    proxy = start_proxy(args.litellm, upstream, args.port)
    print(f"proxy up in {time.monotonic() - started:.1f} s")
    sessions = tempfile.mkdtemp(prefix="council-check-")
    app = create_app(
        {
            "openai_api_key": MASTER_KEY,
            "openai_base_url": f"http://127.0.0.1:{args.port}",
            "council_model": NON_REASONING,
            "sessions_dir": sessions,
            "database_url": f"sqlite:///{sessions}/council.db",
        }
    )
    client = app.test_client()
    try:
        models = client.get("/api/models").json
        print(
            "GET /api/models:", models["models"], "| web search:", models["provider"]["web_search"]
        )
        sid = client.post(
            "/api/sessions",
            data={
                "question": "Should we move session state to PostgreSQL?",
                "files": [(io.BytesIO(b"notes"), "notes.txt")],
            },
            content_type="multipart/form-data",
        ).json["session_id"]
        agents = [
            {
                "name": "Economist",
                "persona": "You weigh costs.",
                "reasoning_effort": "high",
                "model": NON_REASONING,
            },
            {
                "name": "Engineer",
                "persona": "You run production.",
                "reasoning_effort": "medium",
                "model": REASONING,
            },
            {
                "name": "Skeptic",
                "persona": "You look for risks.",
                "reasoning_effort": "low",
                "model": NON_REASONING,
            },
        ]
        built = client.post(f"/api/sessions/{sid}/build_council")
        assert built.status_code == 200, built.json
        print("build_council:", [a["name"] for a in built.json["agents"]], "(then edited)")
        typo = client.put(
            f"/api/sessions/{sid}/council", json={"agents": [{**agents[0], "model": "gpt-4o-mni"}]}
        )
        print(
            "PUT /council with model 'gpt-4o-mni':",
            typo.status_code,
            typo.json["errors"][0]["message"],
        )
        client.put(
            f"/api/sessions/{sid}/council", json={"agents": agents, "chairman_model": REASONING}
        )
        svc = app.extensions["council"]
        for step in ("execute", "peer_review"):
            assert client.post(f"/api/sessions/{sid}/{step}").status_code == 200
            svc.workflow.join(sid, 120)
        r = client.post(f"/api/sessions/{sid}/synthesize")
        assert r.status_code == 200, r.json
        summary = client.get(f"/api/sessions/{sid}/summary").json
        print("status:", summary["status"])
        print("\nupstream requests (model, reasoning_effort, stream):")
        for body in upstream.bodies:
            print(
                f"  {body['model']:<12} effort={body.get('reasoning_effort')!s:<7} "
                f"stream={bool(body.get('stream'))}"
            )
        print(
            "\napp log (step, agent, model, cost_usd, cost_known, gateway_cost_usd, "
            "dropped, retries):"
        )
        for e in client.get(f"/api/sessions/{sid}/logs").json["logs"]:
            print(
                f"  {e['step']:<10} {e['agent']:<10} {e['model']:<12} {_usd(e['cost_usd'])} "
                f"{e.get('cost_known')!s:<5} {_usd(e.get('gateway_cost_usd'))} "
                f"{e.get('dropped_params')} {len(e.get('retries') or [])}"
            )
        tokens = summary["tokens"]
        print("\ntotals:", {k: tokens[k] for k in ("total_tokens", "total_cost_usd", "cost_known")})
        print("by step:", {k: round(v["total_cost_usd"], 6) for k, v in tokens["by_step"].items()})
        print(
            "by agent:", {k: round(v["total_cost_usd"], 6) for k, v in tokens["by_agent"].items()}
        )
    finally:
        app.extensions["council"].shutdown()
        proxy.terminate()
        proxy.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
