"""The OpenID Connect relying party (authorization code + PKCE), with Authlib.

One configured issuer per entry of ``OIDC_PROVIDERS`` (Google, Apple, Keycloak, any issuer
that publishes ``/.well-known/openid-configuration``). Everything leaves through the outbound
guard (``app.core.outbound``): discovery, the token endpoint and the keys.

Invariants:
* The authorization request carries a fresh ``state``, ``nonce`` and PKCE S256 challenge; the
  callback is accepted only with that state (single use, ``app.identity.external``).
* An ID token counts only when its signature verifies against the issuer's published keys
  and its ``iss``, ``aud`` (our client id), ``exp``/``iat`` and ``nonce`` are right.
* A failure of the issuer (down, slow, lying) is ``ProviderUnavailable`` (503) or
  ``AuthenticationError`` (a token that does not verify): never a 500, never a sign-in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from authlib.integrations.requests_client import OAuth2Session
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from app.core import outbound
from app.core.errors import AuthenticationError, NotFound, ServiceUnavailable

TIMEOUT = 5
#: Discovery documents and key sets, per process: (expires at, document).
_cache: dict[str, tuple[float, dict[str, Any]]] = {}
CACHE_SECONDS = 3600
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class ProviderUnavailable(ServiceUnavailable):
    message = "The identity provider is unavailable, retry later"


@dataclass(frozen=True)
class Claims:
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    preferred_username: str | None


def provider(name: str) -> dict[str, str]:
    config = current_app.config["OIDC_PROVIDERS"].get(name)
    if config is None:
        raise NotFound("Unknown identity provider")
    return {"scopes": "openid email profile", "label": name.capitalize(), **config}


def providers() -> list[dict[str, str]]:
    return [
        {"name": name, "label": provider(name)["label"]}
        for name in sorted(current_app.config["OIDC_PROVIDERS"])
    ]


def _get_json(url: str, *, fresh: bool = False) -> dict[str, Any]:
    now = time.monotonic()
    hit = _cache.get(url)
    if hit is not None and hit[0] > now and not fresh:
        return hit[1]
    try:
        response = outbound.session().get(url, timeout=TIMEOUT, allow_redirects=False)
        response.raise_for_status()
        document = response.json()
    except (outbound.OutboundError, OSError, ValueError) as exc:
        current_app.logger.warning("OIDC: %s unavailable (%s)", url, type(exc).__name__)
        raise ProviderUnavailable() from None
    if not isinstance(document, dict):
        raise ProviderUnavailable()
    _cache[url] = (now + CACHE_SECONDS, document)
    return document


def metadata(name: str) -> dict[str, Any]:
    cfg = provider(name)
    meta = _get_json(cfg["issuer"] + "/.well-known/openid-configuration")
    if meta.get("issuer", "").rstrip("/") != cfg["issuer"]:
        # A discovery document for another issuer: refuse it (OIDC Discovery 4.3).
        raise ProviderUnavailable()
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(meta.get(key), str):
            raise ProviderUnavailable()
    return meta


def _client(name: str, redirect_uri: str) -> OAuth2Session:
    cfg = provider(name)
    client = OAuth2Session(
        cfg["client_id"],
        cfg["client_secret"],
        scope=cfg["scopes"],
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
    )
    return outbound.guard(client)


def authorization_url(
    name: str, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
) -> str:
    url, _state = _client(name, redirect_uri).create_authorization_url(
        metadata(name)["authorization_endpoint"],
        state=state,
        nonce=nonce,
        code_verifier=code_verifier,
    )
    return url


def exchange(name: str, *, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Claims:
    """The authorization code for verified ID token claims."""
    meta = metadata(name)
    client = _client(name, redirect_uri)
    try:
        token = client.fetch_token(
            meta["token_endpoint"],
            code=code,
            code_verifier=code_verifier,
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except (outbound.OutboundError, OSError, ValueError) as exc:
        current_app.logger.warning("OIDC: token endpoint unavailable (%s)", type(exc).__name__)
        raise ProviderUnavailable() from None
    except Exception as exc:  # Authlib's OAuthError: the issuer refused the code
        raise AuthenticationError("The identity provider refused the sign-in") from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise AuthenticationError("The identity provider sent no ID token")
    return verify_id_token(name, id_token, nonce=nonce)


def verify_id_token(name: str, id_token: str, *, nonce: str) -> Claims:
    cfg = provider(name)
    meta = metadata(name)
    claims = _decode(id_token, meta["jwks_uri"])
    registry = JWTClaimsRegistry(
        leeway=60,
        iss={"essential": True, "value": cfg["issuer"]},
        sub={"essential": True},
        aud={"essential": True, "value": cfg["client_id"]},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise AuthenticationError(f"The ID token is not valid ({exc.error})") from None
    azp = claims.get("azp")
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp != cfg["client_id"]:
        raise AuthenticationError("The ID token is not valid (azp)")
    email = claims.get("email")
    return Claims(
        subject=str(claims["sub"])[:255],
        email=str(email).strip().lower()[:255] if isinstance(email, str) and email else None,
        email_verified=claims.get("email_verified") is True
        or claims.get("email_verified") == "true",
        name=claims.get("name") if isinstance(claims.get("name"), str) else None,
        preferred_username=claims.get("preferred_username")
        if isinstance(claims.get("preferred_username"), str)
        else None,
    )


def _decode(id_token: str, jwks_uri: str) -> dict[str, Any]:
    for fresh in (False, True):  # a key rotated since the cache was filled: fetch once more
        keys = KeySet.import_key_set(cast(Any, _get_json(jwks_uri, fresh=fresh)))
        try:
            return dict(jwt.decode(id_token, keys, algorithms=ALGORITHMS).claims)
        except (JoseError, ValueError) as exc:
            if fresh:
                raise AuthenticationError("The ID token signature does not verify") from exc
    raise AuthenticationError("The ID token signature does not verify")  # pragma: no cover
