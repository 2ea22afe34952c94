"""Background worker: RQ workers on the named queues plus the periodic scheduler.

``python worker.py`` (all queues) or ``python worker.py settlement payouts``;
``--burst`` drains the queues once and exits (cron, tests).
"""

from __future__ import annotations

import logging
import multiprocessing
import sys

from app import create_app
from app.core.queues import QUEUE_NAMES

log = logging.getLogger("jackpotx.worker")


def run_scheduler() -> None:
    """rq-scheduler loop: enqueues the periodic jobs registered in ``app.core.schedule``."""
    from rq_scheduler import Scheduler

    from app.core.schedule import register_periodic_jobs

    app = create_app()
    with app.app_context():
        connection = app.extensions["redis"]
        scheduler = Scheduler(queue_name="default", connection=connection, interval=10)
        register_periodic_jobs(scheduler)
        scheduler.run()


def main(queue_names: list[str], *, burst: bool = False) -> None:
    """Work the queues; ``burst`` drains them once and exits (no periodic scheduler)."""
    from rq import Worker

    app = create_app()
    if not app.config["REDIS_URL"]:
        sys.exit("worker.py needs REDIS_URL; the embedded default runs jobs in-process")
    unknown = sorted(set(queue_names) - set(QUEUE_NAMES))
    if unknown:
        sys.exit(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUE_NAMES)}")
    if not burst:
        scheduler = multiprocessing.Process(target=run_scheduler, name="rq-scheduler", daemon=True)
        scheduler.start()
    with app.app_context():
        queues = [app.extensions["rq_queues"][name] for name in queue_names]
        worker = Worker(queues, connection=app.extensions["redis"])
        log.info("worker listening on %s", ", ".join(queue_names))
        worker.work(with_scheduler=not burst, burst=burst)


if __name__ == "__main__":
    args = sys.argv[1:]
    burst = "--burst" in args
    names = [a for a in args if a != "--burst"]
    main(names or list(QUEUE_NAMES), burst=burst)
