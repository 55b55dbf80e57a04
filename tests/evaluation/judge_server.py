"""A scripted OpenAI-compatible judge server, run as its own process by the judge tests.

    python judge_server.py PORT SCRIPT.json LOG.jsonl

``SCRIPT.json`` maps a user's answer (the text after "The user's answer: " in the judge
prompt) to the reply text; ``"HTTP 500"`` answers with a server error instead. Answers not
in the script get ``<judge>1</judge>``. Every chat request is appended to ``LOG.jsonl``
(path, authorization header, body) so a test can check what the judge was sent.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "judge-model"


def main() -> None:
    port, script_path, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(script_path, encoding="utf-8") as f:
        script: dict[str, str] = json.load(f)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path in ("/health", "/v1/models"):
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length))
            with lock, open(log_path, "a", encoding="utf-8") as log:
                entry = {"path": self.path, "auth": self.headers.get("authorization"), "body": body}
                log.write(json.dumps(entry) + "\n")
            if self.path != "/v1/chat/completions":
                self._send(404, {"detail": "Not Found"})
                return
            prompt = body["messages"][-1]["content"]
            if isinstance(prompt, list):
                prompt = "".join(p.get("text", "") for p in prompt)
            found = re.search(r"The user's answer: (.*)\n", prompt)
            answer = found.group(1) if found else ""
            reply = script.get(answer, "<think>differs</think>\n<judge>1</judge>")
            if reply == "HTTP 500":
                self._send(500, {"error": {"message": "scripted failure"}})
                return
            self._send(
                200,
                {
                    "id": "judge-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                },
            )

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
