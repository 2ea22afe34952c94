"""Where a player may be sent back to after a payment page (deposit ``return_url`` /
``cancel_url``): an allow-list of origins, so the casino is never an open redirect (issue 21).

* A relative path (``/wallet?deposit=ok``: one leading slash, no scheme, no host, no
  backslash) is always allowed; it stays on the site that redirects.
* An absolute URL must be ``http``/``https`` without credentials and its origin
  (``scheme://host[:port]``) must be in ``REDIRECT_ALLOWED_ORIGINS``; when that setting is empty,
  the allowed origins are the player front ends (``CORS_ORIGINS``) and ``PUBLIC_URL``.
* Control characters and anything longer than 500 characters are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from flask import current_app

MAX_LENGTH = 500
NOT_ALLOWED = "Must be a relative path or a URL on an allowed origin"


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(cfg: Mapping[str, Any] | None = None) -> set[str]:
    cfg = current_app.config if cfg is None else cfg
    configured = cfg.get("REDIRECT_ALLOWED_ORIGINS") or []
    if isinstance(configured, str):
        configured = configured.split(",")
    if not configured:
        configured = [*(cfg.get("CORS_ORIGINS") or []), cfg.get("PUBLIC_URL") or ""]
    return {o for o in (_origin(c) for c in configured if c and c.strip()) if o}


def is_relative(target: str) -> bool:
    parts = urlsplit(target)
    return (
        not parts.scheme
        and not parts.netloc
        and target.startswith("/")
        and not target.startswith("//")
    )


def is_allowed(target: str | None, cfg: Mapping[str, Any] | None = None) -> bool:
    if not target:
        return False
    if len(target) > MAX_LENGTH or "\\" in target:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return False
    if is_relative(target):
        return True
    parts = urlsplit(target)
    if parts.username or parts.password:
        return False
    origin = _origin(target)
    return origin is not None and origin in allowed_origins(cfg)


def absolute(target: str, cfg: Mapping[str, Any] | None = None) -> str:
    """An allowed target as an absolute URL (a relative path is on ``PUBLIC_URL``)."""
    cfg = current_app.config if cfg is None else cfg
    if is_relative(target):
        return urljoin(str(cfg.get("PUBLIC_URL") or "") + "/", target)
    return target
