"""Command-line options of ``medmo serve`` (and ``python -m mcp_server``).

This module imports nothing heavy at import time: the ``medmo`` command builds its parser
from :func:`add_serve_arguments` for every subcommand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from medmo_agent.cli_options import add_settings_options, settings_values

__all__ = ["add_serve_arguments", "build_config", "build_settings", "main", "run_serve"]

#: The settings ``serve`` takes as options: the model, then the limits it enforces.
MODEL_SETTINGS = ("model", "backend", "base_url", "device", "dtype")
LIMIT_SETTINGS = ("max_new_tokens", "max_new_tokens_limit", "max_image_bytes", "max_image_pixels")
#: The OAuth resource server's settings (the client secret only from the environment).
AUTH_SETTINGS = (
    "auth_issuer",
    "auth_resource_url",
    "auth_audience",
    "auth_read_scope",
    "auth_model_scope",
    "auth_token_check",
    "auth_algorithms",
    "auth_clock_skew_s",
    "auth_jwks_cache_s",
    "auth_jwks_refetch_min_s",
    "auth_introspection_url",
    "auth_client_id",
    "auth_http_timeout_s",
    "auth_max_response_bytes",
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser``."""
    t = parser.add_argument_group("transport")
    t.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP instead of stdio (stdio is what desktop clients launch)",
    )
    t.add_argument(
        "--host",
        default=None,
        help="HTTP bind address (default 127.0.0.1; any other needs --auth-token)",
    )
    t.add_argument("--port", type=int, default=None, help="HTTP port (default 8000; 0 = any free)")
    t.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    t.add_argument(
        "--stateless",
        action="store_true",
        help="no per-client sessions: for replicas behind a load balancer",
    )
    t.add_argument(
        "--json-response",
        action="store_true",
        help="answer with plain JSON instead of SSE streams (no progress updates)",
    )

    m = parser.add_argument_group("model")
    add_settings_options(m, MODEL_SETTINGS)

    s = parser.add_argument_group("safety and limits")
    s.add_argument(
        "--allow-dir",
        action="append",
        type=Path,
        metavar="DIR",
        dest="allow_dirs",
        help="folder whose images tools may read (repeatable). Default: the working "
        "directory over stdio, none over HTTP",
    )
    s.add_argument(
        "--auth-token",
        help="bearer token HTTP clients must send (or set "
        "MEDMO_AUTH_TOKEN, which keeps it out of the process list)",
    )
    s.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="extra Host header to accept over HTTP, e.g. medmo.example.org:* (repeatable)",
    )
    add_settings_options(s, LIMIT_SETTINGS)
    a = parser.add_argument_group(
        "OAuth access tokens (instead of --auth-token)",
        "Accept access tokens an identity provider issues for this server; the client "
        "secret for introspection is read from MEDMO_AUTH_CLIENT_SECRET only.",
    )
    add_settings_options(a, AUTH_SETTINGS)
    s.add_argument(
        "--max-request-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="largest HTTP request body (default 4 MiB)",
    )
    s.add_argument(
        "--max-results",
        type=int,
        default=256,
        help="how many earlier results to keep for medmo://results/<id> (default 256)",
    )
    s.add_argument(
        "--audit-log",
        type=Path,
        metavar="FILE",
        help="append one JSON line per tool call (no pixel data) to FILE",
    )


def build_settings(args: argparse.Namespace):
    """Model settings: ``MEDMO_*`` variables overridden by the command line."""
    from medmo_agent.config import Settings

    names = MODEL_SETTINGS + LIMIT_SETTINGS + AUTH_SETTINGS
    return Settings.from_env().replace(**settings_values(args, names))


def build_config(args: argparse.Namespace, settings=None):
    """Server options from the command line (token from ``MEDMO_AUTH_TOKEN`` if not given;
    OAuth options from ``settings``, by default :func:`build_settings`)."""
    from .config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig
    from .oauth import OAuthConfig

    return ServerConfig(
        transport="http" if args.http else "stdio",
        host=args.host or DEFAULT_HOST,
        port=DEFAULT_PORT if args.port is None else args.port,
        path=args.path,
        stateless=args.stateless,
        json_response=args.json_response,
        allowed_dirs=tuple(args.allow_dirs) if args.allow_dirs else None,
        auth_token=args.auth_token or ServerConfig.token_from_env(),
        allowed_hosts=tuple(args.allowed_host),
        max_request_bytes=args.max_request_bytes,
        max_result_store=args.max_results,
        audit_log=args.audit_log,
        oauth=OAuthConfig.from_settings(settings or build_settings(args)),
    ).validate()


def run_serve(args: argparse.Namespace) -> int:
    """Run the server the options describe until the client disconnects or Ctrl-C.

    Raises:
        MedmoError: Invalid options (e.g. a public bind without a token) or a model that
            fails to load; the caller prints it.
    """
    import anyio

    from .app import create_server
    from .memory import return_large_buffers_to_os

    settings = build_settings(args)
    config = build_config(args, settings)
    # A server decodes one large image after another: keep their buffers from staying
    # resident once freed (see mcp_server.memory).
    return_large_buffers_to_os()
    server = create_server(settings, config)
    try:
        if config.transport == "http":
            from .http_app import serve_http

            anyio.run(serve_http, server, config)
        else:
            anyio.run(server.run_stdio_async)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A model that fails to load surfaces inside the server's task groups; report
        # the MedmoError itself rather than the group around it.
        found = _medmo_error_in(exc)
        if found is not None:
            raise found from None
        raise
    return 0


def _medmo_error_in(exc: BaseException):
    from medmo_agent.errors import MedmoError

    if isinstance(exc, MedmoError):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _medmo_error_in(inner)
        if found is not None:
            return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mcp_server``: the same options as ``medmo serve``."""
    from medmo_agent.errors import MedmoError

    parser = argparse.ArgumentParser(
        prog="python -m mcp_server",
        description="Serve MedMO's tasks as MCP tools (stdio by default, --http for "
        "streamable HTTP).",
    )
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_serve(args)
    except MedmoError as exc:
        sys.stderr.write(f"medmo serve: error: {exc}\n")
        return 1
