"""Periodic jobs; each domain adds its own entry here. ``app.core.periodic`` runs them
(``python worker.py`` starts it)."""

from __future__ import annotations

#: (job function path, interval seconds, queue)
PERIODIC_JOBS: list[tuple[str, int, str]] = [
    ("app.core.jobs.deliver_pending", 60, "notifications"),
    ("app.core.jobs.relay_outbox", 10, "default"),
    ("app.compliance.jobs.send_reality_checks", 60, "notifications"),
    ("app.play.jobs.settle_stale_rounds", 600, "settlement"),
    ("app.prizes.jobs.jackpots_periodic", 10, "default"),
    ("app.prizes.jobs.settle_tournaments", 60, "payouts"),
    # Tournament scores the after-commit step lost to a crash (idempotent by claim id).
    ("app.prizes.jobs.sweep_tournament_scores", 60, "default"),
    ("app.prizes.jobs.refresh_tournament_boards", 60, "default"),
    ("app.prizes.jobs.run_lottery_draws", 60, "payouts"),
    ("app.bonus.jobs.expire_bonuses", 300, "default"),
    # Free rounds an aggregator's API did not answer: the same issue id again.
    ("app.bonus.jobs.issue_free_rounds", 60, "default"),
    # Loyalty points the after-commit step lost to a crash (idempotent by claim id).
    ("app.bonus.jobs.sweep_loyalty", 60, "default"),
    ("app.payments.jobs.expire_pending_deposits", 300, "default"),
    ("app.bonus.jobs.pay_cashback", 3600, "default"),
    # Idempotency keys past their 24 hours (a claim replaces its own expired key lazily).
    ("app.core.idempotency.purge_expired", 3600, "default"),
    # Signed checkpoint of the audit chain and the ledger, outside the database (issue 21).
    ("app.wallet.jobs.write_checkpoint", 300, "default"),
    # Settles the last closed commission period; a run after it is settled pays nothing.
    ("app.affiliates.jobs.pay_commissions", 6 * 3600, "payouts"),
    # Daily rollups for the analytics API: today's partial day and yesterday, re-folded
    # (idempotent: each day's rows are replaced in one transaction).
    ("app.reports.jobs.rollup_recent", 300, "default"),
    # Announcements published ahead of their window, pushed live once it opens (once each).
    ("app.content.jobs.push_due_announcements", 60, "notifications"),
    # The ClickHouse event sink (does nothing unless CLICKHOUSE_URL is set); a failed run
    # loses nothing: the next one resumes from the durable marks.
    ("app.reports.jobs.export_to_clickhouse", 60, "default"),
    # GDPR data archives not downloaded within GDPR_ARCHIVE_TTL_HOURS: file deleted.
    ("app.identity.jobs.expire_data_archives", 600, "default"),
    # Queued CSV exports past EXPORT_TTL_HOURS: file deleted, row marked expired.
    ("app.reports.jobs.expire_exports", 600, "reports"),
    # Games whose measured RTP over the window departs from the declared one (idempotent:
    # one live flag per game and currency, refreshed or cleared by later runs).
    ("app.reports.jobs.check_rtp", 3600, "default"),
]

#: A periodic job keeps one RQ id across its runs (``app.core.periodic`` enqueues them).
ID_PREFIX = "jx-periodic-"


def periodic_job_id(func: str) -> str:
    # RQ job ids allow only [A-Za-z0-9_-].
    return ID_PREFIX + func.replace(".", "-")
