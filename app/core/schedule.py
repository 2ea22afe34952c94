"""Periodic jobs for rq-scheduler; each domain adds its own entry here."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: (job function path, interval seconds, queue)
PERIODIC_JOBS: list[tuple[str, int, str]] = [
    ("app.core.jobs.deliver_pending", 60, "notifications"),
    ("app.core.jobs.relay_outbox", 10, "default"),
    ("app.compliance.jobs.send_reality_checks", 60, "notifications"),
    ("app.play.jobs.settle_stale_rounds", 600, "settlement"),
    ("app.prizes.jobs.jackpots_periodic", 10, "default"),
    ("app.prizes.jobs.settle_tournaments", 60, "payouts"),
    ("app.prizes.jobs.refresh_tournament_boards", 60, "default"),
    ("app.prizes.jobs.run_lottery_draws", 60, "payouts"),
    ("app.bonus.jobs.expire_bonuses", 300, "default"),
    ("app.bonus.jobs.pay_cashback", 3600, "default"),
    # Settles the last closed commission period; a run after it is settled pays nothing.
    ("app.affiliates.jobs.pay_commissions", 6 * 3600, "payouts"),
]

#: Scheduled periodic jobs have fixed ids, so registering again overwrites instead of adding.
ID_PREFIX = "jx-periodic-"
_LOCK = "jx:scheduler:register"


def periodic_job_id(func: str) -> str:
    # RQ job ids allow only [A-Za-z0-9_-].
    return ID_PREFIX + func.replace(".", "-")


def register_periodic_jobs(scheduler) -> list[str]:
    """Make the scheduled set equal ``PERIODIC_JOBS`` (idempotent across restarts and racing
    workers): fixed job ids, stale entries cancelled, all under a Redis lock."""
    from datetime import UTC, datetime

    wanted = {periodic_job_id(f): (f, interval, queue) for f, interval, queue in PERIODIC_JOBS}
    with scheduler.connection.lock(_LOCK, timeout=30, blocking_timeout=30):
        for existing in scheduler.get_jobs():
            if existing.meta.get("jackpotx_periodic") and existing.id not in wanted:
                scheduler.cancel(existing)
                existing.delete()
                log.info("unscheduled %s", existing.id)
        for job_id, (func, interval, queue_name) in wanted.items():
            # Same id: the job hash is overwritten and the sorted-set member re-scored.
            scheduler.schedule(
                scheduled_time=datetime.now(UTC),
                func=func,
                interval=interval,
                repeat=None,
                queue_name=queue_name,
                id=job_id,
                meta={"jackpotx_periodic": True},
            )
            log.info("scheduled %s every %ss on %s", func, interval, queue_name)
    return sorted(wanted)
