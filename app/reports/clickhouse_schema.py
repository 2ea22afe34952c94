"""The ClickHouse schema of the analytics sink (``flask jackpotx analytics clickhouse-init``)
and the documented example queries (docs/analytics.md quotes them verbatim; the suite runs
them on chDB against the PostgreSQL reports).

Invariants:

* Every table is a ``ReplacingMergeTree`` whose sorting key ends with the PostgreSQL primary
  key of the source row (``ORDER BY``: the dedup key), partitioned by the month of a column
  that never changes for a row (``created_at``), so every copy of a row lands in the same
  partition and a merge keeps exactly one of them. Mutable sources (rounds, payments) carry
  their ``updated_at`` as the version column: the newest copy wins.
* A query that must count each row once reads ``FINAL`` (or aggregates with ``argMax`` by
  version): a re-inserted batch is harmless before and after the background merge.
* ``non_replicated_deduplication_window`` lets ClickHouse drop, at insert time, a batch whose
  ``insert_deduplication_token`` it has seen (the same rows sent again after a crash).
* Money is Int64 minor units of ``currency``, as in PostgreSQL; no personal data is exported
  (ids, country, currency; never names, e-mails, IPs or payment details).
"""

from __future__ import annotations

#: Columns of each table, in insert order: (name, ClickHouse type).
TABLES: dict[str, list[tuple[str, str]]] = {
    "ledger_transactions": [
        ("id", "Int64"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("user_id", "Int64"),
        ("wallet_id", "Int64"),
        ("currency", "LowCardinality(String)"),
        ("type", "LowCardinality(String)"),
        ("source", "String"),
        ("reference_type", "Nullable(String)"),
        ("reference_id", "Nullable(String)"),
        ("cash_delta", "Int64"),
        ("bonus_delta", "Int64"),
        ("held_delta", "Int64"),
        ("balance_after", "Int64"),
        ("bonus_balance_after", "Int64"),
        # Attribution of a provider callback's movement (as the daily rollups attribute it):
        # the provider transaction's provider, and the round / game it belongs to.
        ("provider_id", "Nullable(Int64)"),
        ("round_id", "Nullable(Int64)"),
        ("game_id", "Nullable(Int64)"),
    ],
    "ledger_entries": [
        ("id", "Int64"),
        ("transaction_id", "Int64"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("type", "LowCardinality(String)"),
        ("wallet_id", "Nullable(Int64)"),
        ("account", "LowCardinality(String)"),
        ("currency", "LowCardinality(String)"),
        ("amount", "Int64"),
    ],
    "game_rounds": [
        ("id", "Int64"),
        ("provider_id", "Int64"),
        ("external_round_id", "String"),
        ("user_id", "Int64"),
        ("game_id", "Int64"),
        ("currency", "LowCardinality(String)"),
        ("status", "LowCardinality(String)"),
        ("total_bet", "Int64"),
        ("total_win", "Int64"),
        ("total_refund", "Int64"),
        ("bet_cash", "Int64"),
        ("bet_bonus", "Int64"),
        ("bets_count", "Int32"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("updated_at", "DateTime64(6, 'UTC')"),
        ("closed_at", "Nullable(DateTime64(6, 'UTC'))"),
    ],
    "payments": [
        ("id", "Int64"),
        ("user_id", "Int64"),
        ("gateway_id", "Int64"),
        ("gateway_code", "LowCardinality(String)"),
        ("type", "LowCardinality(String)"),
        ("status", "LowCardinality(String)"),
        ("amount_minor", "Int64"),
        ("fee_minor", "Int64"),
        ("currency", "LowCardinality(String)"),
        ("processed_at", "Nullable(DateTime64(6, 'UTC'))"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("updated_at", "DateTime64(6, 'UTC')"),
    ],
    "player_events": [
        #: ``users`` (a registration) or ``login_history`` (a login attempt).
        ("source", "LowCardinality(String)"),
        ("source_id", "Int64"),
        #: ``registration``, ``login`` or ``login_failed``.
        ("event", "LowCardinality(String)"),
        ("user_id", "Nullable(Int64)"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("country", "Nullable(String)"),
        ("currency", "Nullable(String)"),
        ("portal", "Nullable(String)"),
        ("reason", "Nullable(String)"),
    ],
}

#: (engine, sorting key) per table: the sorting key is the dedup key.
ENGINES: dict[str, tuple[str, str]] = {
    "ledger_transactions": ("ReplacingMergeTree", "id"),
    "ledger_entries": ("ReplacingMergeTree", "id"),
    "game_rounds": ("ReplacingMergeTree(updated_at)", "id"),
    "payments": ("ReplacingMergeTree(updated_at)", "id"),
    "player_events": ("ReplacingMergeTree", "(source, source_id)"),
}

#: Columns ClickHouse computes from the inserted ones (not in the insert).
COMPUTED: dict[str, list[tuple[str, str]]] = {
    #: The player's wallet movement (cash + bonus), signed: what the report figures sum.
    "ledger_transactions": [("moved", "Int64 MATERIALIZED cash_delta + bonus_delta")],
}

#: How many recent insert tokens each table remembers (retried batches are dropped).
DEDUP_WINDOW = 1000


def ddl(database: str) -> list[str]:
    """The statements that create the database and its tables (idempotent: IF NOT EXISTS)."""
    out = [f"CREATE DATABASE IF NOT EXISTS `{database}`"]
    for table, columns in TABLES.items():
        engine, order_by = ENGINES[table]
        every = columns + COMPUTED.get(table, [])
        cols = ",\n    ".join(f"`{name}` {type_}" for name, type_ in every)
        out.append(
            f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}` (\n    {cols}\n)\n"
            f"ENGINE = {engine}\n"
            "PARTITION BY toYYYYMM(created_at)\n"
            f"ORDER BY {order_by}\n"
            f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"
        )
    return out


# --- example queries ----------------------------------------------------------------------------
# ``{db}`` is the database; ``%(date_from)s`` / ``%(date_to)s`` are Date parameters
# (clickhouse-connect's client-side binding). Definitions are the financial report's
# (``app.reports.financial``): ``moved`` is the signed movement of the player's wallet;
# stakes are net of refunds and reversed bets (rollbacks crediting the player), wins net of
# reversed wins (rollbacks debiting the player), GGR = stakes - wins.

QUERIES: dict[str, str] = {
    # Money per UTC day and currency: the financial report's day rows (but payment fees).
    "financial_per_day": """
SELECT
    toDate(created_at) AS day,
    currency,
    -sumIf(moved, type IN ('bet', 'refund') OR (type = 'rollback' AND moved > 0)) AS stakes,
    sumIf(moved, type IN ('win', 'jackpot_win') OR (type = 'rollback' AND moved <= 0)) AS wins,
    stakes - wins AS ggr,
    sumIf(moved, type IN ('bonus_grant', 'bonus_forfeit')) AS bonus_cost,
    sumIf(moved, type = 'deposit') AS deposits,
    -sumIf(moved + held_delta, type = 'withdrawal') AS withdrawals,
    countIf(type = 'bet') AS bets_count
FROM {db}.ledger_transactions FINAL
WHERE toDate(created_at) BETWEEN %(date_from)s AND %(date_to)s
GROUP BY day, currency
ORDER BY day, currency""",
    # GGR and RTP per game over a range (the rollups' attribution: provider callbacks only;
    # game_id NULL = a callback movement whose round is unknown). rtp_bp: RTP in basis
    # points (hundredths of a percent), rounded half up.
    "games": """
SELECT
    currency,
    game_id,
    -sumIf(moved, type IN ('bet', 'refund') OR (type = 'rollback' AND moved > 0)) AS stakes,
    sumIf(moved, type IN ('win', 'jackpot_win') OR (type = 'rollback' AND moved <= 0)) AS wins,
    stakes - wins AS ggr,
    if(stakes > 0, intDiv(20000 * wins + stakes, 2 * stakes), NULL) AS rtp_bp,
    countIf(type = 'bet') AS bets_count
FROM {db}.ledger_transactions FINAL
WHERE provider_id IS NOT NULL
  AND type IN ('bet', 'refund', 'rollback', 'win', 'jackpot_win')
  AND toDate(created_at) BETWEEN %(date_from)s AND %(date_to)s
GROUP BY currency, game_id
ORDER BY currency, ggr DESC, game_id""",
    # GGR per UTC day and game.
    "ggr_per_day_game": """
SELECT
    toDate(created_at) AS day,
    currency,
    game_id,
    -sumIf(moved, type IN ('bet', 'refund') OR (type = 'rollback' AND moved > 0)) AS stakes,
    sumIf(moved, type IN ('win', 'jackpot_win') OR (type = 'rollback' AND moved <= 0)) AS wins,
    stakes - wins AS ggr
FROM {db}.ledger_transactions FINAL
WHERE provider_id IS NOT NULL
  AND type IN ('bet', 'refund', 'rollback', 'win', 'jackpot_win')
  AND toDate(created_at) BETWEEN %(date_from)s AND %(date_to)s
GROUP BY day, currency, game_id
ORDER BY day, currency, game_id""",
    # Active players (distinct players who placed a bet) per UTC day, all currencies.
    "active_players": """
SELECT toDate(created_at) AS day, uniqExact(user_id) AS active
FROM {db}.ledger_transactions FINAL
WHERE type = 'bet' AND toDate(created_at) BETWEEN %(date_from)s AND %(date_to)s
GROUP BY day
ORDER BY day""",
    # Deposits per UTC day and currency: money credited (ledger), depositors, and the
    # gateway fees of the payments completed that day (payments, newest version of each).
    "deposits": """
SELECT day, currency, deposits, depositors, payment_fees
FROM (
    SELECT toDate(created_at) AS day, currency,
           sum(moved) AS deposits, uniqExact(user_id) AS depositors
    FROM {db}.ledger_transactions FINAL
    WHERE type = 'deposit' AND toDate(created_at) BETWEEN %(date_from)s AND %(date_to)s
    GROUP BY day, currency
) AS l
FULL OUTER JOIN (
    SELECT toDate(processed_at) AS day, currency, sum(fee_minor) AS payment_fees
    FROM {db}.payments FINAL
    WHERE status = 'completed' AND processed_at IS NOT NULL
      AND toDate(processed_at) BETWEEN %(date_from)s AND %(date_to)s
    GROUP BY day, currency
) AS p USING (day, currency)
ORDER BY day, currency""",
}


def query(name: str, database: str) -> str:
    return QUERIES[name].replace("{db}", f"`{database}`")
