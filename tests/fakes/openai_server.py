"""A small fake OpenAI-compatible server on 127.0.0.1, misbehaving on demand.

``FakeOpenAI(script)``: each POST /v1/chat/completions takes the next step of
``script`` (the last one repeats). A step is one of:

* ``("ok", text)`` - a normal reply whose content is ``text``;
* ``("status", code)`` / ``("status", code, {"Retry-After": "1"})`` - an error status;
* ``("sleep", seconds, text)`` - answers, but only after ``seconds``;
* ``("trickle", seconds_per_byte)`` - a valid reply, sent one byte at a time;
* ``("raw", bytes)`` - a 200 whose body is these bytes (malformed JSON);
* ``("echo_grammar",)`` - replies with the source sentence when the request
  carried a grammar, else with a rewrite that breaks the constraint.

Every request is recorded (path, headers, JSON body) in ``requests``.
``llamacpp=True`` also answers ``GET /props`` like llama.cpp's server does.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def reply(text: str) -> dict[str, Any]:
    return {
        "id": "fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(text.split())), "total_tokens": 20},
    }


class FakeOpenAI:
    def __init__(self, script: list[tuple], *, llamacpp: bool = False) -> None:
        self.script = list(script)
        self.llamacpp = llamacpp
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._step = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                fake._record(self, None)
                if self.path == "/props" and fake.llamacpp:
                    self._send(200, json.dumps({"default_generation_settings": {}}).encode())
                elif self.path == "/v1/models":
                    self._send(200, json.dumps({"data": [{"id": "fake", "owned_by": "fake"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                step = fake._record(self, body)
                kind = step[0]
                try:
                    if kind == "ok":
                        self._send(200, json.dumps(reply(step[1])).encode())
                    elif kind == "status":
                        self._send(step[1], b'{"error": {"message": "fake failure"}}', step[2] if len(step) > 2 else None)
                    elif kind == "sleep":
                        time.sleep(step[1])
                        self._send(200, json.dumps(reply(step[2])).encode())
                    elif kind == "trickle":
                        data = json.dumps(reply("Too slow.")).encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(step[1])
                    elif kind == "raw":
                        self._send(200, step[1])
                    elif kind == "echo_grammar":
                        prompt = body["messages"][-1]["content"]
                        source = prompt.split("\n", 1)[1] if "\n" in prompt else prompt
                        if "grammar" in body:
                            self._send(200, json.dumps(reply(source)).encode())
                        else:
                            self._send(200, json.dumps(reply("Officials invented a new fact entirely.")).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _record(self, handler: BaseHTTPRequestHandler, body: Any) -> tuple:
        with self._lock:
            self.requests.append({"path": handler.path, "headers": dict(handler.headers), "body": body})
            if body is None:
                return ("get",)
            step = self.script[min(self._step, len(self.script) - 1)]
            self._step += 1
            return step

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["body"] is not None]

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
