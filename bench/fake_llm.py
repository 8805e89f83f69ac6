"""A loopback OpenAI-compatible endpoint for load benchmarks: thousands of slow answers at once.

``POST /v1/chat/completions`` waits ``--latency`` seconds, then answers (streamed as
server-sent events with a final usage chunk when ``stream`` is set, as one JSON body
otherwise); ``GET /v1/models`` lists the model; ``GET /stats`` reports calls served, calls
in flight now and the most ever in flight at once (what bounds the app's LLM
concurrency).  One asyncio loop holds every waiting call, so the server itself never
limits concurrency.  Prints ``PORT <n>`` once listening.

Usage: python bench/fake_llm.py [--port 0] [--latency 3.0] [--chunks 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time

from aiohttp import web

MODEL = "bench-model"


class Stats:
    def __init__(self) -> None:
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = time.time()


def completion_text(body: dict) -> str:
    """A plausible answer: a JSON review when JSON is asked for, prose otherwise."""
    if (body.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"overall_tldr": "fine", "per_proposal": [], "overall_ranking": []})
    return "An answer from the bench model.\n\nTL;DR: do it carefully. " + "words " * 150


def make_app(latency: float, chunks: int) -> web.Application:
    stats = Stats()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        stats.calls += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await asyncio.sleep(latency)
            text = completion_text(body)
            usage = {"prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200}
            base = {"id": "cmpl-bench", "created": int(time.time()), "model": MODEL}
            if not body.get("stream"):
                return web.json_response(
                    {
                        **base,
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    }
                )
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            step = max(1, len(text) // chunks)
            for i in range(0, len(text), step):
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": text[i : i + step]},
                            "finish_reason": None,
                        }
                    ],
                }
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            done = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            await response.write(f"data: {json.dumps(done)}\n\n".encode())
            if (body.get("stream_options") or {}).get("include_usage"):
                tail = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                await response.write(f"data: {json.dumps(tail)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        finally:
            stats.in_flight -= 1

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def report(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "calls": stats.calls,
                "in_flight": stats.in_flight,
                "max_in_flight": stats.max_in_flight,
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", report)
    return app


async def serve(port: int, latency: float, chunks: int) -> None:
    runner = web.AppRunner(make_app(latency, chunks), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {bound}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument("--chunks", type=int, default=8)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.latency, args.chunks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
