"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` or ``python wsgi.py`` (dev)."""

from __future__ import annotations

import os

if __name__ == "__main__":
    # The development server runs on gevent too; patch before anything imports sockets.
    from gevent import monkey

    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from app import create_app
from app.core.extensions import socketio

app = create_app()

if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    socketio.run(app, host=host, port=port, log_output=True)
