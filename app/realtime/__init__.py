"""Real time: Socket.IO on gevent, fed by the event bus (``app.core.events``).

``init_app`` picks this process's emitter, subscribes it to the bus once per process and binds
the Socket.IO server (listening on the Redis channel when ``REDIS_URL`` is set), unless
``SOCKETIO_SERVER`` is off (a callbacks / JSON API process group, ``wsgi_api.py``).
"""

from __future__ import annotations

from flask import Flask

_subscribed = False


def allowed_origins(app: Flask) -> list[str]:
    """Browser origins that may open a socket: the player front ends plus our own console."""
    origins = list(app.config["CORS_ORIGINS"])
    if app.config["PUBLIC_URL"] not in origins:
        origins.append(app.config["PUBLIC_URL"])
    return origins


def origin_check(app: Flask):
    """The configured origins, plus same-origin pages (the console talking to its own host,
    whatever name or port it is served under). A browser always sends the real Host, so a
    cross-site page cannot pass as same-origin."""
    configured = frozenset(allowed_origins(app))

    def allowed(origin: str | None, environ: dict) -> bool:
        if origin in configured:
            return True
        host = environ.get("HTTP_HOST")
        return bool(host) and origin == f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    return allowed


def init_app(app: Flask) -> None:
    global _subscribed
    # Handlers register on the SocketIO object before its server exists, so every app built
    # in this process (tests build several) gets them.
    from app.core import bus
    from app.core.extensions import socketio
    from app.realtime import delivery, handlers, lean  # noqa: F401 - registers the handlers
    from app.realtime.emitter import batch as emitter_batch
    from app.realtime.emitter import channel_for, make_emitter

    lean.install()
    app.extensions["jx_emitter"] = make_emitter(app)
    if not _subscribed:
        bus.subscribe(delivery.deliver)
        bus.add_batcher(emitter_batch)
        _subscribed = True
    if app.config["REDIS_URL"] and not app.config["SOCKETIO_SERVER"]:
        # A callbacks / JSON API process group (wsgi_api.py): it publishes on the Redis
        # channel through the write-only emitter and serves no sockets itself.
        return
    options = {}
    if app.config["REDIS_URL"]:
        options = {"message_queue": app.config["REDIS_URL"], "channel": channel_for(app)}
    socketio.init_app(
        app,
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
        cors_allowed_origins=origin_check(app),
        logger=False,
        engineio_logger=False,
        ping_interval=app.config["SOCKETIO_PING_INTERVAL"],
        ping_timeout=app.config["SOCKETIO_PING_TIMEOUT"],
        max_http_buffer_size=64 * 1024,
        **options,
    )
