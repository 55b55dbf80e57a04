"""``python -m mcp_server``: run the MedMO MCP server (same options as ``medmo serve``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
