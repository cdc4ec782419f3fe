"""A stand-in for llama.cpp's llama-server binary: the flags the bench passes, ``/health``, and
streamed ``/infill`` and ``/v1/completions`` answers. Every request is logged as one JSON line to
the file named by ``FAKE_PEER_LOG``, so a test can see what the bench sent."""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKENS = ["a", "b", "c"]
PROMPT_N = 7  # the prompt tokens every /infill answer says it evaluated


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b'{"status":"ok"}', "application/json")
        else:
            self._send(404, b"{}", "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with open(os.environ["FAKE_PEER_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"path": self.path, "body": body}) + "\n")
        if self.path == "/infill":
            last = {"content": "", "stop": True, "timings": {"prompt_n": PROMPT_N}}
            events = [{"content": t} for t in TOKENS] + [last]
        elif self.path == "/v1/completions":
            events = [{"choices": [{"index": 0, "text": t}]} for t in TOKENS]
            events.append({"choices": [], "usage": {"completion_tokens": len(TOKENS)}})
        else:
            self._send(404, b"{}", "application/json")
            return
        data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self._send(200, data, "text/event-stream")

    def _send(self, code: int, data: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    for flag in ("--model", "--ctx-size", "--threads", "--threads-batch", "--batch-size", "--parallel"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--flash-attn", required=True, choices=("on", "off"))
    args = parser.parse_args()
    if log_path := os.environ.get("FAKE_PEER_LOG"):
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"path": "argv", "body": {"flash_attn": args.flash_attn}}) + "\n")
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
