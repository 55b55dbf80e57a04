"""The sweep through the OpenAI-compatible backend: slices go out as concurrent HTTP
requests, up to ``volume_concurrency`` at once, against a loopback server that answers
only once that many are waiting together."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from servers import JSONHandler, chat_completion

from medmo_agent.backends.openai_compat import OpenAICompatBackend
from medmo_agent.config import Settings
from medmo_agent.testing.volumes import Phantom, write_dicom_series
from medmo_agent.toolkit import Toolkit

TOGETHER = 4


class Loopback:
    """Answers chat completions in groups: each request waits until ``TOGETHER`` are in."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(TOGETHER)
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = self.calls = 0
        loop = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                self.send_json(200, {"object": "list", "data": [{"id": "medmo"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with loop.lock:
                    loop.calls += 1
                    loop.in_flight += 1
                    loop.most_in_flight = max(loop.most_in_flight, loop.in_flight)
                try:
                    loop.barrier.wait(timeout=20)  # a group of TOGETHER, or an error
                    status, text = 200, "No Finding"
                except threading.BrokenBarrierError:
                    status, text = 500, "not concurrent"
                with loop.lock:
                    loop.in_flight -= 1
                usage = {"prompt_tokens": 300, "completion_tokens": 3}
                self.send_json(status, chat_completion(text, "medmo", usage))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    server = Loopback()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_slices_go_out_concurrently_up_to_the_configured_limit(loopback, tmp_path):
    folder = write_dicom_series(Phantom(shape=(8, 32, 32)), tmp_path / "series")
    backend = OpenAICompatBackend(loopback.url, "medmo", retries=0)
    kit = Toolkit(backend=backend, settings=Settings(volume_concurrency=TOGETHER))
    result = kit.ground_volume(str(folder))
    assert [e.error for e in result.per_slice] == [None] * 8
    assert loopback.calls == 8
    assert loopback.most_in_flight == TOGETHER  # never more than the limit
    assert result.backend == "openai"
