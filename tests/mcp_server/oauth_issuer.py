"""A local OAuth authorization server for tests: its own RSA and EC keys, RFC 8414
metadata, a JWKS and an RFC 7662 introspection endpoint, served over HTTP on loopback
from a thread. It mints access tokens the way an identity provider would.

Imported by name (``from oauth_issuer import LocalIssuer``)."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from servers import JSONHandler

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "LocalIssuer"]

CLIENT_ID = "medmo-resource-server"
CLIENT_SECRET = "introspection-secret-0123456789"


class SigningKey:
    """A private key with its key id, algorithm and public JWK."""

    def __init__(self, kid: str, alg: str):
        self.kid, self.alg = kid, alg
        if alg.startswith("ES"):
            self.private = ec.generate_private_key(ec.SECP256R1())
            public = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**public, "kid": kid, "alg": alg, "use": "sig"}


class LocalIssuer:
    """The issuer at ``self.url``; use as a context manager (starts and stops the thread).

    Attributes:
        keys: The published signing keys (replace to rotate).
        jwks_fetches: How many times the JWKS was asked for.
        jwks_status: The HTTP status the JWKS is served with (set 503 for an outage).
        introspection: Token -> introspection answer, for tokens the issuer knows.
    """

    def __init__(self, metadata_path: str = "/.well-known/oauth-authorization-server"):
        self.keys = [SigningKey("rsa-1", "RS256"), SigningKey("ec-1", "ES256")]
        self.jwks_fetches = 0
        self.jwks_status = 200
        self.introspection: dict[str, dict[str, Any]] = {}
        self.introspection_auth: list[str] = []
        self._metadata_path = metadata_path
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LocalIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def metadata(self) -> dict[str, Any]:
        """The RFC 8414 document this issuer serves."""
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "introspection_endpoint": f"{self.url}/introspect",
            "response_types_supported": ["code"],
            "scopes_supported": ["medmo:read", "medmo:model"],
        }

    def claims(self, audience: str, scope: str = "medmo:read medmo:model", **extra: Any):
        """Claims of an RFC 9068 access token for ``audience``, valid for five minutes."""
        now = int(time.time())
        return {
            "iss": self.url,
            "sub": "user-42",
            "aud": audience,
            "client_id": "desktop-client",
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
            **extra,
        }

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None, **header: Any) -> str:
        """A JWT of ``claims`` signed with ``key`` (default: the first published key)."""
        key = key or self.keys[0]
        headers = {"kid": key.kid, "typ": "at+jwt", **header}
        return jwt.encode(claims, key.private, algorithm=key.alg, headers=headers)

    def token(self, audience: str, scope: str = "medmo:read medmo:model", **extra: Any) -> str:
        """A valid signed access token for ``audience``."""
        return self.sign(self.claims(audience, scope, **extra))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                if self.path == issuer._metadata_path:
                    self.send_json(200, issuer.metadata())
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    self.send_json(issuer.jwks_status, {"keys": [k.jwk for k in issuer.keys]})
                else:
                    self.send_json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if self.path != "/introspect":
                    self.send_json(404, {"error": "not_found"})
                    return
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                issuer.introspection_auth.append(self.headers.get("Authorization", ""))
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self.send_json(401, {"error": "invalid_client"})
                    return
                token = form.get("token", [""])[0]
                self.send_json(200, issuer.introspection.get(token, {"active": False}))

        return Handler
