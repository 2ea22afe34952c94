"""gunicorn for Flask-SocketIO on gevent: one worker per process, WebSocket-capable.

Scale out with more instances behind a load balancer (sticky sessions for Socket.IO); the
Redis message queue joins them. Provider callbacks and the JSON API can run in their own
group (``wsgi_api:app``, ``SOCKETIO_SERVER=false``): plain gevent workers, ``WEB_WORKERS`` of
them per instance. Settings come from the environment.
"""

import os

from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from geventwebsocket.handler import WebSocketHandler

#: Read buffer per connection. pywsgi's default (8 KiB) is allocated for every socket and kept
#: for its whole life; requests and client frames here are small, larger ones take more reads.
RFILE_BUFFER = int(os.environ.get("WS_READ_BUFFER", "1024"))


class SlimWebSocketHandler(WebSocketHandler):
    def __init__(self, sock, address, server, rfile=None):
        if rfile is None:
            rfile = sock.makefile("rb", RFILE_BUFFER)
        super().__init__(sock, address, server, rfile)

    def run_websocket(self):
        # The HTTP request is over once the socket is upgraded: keep only the two headers
        # pywsgi reads again after the socket closes, not the parsed message for its whole life.
        self.headers = {name: self.headers.get(name, "") for name in ("Connection", "Upgrade")}
        super().run_websocket()


class WebSocketWorker(GeventWebSocketWorker):
    """gevent + WebSocket worker whose held sockets cost less memory (docs/realtime.md)."""

    wsgi_handler = SlimWebSocketHandler


# A container listens on all interfaces; outside one, set HOST or BIND.
_host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104
bind = os.environ.get("BIND", f"{_host}:{os.environ.get('PORT', '5000')}")
#: ``SOCKETIO_SERVER=false`` (``wsgi_api:app``): a callbacks / JSON API group without
#: Socket.IO, several plain gevent workers per instance (docs/perf.md, scale-out).
SOCKETIO_SERVER = (os.environ.get("SOCKETIO_SERVER") or "true").strip().lower() in {
    "1",
    "true",
    "yes",
    "on",
}
# Flask-SocketIO needs one worker per process (sticky sessions); scale with instances.
workers = int(os.environ.get("WEB_WORKERS", "1"))
worker_class = WebSocketWorker if SOCKETIO_SERVER else "gevent"
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    # Prometheus multiprocess mode (docs/operations.md, "Metrics"): the workers' figure files
    # live in PROMETHEUS_MULTIPROC_DIR; a new server starts from an empty directory.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))


def child_exit(server, worker):
    # A dead worker's levels (pool in use, queue depth) leave the sums; its counts stay.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    # psycopg2 blocks the event loop unless it waits through gevent.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def post_worker_init(worker):
    # The app is built: move its import-time objects (modules, metadata, compiled statements)
    # out of the collector's sight, so a full collection during a request walks only what
    # requests allocate (a cheap cut of GC pauses in the tail; CPython's documented recipe).
    import gc

    gc.freeze()
    # Production: warn once if DATABASE_URL is a superuser or the schema owner (one catalogue
    # query per worker at start, none on requests; docs/security.md, "Database roles").
    app = getattr(worker, "wsgi", None)
    config = getattr(app, "config", None)
    if config is not None and config.get("ENV") == "production":
        from app.core import dbroles
        from app.core.extensions import db

        with app.app_context():
            dbroles.warn_if_privileged(db.engine)


def worker_exit(server, worker):
    # A worker stopped gracefully (restart, scale-down, max-requests) first applies the
    # after-commit play work it queued (loyalty points), within 5 s; the sweep redoes the rest.
    from app.core import events as live_events
    from app.play import events

    events.drain(5.0)
    live_events.drain(2.0)  # then the live events those listeners published
