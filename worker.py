"""Background worker: RQ workers on the named queues plus the periodic scheduler.

``python worker.py`` (all queues) or ``python worker.py settlement payouts``.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys

from app import create_app
from app.jobs.queues import QUEUE_NAMES

log = logging.getLogger("jackpotx.worker")


def run_scheduler() -> None:
    """rq-scheduler loop: enqueues the periodic jobs registered in ``app.jobs.schedule``."""
    from rq_scheduler import Scheduler

    from app.jobs.schedule import register_periodic_jobs

    app = create_app()
    with app.app_context():
        connection = app.extensions["redis"]
        scheduler = Scheduler(queue_name="default", connection=connection, interval=10)
        register_periodic_jobs(scheduler)
        scheduler.run()


def main(queue_names: list[str]) -> None:
    from rq import Worker

    app = create_app()
    if not app.config["REDIS_URL"]:
        sys.exit("worker.py needs REDIS_URL; the embedded default runs jobs in-process")
    scheduler = multiprocessing.Process(target=run_scheduler, name="rq-scheduler", daemon=True)
    scheduler.start()
    with app.app_context():
        queues = [app.extensions["rq_queues"][name] for name in queue_names]
        worker = Worker(queues, connection=app.extensions["redis"])
        log.info("worker listening on %s", ", ".join(queue_names))
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(QUEUE_NAMES))
