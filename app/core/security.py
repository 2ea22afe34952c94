"""Response hardening and request gates shared by every blueprint."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.core import jsonsafe
from app.core.errors import MaintenanceMode, ValidationError
from app.core.settings import maintenance_state

#: Paths that keep working in maintenance mode: staff, providers, gateways, ops.
_MAINTENANCE_EXEMPT = (
    "/api/admin",
    "/api/provider-callback",
    "/api/payment/webhook",
    "/api/docs",
    "/api/openapi.json",
    "/api/status",
)

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'; object-src 'none'"
)


#: ``GAME_EMBED_ORIGINS`` entries: an origin (scheme, host, optional port; no path).
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def embed_origins(value: list[str] | str) -> list[str]:
    """``GAME_EMBED_ORIGINS`` checked: a list of origins, each as a browser sends it."""
    items = value.split(",") if isinstance(value, str) else value
    origins = [item.strip().rstrip("/") for item in items if item.strip()]
    bad = [origin for origin in origins if not _ORIGIN.match(origin)]
    if bad:
        raise ValueError(
            f"GAME_EMBED_ORIGINS: {', '.join(bad)} is not an origin (https://host[:port])"
        )
    return origins


def allow_embedding(response: Any) -> Any:
    """For game pages: the player app's origins (``GAME_EMBED_ORIGINS``) may frame them, with
    CSP ``frame-ancestors`` (X-Frame-Options cannot name an origin, so it is left out). Empty
    (the default): nobody may, as on every other page."""
    origins = current_app.config.get("GAME_EMBED_ORIGINS") or []
    if not origins:
        return response
    ancestors = " ".join(["'self'", *origins])
    response.headers["Content-Security-Policy"] = CSP.replace(
        "frame-ancestors 'none'", f"frame-ancestors {ancestors}"
    )
    g.jx_embeddable = True  # no X-Frame-Options DENY (_security_headers)
    return response


#: Paths whose bodies come from machines that sign small messages: a few KiB at most.
_MACHINE_BODIES = ("/api/provider-callback", "/api/payment/webhook")


_LIMIT_ATTR = "_jx_max_body_bytes"
_View = TypeVar("_View", bound=Callable[..., Any])


def body_limit(limit: int | str | Callable[[], int]) -> Callable[[_View], _View]:
    """This route's largest request body, whatever its content type, instead of the default
    by path (``API_MAX_JSON_BYTES`` for JSON under ``/api/``): bytes, a config key, or a
    function called per request. On a view function or a ``MethodView`` method, as the
    outermost decorator; 413 beyond it, before anything reads the body."""

    def mark(view: _View) -> _View:
        setattr(view, _LIMIT_ATTR, limit)
        return view

    return mark


def _route_limit() -> int | None:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return None
    marked = getattr(view, _LIMIT_ATTR, None)
    view_class = getattr(view, "view_class", None)
    if marked is None and view_class is not None:
        marked = getattr(getattr(view_class, request.method.lower(), None), _LIMIT_ATTR, None)
    if marked is None:
        return None
    if isinstance(marked, str):
        return int(current_app.config[marked])
    if callable(marked):
        return int(marked())
    return int(marked)


def _body_limit() -> int | None:
    """The largest body this request may send: callbacks and webhooks by path, then the
    route's own (:func:`body_limit`), then JSON under ``/api/`` (``None``: the app's
    default, ``MAX_CONTENT_LENGTH``)."""
    path = request.path
    if path.startswith(_MACHINE_BODIES):
        return int(current_app.config["CALLBACK_MAX_BODY_BYTES"])
    route = _route_limit()
    if route is not None:
        return route
    if path.startswith("/api/") and request.mimetype == "application/json":
        return int(current_app.config["API_MAX_JSON_BYTES"])
    return None


def _refuse_deep_json() -> None:
    """A JSON API body nested too deep is a 400 here: webargs parses bodies with the standard
    library, whose recursion on 100,000 brackets was a 500. Other malformed JSON is left to
    webargs' own 400. (Callbacks and webhooks parse with the limit themselves.)

    A string of the body (key or value) with a control character is a 400 too (below)."""
    try:
        document = jsonsafe.loads(request.get_data(cache=True), exact_numbers=False)
    except jsonsafe.JSONTooDeep as exc:
        raise ValidationError(str(exc)) from None
    except jsonsafe.JSONRejected:
        return
    where = _control_in_json(document, "")
    if where is not None:
        raise _control_refusal(where or "_body")


#: NUL and the other C0 controls and DEL. Text fields may hold tab, line feed and carriage
#: return (a multi-line message); nothing else of these has a use, and NUL breaks PostgreSQL
#: (a 500 on ``?search=%00``), logs and the C libraries behind drivers.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: A URL path or query has no use for any of them.
_CONTROL_IN_URL = re.compile(r"[\x00-\x1f\x7f]")


def _control_refusal(field: str) -> ValidationError:
    return ValidationError.field(field, "Control characters (such as NUL) are not allowed")


def _control_in_json(value: Any, path: str) -> str | None:
    """The path of the first string (key or value) with a control character, else None."""
    if isinstance(value, str):
        return path if _CONTROL_IN_TEXT.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if _CONTROL_IN_TEXT.search(key):
                return path or "_body"
            found = _control_in_json(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _control_in_json(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def _refuse_control_characters() -> None:
    """400 in the standard envelope for a control character in the path, the query string or
    a form field (JSON bodies: ``_refuse_deep_json``). Machine paths (provider callbacks,
    gateway webhooks) answer in their own protocol and are left to it."""
    if _CONTROL_IN_URL.search(request.path):
        raise _control_refusal("_path")
    for key, value in request.args.items(multi=True):
        if _CONTROL_IN_URL.search(key) or _CONTROL_IN_URL.search(value):
            raise _control_refusal(key if not _CONTROL_IN_URL.search(key) else "_query")
    if request.mimetype == "application/x-www-form-urlencoded":
        for key, value in request.form.items(multi=True):
            if _CONTROL_IN_TEXT.search(key) or _CONTROL_IN_TEXT.search(value):
                raise _control_refusal(key if not _CONTROL_IN_TEXT.search(key) else "_form")


def init_app(app: Flask) -> None:
    app.json = jsonsafe.LimitedJSONProvider(app)
    app.config["GAME_EMBED_ORIGINS"] = embed_origins(app.config.get("GAME_EMBED_ORIGINS") or [])

    @app.before_request
    def _body_size_gate():
        """413 before anything reads the body: at once when Content-Length says so, and
        while reading when it does not (chunked)."""
        limit = _body_limit()
        if limit is not None:
            request.max_content_length = limit
            if request.content_length is not None and request.content_length > limit:
                raise RequestEntityTooLarge(f"The body is larger than {limit} bytes")
        if not request.path.startswith(_MACHINE_BODIES):
            _refuse_control_characters()
        if limit is None:
            return
        if (
            request.is_json
            and request.content_length
            and not request.path.startswith(_MACHINE_BODIES)
        ):
            _refuse_deep_json()

    @app.before_request
    def _maintenance_gate():
        path = request.path
        if not path.startswith("/api/") or path.startswith(_MAINTENANCE_EXEMPT):
            return
        if request.method == "OPTIONS":
            return
        state = maintenance_state()
        if state["enabled"]:
            raise MaintenanceMode(state["message"] or "The casino is under maintenance")

    @app.after_request
    def _security_headers(response):
        return security_headers(response, request.path, embeddable=bool(g.get("jx_embeddable")))


def security_headers(response: Any, path: str, *, embeddable: bool = False) -> Any:
    """The headers every answer carries (``path``: the request's)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if not embeddable:
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config["ENV"] == "production":
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if path.startswith("/api/") and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    return response
