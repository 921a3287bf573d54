"""A small OpenAI-compatible chat server with canned answers: the only stand-in the tests use.

Each request takes the next scripted reply: choices (their texts), or an HTTP status, or a delay. When the
script runs out, the last reply repeats. Requests are recorded so tests can read the prompts sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    texts: list[str] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0


class FakeLLMServer:
    def __init__(self, script: list[Reply]) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    reply = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                time.sleep(reply.delay_s)
                if reply.status != 200:
                    payload = json.dumps({"error": {"message": "scripted failure", "type": "server_error"}})
                else:
                    n = int(body.get("n", 1))
                    texts = (reply.texts * n)[: max(n, len(reply.texts))] if reply.texts else [""]
                    payload = json.dumps({
                        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                        "model": body["model"],
                        "choices": [
                            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                            for i, t in enumerate(texts[:n])
                        ],
                        "usage": {"prompt_tokens": 100 * n, "completion_tokens": 50 * n, "total_tokens": 150 * n},
                    })
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeLLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def user_messages(self) -> list[str | list[dict]]:
        return [m["content"] for r in self.requests for m in r["messages"] if m["role"] == "user"]

    def user_prompts(self) -> list[str]:
        """The user messages' text (of a message with pictures, its text parts)."""
        return [c if isinstance(c, str) else "\n".join(p["text"] for p in c if p["type"] == "text")
                for c in self.user_messages()]

    def user_images(self) -> list[list[bytes]]:
        """Per user message, the pictures it carried (decoded from their data URLs)."""
        import base64

        return [[] if isinstance(c, str) else [base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
                                               for p in c if p["type"] == "image_url"]
                for c in self.user_messages()]
