"""The callback lane: ``POST /api/provider-callback/...`` served without Flask's request cycle.

A WSGI layer under ``ProxyFix`` (so the caller's address is already resolved) and above
``Flask.wsgi_app``. For a callback it serves, it pushes an **app context only** and calls the
same ``callbacks.dispatch`` the blueprint's views call (signature, adapter, ``actions.handle``,
the callback log), then adds what the app's request hooks add to a callback's answer. What
Flask's cycle would do for a callback, and where the lane does it:

* before the view: the metrics clock, the correlation id (taken from ``X-Correlation-ID`` when
  well formed; in the log records and the callback log row) — here; the body-size gate — a
  request without ``Content-Length`` or over ``CALLBACK_MAX_BODY_BYTES`` is left to Flask,
  which answers its 413 as always; the blueprint's per-worker rate limit — here, the same
  counter and the same 429. Not for callbacks anyway: maintenance and network gates (the
  path is exempt), Flask-Limiter (filtered out), CSRF (exempt), the docs password,
  Flask-Login / JWT (nothing loads a user), the session (never read or written).
* after the view: ``X-Correlation-ID``, the security headers and ``Cache-Control: no-store``
  (``security.security_headers``), the CORS headers (flask-cors sends them with
  ``always_send`` even without an ``Origin``: computed once from the same options),
  ``Vary: Cookie`` (Flask-Login reads the session on every request, so Flask's session save
  adds it; nothing else of the session), the request figures (``metrics.count_request``).
  Inline after-commit play events run once the answer is built
  (``play_events.after_answer``), as ``after_this_request`` does.
* an exception escaping the view (an outage before the wallet core, a bug): the lane hands
  it to Flask's own error handling in a request context made from the same environ and body
  (the blueprint's ``_outage`` handler, the app's envelope handlers, the after-request
  hooks), so the answer is the one the Flask path gives.

Anything else — another method, an ``Origin`` header (a browser: CORS decides per origin), a
path the blueprint's rules would not match — goes through Flask unchanged.
``CALLBACK_LANE=false`` turns the lane off. ``tests/play/test_callback_lane.py`` compares the
lane's answers (status, headers in order, body) with Flask's for the same requests.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context
from flask_cors.core import get_cors_headers, get_cors_options, parse_resources, try_match_pattern
from werkzeug.datastructures import Headers

from app.blueprints.provider import callbacks
from app.core import events, metrics, observability, security
from app.core.extensions import cors
from app.play import events as play_events

PREFIX = "/api/provider-callback/"
# The blueprint's two rules: ``/<string:provider_code>`` and ``/<string:...>/<path:action>``.
_PATH = re.compile(r"/api/provider-callback/([^/]+)(?:/([^/].*))?\Z", re.DOTALL)
_RULE = callbacks.blp.url_prefix + "/<string:provider_code>"
_RULE_ACTION = _RULE + "/<path:action>"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class CallbackLane:
    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._cors: list[tuple[str, Any]] | None = None
        #: Headers ``_finish`` appends, by the (lower-cased) names the answer carries.
        self._tails: dict[tuple[str, ...], tuple[list[tuple[str, str]], int]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if (
            not path.startswith(PREFIX)
            or environ.get("REQUEST_METHOD") != "POST"
            or "HTTP_ORIGIN" in environ
        ):
            return self.wsgi_app(environ, start_response)
        config = self.app.config
        match = _PATH.match(path)
        length = _content_length(environ)
        if (
            not config["CALLBACK_LANE"]
            or match is None
            or length is None
            or length > int(config["CALLBACK_MAX_BODY_BYTES"])
        ):
            return self.wsgi_app(environ, start_response)
        return self._serve(environ, match.group(1), match.group(2))(environ, start_response)

    def _serve(self, environ: dict[str, Any], code: str, action: str | None) -> Response:
        started = time.perf_counter()
        corr = observability.correlation_from(environ.get("HTTP_X_CORRELATION_ID"))
        token = observability.correlation_id.set(corr)
        serving = events.serving.set(True)
        body = b""
        ctx = self._app_context()
        try:
            with ctx:
                req = self.app.request_class(environ)
                try:
                    body = req.get_data(cache=True)
                    with play_events.after_answer():
                        response = callbacks.rate_limited(
                            code,
                            req.remote_addr or "0.0.0.0",  # noqa: S104 - a key
                        ) or callbacks.dispatch(code, action, req)
                except Exception as exc:
                    return self._flask_answer(environ, body, corr, exc)
                self._finish(response, environ["PATH_INFO"], corr)
                metrics.count_request(
                    _RULE if action is None else _RULE_ACTION, "POST", response.status_code, started
                )
                return response
        finally:
            events.serving.reset(serving)
            observability.correlation_id.reset(token)
            preserve = environ.get("werkzeug.debug.preserve_context")
            if preserve is not None and not isinstance(ctx, nullcontext):
                # Flask's test client inside ``with client:`` keeps the request's context
                # after the answer (Flask.wsgi_app hands it over the same way).
                preserve(ctx)

    def _app_context(self) -> AbstractContextManager[Any]:
        """A new app context, unless this app's is current already (a test holding one), as
        Flask's request context does: the callback then shares that context's session."""
        if has_app_context() and current_app._get_current_object() is self.app:  # type: ignore[attr-defined]
            return nullcontext()
        return self.app.app_context()

    def _finish(self, response: Response, path: str, corr: str) -> None:
        """What the app's after-request hooks add to a callback's answer, in their order
        (``_finish_slowly``), from a cache of what they add to an answer of this shape."""
        headers = response.headers
        names = tuple(name.lower() for name, _ in headers._list)
        if "vary" in names or observability.HEADER.lower() in names:
            self._finish_slowly(response, path, corr)
            return
        # The security and CORS headers depend only on the names the answer already carries
        # (set only when missing) and on this path's prefix: computed once per shape.
        shape = self._tails.get(names)
        if shape is None:
            probe = Response(status=response.status)
            probe.headers = Headers(list(headers.items()))
            self._finish_slowly(probe, path, _MARK)
            tail = list(probe.headers.items())[len(names) :]
            shape = self._tails[names] = (tail, tail.index((observability.HEADER, _MARK)))
        tail, at = shape
        # Validated values, appended as ``Headers.add`` would (without re-checking each one).
        headers._list.extend(tail)
        headers._list[len(names) + at] = (observability.HEADER, corr)

    def _finish_slowly(self, response: Response, path: str, corr: str) -> None:
        security.security_headers(response, path)
        for name, value in self._cors_headers():
            response.headers.add(name, value)
        response.headers[observability.HEADER] = corr
        # Flask-Login's after-request hook reads the (empty) session on every request, so
        # Flask's session save answers ``Vary: Cookie``; the lane never opens the session.
        response.vary.add("Cookie")

    def _flask_answer(
        self, environ: dict[str, Any], body: bytes, corr: str, exc: Exception
    ) -> Response:
        """The answer Flask gives when the view raises ``exc``: its handlers and after-request
        hooks, in a request context over the same request."""
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        app = self.app
        with app.request_context(env):
            g.correlation_id = corr
            try:
                return app.finalize_request(app.handle_user_exception(exc))
            except Exception as error:
                return app.handle_exception(error)

    def _cors_headers(self) -> list[tuple[str, Any]]:
        """flask-cors' headers for a POST without ``Origin`` on the callback path: they depend
        on its options only (``always_send``)."""
        if self._cors is None:
            kwargs = self.app.extensions.get("jx_cors_options", {})
            found: list[tuple[str, Any]] = []
            for pattern, options in parse_resources(kwargs.get("resources", r"/*")):
                if try_match_pattern(PREFIX, pattern, caseSensitive=True):
                    computed = get_cors_options(self.app, cors._options, kwargs, options)
                    found = list(get_cors_headers(computed, Headers(), "POST").items(multi=True))
                    break
            self._cors = found
        return self._cors


#: The correlation id's place in a cached header shape (``CallbackLane._finish``).
_MARK = "jx-correlation-id-placeholder"


def _content_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH") or ""
    return int(value) if _DIGITS.fullmatch(value) else None


_DIGITS = re.compile(r"[0-9]{1,12}")


def install(app: Flask) -> None:
    """Put the lane right above ``Flask.wsgi_app`` (call before ``ProxyFix`` wraps it)."""
    app.wsgi_app = CallbackLane(app, app.wsgi_app)  # type: ignore[method-assign]
