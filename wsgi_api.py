"""Provider callbacks and the player / staff JSON API, without Socket.IO (docs/perf.md).

    SOCKETIO_SERVER=false WEB_WORKERS=4 gunicorn -c gunicorn.conf.py wsgi_api:app

A process group of several plain gevent workers behind the same load balancer as the
Socket.IO group (``wsgi:app``, one worker per process, sticky sessions), which gets only
``/socket.io/``. Events published here go out on the Redis channel and reach the Socket.IO
group's clients as from any other publisher; Redis is therefore required.
"""

from __future__ import annotations

import os

# Before the app is built: this group binds no Socket.IO server (gunicorn.conf.py reads the
# same variable to pick the plain gevent worker).
os.environ["SOCKETIO_SERVER"] = "false"

from app import create_app

app = create_app()
if not app.config["REDIS_URL"]:
    raise RuntimeError("wsgi_api needs REDIS_URL: its events reach sockets through Redis")
