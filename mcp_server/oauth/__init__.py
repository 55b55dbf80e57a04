"""OAuth 2.1 resource server for ``medmo serve --http``: access tokens from an identity
provider, checked as signed JWTs (the issuer's JWKS) or by RFC 7662 introspection, with
RFC 9728 protected-resource metadata and per-request scopes.

The pieces: :mod:`.config` (options, from Settings), :mod:`.issuer` (metadata and keys),
:mod:`.verify` (token checks), :mod:`.scopes` (what each request needs) and
:mod:`.middleware` (the HTTP answers).
"""

from __future__ import annotations

from .config import OAuthConfig

__all__ = ["OAuthConfig"]
