"""Outbound HTTP to URLs staff configure (gateway ``api_endpoint``, provider ``api_url``).

An Admin-set URL used to make the server POST anywhere, internal addresses included, with the
gateway's secret, and its errors told open ports from closed ones (SSRF; issue 21). Invariants:

* Only ``http``/``https`` URLs without credentials in them; when ``OUTBOUND_ALLOWED_HOSTS`` is
  set, the host must match one of its entries (``api.stripe.com`` exactly, or ``*.example.com``
  for any subdomain).
* Every address the host resolves to must be public: private, loopback, link-local, multicast,
  reserved, unspecified, shared (CGNAT) and IPv4-mapped private addresses are refused. Loopback
  is allowed only with ``OUTBOUND_ALLOW_LOOPBACK`` (development and tests, which serve the
  "remote" side on 127.0.0.1). The check runs **at connect time on the address actually
  connected to** (``_GuardedAdapter``), so a DNS answer that changes between a check and the
  connection (rebinding) cannot slip through; TLS still verifies the certificate for the name.
* No proxies from the environment, no redirects followed.
* Every failure (refused destination, DNS failure, connection refused, timeout, TLS error, an
  HTTP error status where the caller asks for it) surfaces as :class:`OutboundError` with one
  fixed message: the error never tells an open port from a closed one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app, has_app_context
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

UNREACHABLE = "the remote service could not be reached or did not accept the request"
REFUSED = "the URL is not an allowed outbound destination"


class OutboundError(Exception):
    """An outbound call failed. The message is always :data:`UNREACHABLE` (no port oracle)."""

    def __init__(self, message: str = UNREACHABLE) -> None:
        super().__init__(message)


class OutboundRefused(OutboundError):
    """The URL or an address it resolves to is not allowed (checked before any byte is sent)."""

    def __init__(self, message: str = REFUSED) -> None:
        super().__init__(message)


# --- policy -------------------------------------------------------------------------------


def _config() -> Mapping[str, Any]:
    return current_app.config if has_app_context() else {}


def _allowed_hosts(cfg: Mapping[str, Any]) -> list[str]:
    value = cfg.get("OUTBOUND_ALLOWED_HOSTS") or []
    if isinstance(value, str):
        value = value.split(",")
    return [h.strip().lower().rstrip(".") for h in value if h.strip()]


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, *, loopback: bool) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_loopback:
        return loopback
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def check_url(url: str, cfg: Mapping[str, Any] | None = None) -> tuple[str, str, int]:
    """Static checks of ``url`` (no DNS): scheme, host, allow-list, literal addresses.

    Returns ``(scheme, host, port)``; raises :class:`OutboundRefused`. Used when staff save a
    URL (an early, clear error) and again before every call.
    """
    cfg = _config() if cfg is None else cfg
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        raise OutboundRefused() from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in ("http", "https") or not host or parts.username or parts.password:
        raise OutboundRefused()
    patterns = _allowed_hosts(cfg)
    if patterns and not host_allowed(host, patterns):
        raise OutboundRefused()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(
        literal, loopback=bool(cfg.get("OUTBOUND_ALLOW_LOOPBACK"))
    ):
        raise OutboundRefused()
    return scheme, host, port or (443 if scheme == "https" else 80)


def resolve(host: str, port: int, *, loopback: bool) -> list[tuple[Any, ...]]:
    """Every address ``host`` resolves to, or :class:`OutboundRefused` if any is not allowed
    (one private answer among public ones is refused: it may be the one connected to)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise OutboundError() from None
    if not infos:
        raise OutboundError()
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not address_allowed(ip, loopback=loopback):
            raise OutboundRefused()
    return infos


# --- the guarded transport ----------------------------------------------------------------


class _GuardedConnectionMixin:
    """Resolve, check and connect to the checked address itself (no second lookup)."""

    outbound_loopback = False
    _dns_host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        infos = resolve(self._dns_host, self.port, loopback=self.outbound_loopback)
        for family, socktype, proto, _, sockaddr in infos:
            sock = socket.socket(family, socktype, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                timeout = self.timeout
                sock.settimeout(
                    timeout if isinstance(timeout, int | float) else socket.getdefaulttimeout()
                )
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
                return sock
            except TimeoutError:
                sock.close()
                raise ConnectTimeoutError(self, UNREACHABLE) from None
            except OSError:
                sock.close()
        raise NewConnectionError(self, UNREACHABLE)  # type: ignore[arg-type]


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, *, loopback: bool) -> None:
        self._loopback = loopback
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        loopback = self._loopback

        class Http(_GuardedHTTPConnection):
            outbound_loopback = loopback

        class Https(_GuardedHTTPSConnection):
            outbound_loopback = loopback

        class HttpPool(HTTPConnectionPool):
            ConnectionCls = Http

        class HttpsPool(HTTPSConnectionPool):
            ConnectionCls = Https

        self.poolmanager.pool_classes_by_scheme = {"http": HttpPool, "https": HttpsPool}


def session(cfg: Mapping[str, Any] | None = None) -> requests.Session:
    """A ``requests.Session`` whose every connection is checked (see the module docstring)."""
    return guard(requests.Session(), cfg)


def guard(http: requests.Session, cfg: Mapping[str, Any] | None = None) -> requests.Session:
    """Make an existing session (a library's ``requests.Session`` subclass, e.g. Authlib's
    OAuth2 client) connect only through the checks of this module; returns it."""
    cfg = _config() if cfg is None else cfg
    http.trust_env = False  # no HTTP(S)_PROXY from the environment: we connect ourselves
    adapter = _GuardedAdapter(loopback=bool(cfg.get("OUTBOUND_ALLOW_LOOPBACK")))
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def post(url: str, *, raise_for_status: bool = False, **kwargs: Any) -> requests.Response:
    """POST to a staff-configured URL through the guard (see :func:`request`)."""
    return request("POST", url, raise_for_status=raise_for_status, **kwargs)


def request(
    method: str, url: str, *, raise_for_status: bool = False, **kwargs: Any
) -> requests.Response:
    """Call a staff-configured URL through the guard. Redirects are never followed.

    With ``raise_for_status`` an HTTP error status is an :class:`OutboundError` too (same
    message as a closed port).
    """
    check_url(url)
    kwargs["allow_redirects"] = False
    with session() as http:
        try:
            response = http.request(method, url, **kwargs)
        except OutboundRefused:
            raise
        except (requests.RequestException, OSError, ValueError):
            raise OutboundError() from None
    if raise_for_status and response.status_code >= 400:
        raise OutboundError()
    return response
