"""Load each path read from stdin and print one JSON line per path: how it went.

Run by ``test_corpus.py`` in a subprocess, so that a file that hangs the loader can be
timed out and killed without hanging the test suite.
"""

from __future__ import annotations

import json
import sys
import traceback


def main() -> None:
    from medmo_agent.errors import MedmoError
    from medmo_agent.imaging import load_image

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            image = load_image(path)
            result = {"outcome": "ok", "size": list(image.size)}
        except MedmoError as exc:
            result = {"outcome": "error", "type": type(exc).__name__, "detail": str(exc)}
        except BaseException as exc:
            result = {
                "outcome": "crash",
                "type": type(exc).__name__,
                "detail": traceback.format_exc(limit=-4),
            }
        print(json.dumps({"path": path, **result}), flush=True)


if __name__ == "__main__":
    main()
