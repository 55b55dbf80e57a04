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
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, when run as a script
from servers import JSONHandler, chat_completion, free_port, start_process

MODEL = "judge-model"


@contextmanager
def running(folder: Path, script: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """This server in its own process, answering by ``script``, until the block ends.

    Yields:
        The OpenAI base URL and the log file of the requests it got.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "script.json").write_text(json.dumps(script))
    log = folder / "log.jsonl"
    port = free_port()
    cmd = [sys.executable, __file__, str(port), str(folder / "script.json"), str(log)]
    with start_process(cmd, ready_url=f"http://127.0.0.1:{port}/health", timeout=30):
        yield f"http://127.0.0.1:{port}/v1", log


def main() -> None:
    port, script_path, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(script_path, encoding="utf-8") as f:
        script: dict[str, str] = json.load(f)
    lock = threading.Lock()

    class Handler(JSONHandler):
        def do_GET(self) -> None:
            if self.path in ("/health", "/v1/models"):
                self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            else:
                self.send_json(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length))
            with lock, open(log_path, "a", encoding="utf-8") as log:
                entry = {"path": self.path, "auth": self.headers.get("authorization"), "body": body}
                log.write(json.dumps(entry) + "\n")
            if self.path != "/v1/chat/completions":
                self.send_json(404, {"detail": "Not Found"})
                return
            prompt = body["messages"][-1]["content"]
            if isinstance(prompt, list):
                prompt = "".join(p.get("text", "") for p in prompt)
            found = re.search(r"The user's answer: (.*)\n", prompt)
            answer = found.group(1) if found else ""
            reply = script.get(answer, "<think>differs</think>\n<judge>1</judge>")
            if reply == "HTTP 500":
                self.send_json(500, {"error": {"message": "scripted failure"}})
                return
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            self.send_json(200, chat_completion(reply, MODEL, usage))

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
