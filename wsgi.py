"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` or ``python wsgi.py`` (dev).

``python wsgi.py`` (what ``make run`` starts) in the embedded default (no ``REDIS_URL``, so no
``worker.py``) also runs the periodic jobs in this process: ``app.core.periodic``'s
in-process scheduler, on a greenlet (``EMBEDDED_SCHEDULER=false`` turns it off).
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # The development server runs on gevent too; patch before anything imports sockets.
    from gevent import monkey

    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from app import create_app
from app.core import periodic
from app.core.extensions import socketio

app = create_app()

if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    periodic.start_in_process(app)  # embedded only; logs that the jobs run here
    socketio.run(app, host=host, port=port, log_output=True)
