"""A real OpenID Connect issuer for the tests, built with Authlib's authorization server:
discovery, JWKS, ``/authorize`` (authorization code, PKCE required, nonce required) and
``/token`` (ID tokens signed RS256). It serves on 127.0.0.1 from a thread.

The "signed-in user" at the issuer is ``issuer.user`` (the consent step approves at once).
``issuer.misbehave`` makes it lie the way a compromised or misconfigured issuer would:
``"nonce"`` (an ID token for another nonce), ``"audience"`` (for another client),
``"key"`` (signed by a key it does not publish), ``"issuer"`` (another ``iss``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from tests.live import free_port


@dataclass
class IssuerUser:
    sub: str
    email: str
    email_verified: bool = True
    name: str = "Test User"
    preferred_username: str | None = None

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "email", "profile"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_post", "client_secret_basic")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: IssuerUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class Issuer:
    def __init__(self, client_id: str = "jackpotx", client_secret: str = "issuer-secret") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.rogue_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uris: list[str] = []
        self.user = IssuerUser(sub="issuer-user-1", email="ada@idp.test")
        self.misbehave: str | None = None
        self.down = False
        self.codes: dict[str, Code] = {}
        self.token_requests = 0
        self.app = self._build()
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Issuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def config(self) -> dict[str, str]:
        return {
            "issuer": self.url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "label": "Test IdP",
        }

    # --- the Authlib server --------------------------------------------------------------

    def _build(self) -> Flask:
        issuer = self
        app = Flask("oidc-issuer")
        app.config["OAUTH2_ERROR_URIS"] = []

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post", "client_secret_basic"]

            def save_authorization_code(self, code: str, request: Any) -> None:
                payload = request.payload
                issuer.codes[code] = Code(
                    code=code,
                    client_id=request.client.client_id,
                    redirect_uri=payload.redirect_uri,
                    scope=payload.scope,
                    user=request.user,
                    nonce=payload.data.get("nonce"),
                    code_challenge=payload.data.get("code_challenge"),
                    code_challenge_method=payload.data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = issuer.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                issuer.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> IssuerUser:
                return authorization_code.user

        class IdToken(OpenIDCode):
            def exists_nonce(self, nonce: str, request: Any) -> bool:
                return any(c.nonce == nonce for c in issuer.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return issuer.rogue_key if issuer.misbehave == "key" else issuer.key

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": "k1"}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {
                    "iss": "https://evil.example" if issuer.misbehave == "issuer" else issuer.url,
                    "aud": ["someone-else"]
                    if issuer.misbehave == "audience"
                    else [client.client_id],
                }

            def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
                claims = super().get_authorization_code_claims(authorization_code)
                if issuer.misbehave == "nonce":
                    claims["nonce"] = "a-nonce-of-another-sign-in"
                return claims

            def generate_user_info(self, user: IssuerUser, scope: str) -> UserInfo:
                info = UserInfo(sub=user.sub, name=user.name)
                info["email"] = user.email
                info["email_verified"] = user.email_verified
                if user.preferred_username:
                    info["preferred_username"] = user.preferred_username
                return info

        def query_client(client_id: str) -> Client | None:
            if client_id != issuer.client_id:
                return None
            return Client(issuer.client_id, issuer.client_secret, issuer.redirect_uris)

        server = AuthorizationServer(app, query_client=query_client, save_token=lambda t, r: None)
        server.register_grant(
            CodeGrant, [IdToken(require_nonce=True), CodeChallenge(required=True)]
        )

        @app.before_request
        def _down():
            if issuer.down:
                return jsonify({"error": "temporarily_unavailable"}), 503
            return None

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                {
                    "issuer": issuer.url,
                    "authorization_endpoint": f"{issuer.url}/authorize",
                    "token_endpoint": f"{issuer.url}/token",
                    "jwks_uri": f"{issuer.url}/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        @app.get("/jwks")
        def jwks():
            return jsonify({"keys": [issuer.key.as_dict(private=False)]})

        @app.get("/authorize")
        def authorize():
            grant = server.get_consent_grant(end_user=issuer.user)
            return server.create_authorization_response(grant=grant, grant_user=issuer.user)

        @app.post("/token")
        def token():
            issuer.token_requests += 1
            return server.create_token_response()

        @app.get("/probe")
        def probe():  # what the last authorization request carried, for the tests
            return jsonify(dict(request.args))

        return app
