"""Why a request's access token was not accepted."""

from __future__ import annotations

__all__ = ["IssuerUnavailable", "TokenRejected"]


class TokenRejected(Exception):
    """The access token is not valid here; the message says why (it is sent to the client
    as the ``error_description`` of a 401, so it names no secret)."""


class IssuerUnavailable(Exception):
    """The issuer could not be asked (down, misconfigured, or an unusable answer): tokens
    cannot be checked right now, which is the server's problem, not the client's."""
