"""A minimal OpenAI-compatible backend that answers instantly (benchmark and test fixture).

Not a product part: it stands in for vLLM where only the gateway's own cost is
measured. Raw ASGI on uvicorn, canned answers shaped like vLLM's (``reasoning``
field, ``completion_tokens_details.reasoning_tokens`` in usage, SSE chunks and
a usage chunk when ``stream_options.include_usage`` is set).

    python -m bench.instant_backend --port 9001 [--model instant] [--status 500]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

_REASONING = ["Let", " me", " think", "."]
_ANSWER = ["The", " answer", " is", " 4", "."]


def _usage(prompt: int) -> dict[str, Any]:
    n_r, n_a = len(_REASONING) + 1, len(_ANSWER)  # +1: the </think> marker counts as thinking
    return {"prompt_tokens": prompt, "completion_tokens": n_r + n_a, "total_tokens": prompt + n_r + n_a,
            "completion_tokens_details": {"reasoning_tokens": n_r}}


def make_app(model: str = "instant", status: int = 200) -> Any:
    """Build the raw ASGI app."""
    models_body = json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        if path in ("/health", "/v1/models"):
            await _send(send, 200, b"" if path == "/health" else models_body)
            return
        if status != 200:
            err = {"error": {"message": "injected failure", "type": "server_error", "param": None, "code": status}}
            await _send(send, status, json.dumps(err).encode())
            return
        req = json.loads(body or b"{}")
        chat = path.endswith("/chat/completions")
        prompt_tokens = len(json.dumps(req.get("messages") or req.get("prompt") or "")) // 4
        created = int(time.time())
        rid = "cmpl-instant"
        if req.get("stream"):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            obj = "chat.completion.chunk" if chat else "text_completion"
            pieces = [("reasoning", t) for t in _REASONING] + [("content", t) for t in _ANSWER]
            for i, (kind, text) in enumerate(pieces):
                if chat:
                    choice = {"index": 0, "delta": {kind: text}, "finish_reason": None}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": None}
                if i == len(pieces) - 1:
                    choice["finish_reason"] = "stop"
                chunk = {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice]}
                await send({"type": "http.response.body", "body": b"data: " + json.dumps(chunk).encode() + b"\n\n",
                            "more_body": True})
            if (req.get("stream_options") or {}).get("include_usage"):
                chunk = {"id": rid, "object": obj, "created": created, "model": model, "choices": [],
                         "usage": _usage(prompt_tokens)}
                await send({"type": "http.response.body", "body": b"data: " + json.dumps(chunk).encode() + b"\n\n",
                            "more_body": True})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            return
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": "".join(_ANSWER),
                                              "reasoning": "".join(_REASONING)}, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": "".join(_ANSWER), "finish_reason": "stop"}
        out = {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
               "model": model, "choices": [choice], "usage": _usage(prompt_tokens)}
        await _send(send, 200, json.dumps(out).encode())

    return app


async def _send(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--model", default="instant")
    ap.add_argument("--status", type=int, default=200, help="answer every completion with this status")
    args = ap.parse_args()
    import uvicorn

    uvicorn.run(make_app(args.model, args.status), host=args.host, port=args.port, log_level="warning",
                access_log=False, loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
