"""Operator commands: ``flask --app wsgi jackpotx ...`` (names and flags are a contract)."""

from __future__ import annotations

import sys
from datetime import UTC

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from app import cli_money
from app.affiliates.jobs import pay_commissions
from app.cli_money import parse_duration
from app.core import audit, chain, dbroles, jobs_admin, outbox, periodic, settings
from app.core.config import normalize_database_url
from app.core.db import atomic, use_interactive_timeouts, use_job_timeouts
from app.core.errors import AppError
from app.core.events import publish
from app.identity import access
from app.identity import users as users_service
from app.originals import studio as service
from app.payments import deposits, gateways_admin
from app.reports import clickhouse, rollups, sink
from app.reports import rtp as rtp_check
from app.seed import SeedRefused
from app.seed import seed_demo as run_seed
from app.wallet import integrity


def _operator_timeouts() -> None:
    """Operator commands run jobs' long database timeouts, not the web's short ones (and
    give them back when done: tests run commands in the web process)."""
    use_job_timeouts()
    click.get_current_context().call_on_close(use_interactive_timeouts)


jackpotx = AppGroup("jackpotx", help="JackpotX operator commands.", callback=_operator_timeouts)


@jackpotx.command("maintenance")
@click.argument("state", type=click.Choice(["on", "off", "status"]))
@click.option("--message", default=None, help="Text shown to players while on.")
def maintenance(state: str, message: str | None) -> None:
    """Turn maintenance mode on or off (the player API answers 503 while on)."""
    if state != "status":
        with atomic():
            settings.set_maintenance(state == "on", message=message)
    current = settings.maintenance_state()
    click.echo(f"maintenance mode: {'on' if current['enabled'] else 'off'}")


@jackpotx.command("sync-roles")
def sync_roles() -> None:
    """Write the roles and permissions of this release to the database (run after upgrades)."""
    with atomic():
        access.ensure_roles()
    for role_id, (name, _description, permissions) in sorted(access.ROLES.items()):
        click.echo(f"  {role_id} {name:<8} {len(permissions)} permissions")


@jackpotx.group("users")
def users() -> None:
    """Manage user accounts."""


@users.command("create")
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--password", required=True, help="Must meet the password policy.")
@click.option(
    "--role", default="Player", show_default=True, help="Admin, Manager, Support, Agent or Player."
)
@click.option("--totp-secret", default=None, help="Base32 TOTP secret; enables 2FA.")
@click.option("--currency", default=None, help="Wallet currency (default DEFAULT_CURRENCY).")
def users_create(
    username: str,
    email: str,
    password: str,
    role: str,
    totp_secret: str | None,
    currency: str | None,
) -> None:
    """Create a user of any role and print its id."""
    import pyotp

    try:
        role_id = access.role_id_from_name(role)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--role") from None
    if totp_secret:
        try:
            pyotp.TOTP(totp_secret).now()
        except Exception:
            raise click.BadParameter("not a base32 secret", param_hint="--totp-secret") from None
    try:
        with atomic():
            access.ensure_roles()
            user = users_service.create_user(
                username=username,
                email=email,
                password=password,
                role_id=role_id,
                totp_secret=totp_secret,
                currency=currency,
            )
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(user.id)


@jackpotx.command("seed-demo")
def seed_demo() -> None:
    """Create demo players, staff and data (safe to re-run); print the logins.

    Refused in production (exit 1): demo passwords are public."""
    try:
        with atomic():
            logins = run_seed()
    except SeedRefused as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo("Demo logins (username / password):")
    for row in logins:
        click.echo(f"  {row['role']:<8} {row['username']:<12} {row['password']:<21} {row['note']}")
    uris = [row for row in logins if row.get("otpauth_uri")]
    if uris:
        click.echo("Staff TOTP (add to an authenticator app; the codes above go stale in 30 s):")
        for row in uris:
            click.echo(f"  {row['username']:<12} {row['otpauth_uri']}")
        click.echo(
            "  a fresh code any time: .venv/bin/python -c "
            "\"import pyotp; print(pyotp.TOTP('<secret>').now())\""
        )


@jackpotx.group("audit")
def audit_group() -> None:
    """The audit trail."""


def _latest_checkpoint() -> dict | None:
    try:
        return chain.latest_checkpoint()
    except chain.CheckpointError as exc:
        click.echo(f"checkpoint REFUSED: {exc}", err=True)
        sys.exit(1)


@audit_group.command("verify")
def audit_verify() -> None:
    """Recompute the keyed audit chain and hold it against the latest signed checkpoint;
    exit 1 at the first row that does not fit."""
    anchor = _latest_checkpoint()
    report = audit.verify(anchor=anchor and anchor["audit"])
    if report.ok:
        where = f", checkpoint {anchor['file']} holds" if anchor else ""
        click.echo(f"audit chain intact: {report.checked} rows{where}")
        for note in report.notes:
            click.echo(f"note: {note}")
        return
    click.echo(f"audit chain BROKEN at row {report.broken_at}: {report.problem}", err=True)
    sys.exit(1)


@audit_group.command("checkpoint")
@click.option(
    "--accept-legacy",
    is_flag=True,
    help="First checkpoint only: vouch for rows written before the chain was keyed.",
)
def audit_checkpoint(accept_legacy: bool) -> None:
    """Write a signed checkpoint (count + head of the audit chain and the ledger) to
    AUDIT_CHECKPOINT_DIR, after checking what was written since the last one (the periodic
    job does this every 5 minutes); exit 1 if that does not verify."""
    _latest_checkpoint()
    try:
        path = integrity.checkpoint(accept_legacy=accept_legacy)
    except audit.ChainBroken as exc:
        click.echo(f"checkpoint REFUSED: {exc}", err=True)
        sys.exit(1)
    click.echo(f"checkpoint written: {path}")


@jackpotx.group("db")
def db_group() -> None:
    """The database itself."""


@db_group.command("roles")
@click.option("--owner", required=True, help="Owner role: owns the schema, runs migrations.")
@click.option("--app", "app_role", required=True, help="App role: what DATABASE_URL logs in as.")
@click.option("--owner-password", default=None, envvar="JX_OWNER_PASSWORD")
@click.option("--app-password", default=None, envvar="JX_APP_PASSWORD")
@click.option(
    "--url",
    default=None,
    help="A superuser's URL (default MIGRATION_DATABASE_URL, else DATABASE_URL).",
)
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it.")
def db_roles(
    owner: str,
    app_role: str,
    owner_password: str | None,
    app_password: str | None,
    url: str | None,
    print_sql: bool,
) -> None:
    """Create (if missing) and grant the owner and app roles; idempotent: run it again after
    every `flask db upgrade` (new tables are refused to the app until then)."""
    kw = {"owner_password": owner_password, "app_password": app_password}
    try:
        sql = dbroles.statements(owner, app_role, **kw)
    except dbroles.RoleError as exc:
        raise click.BadParameter(str(exc)) from None
    if print_sql:
        for stmt in sql:
            click.echo(stmt + ";")
        return
    target = normalize_database_url(
        url
        or current_app.config.get("MIGRATION_DATABASE_URL")
        or current_app.config["SQLALCHEMY_DATABASE_URI"]
    )
    engine = sa.create_engine(target, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            dbroles.apply(conn, owner, app_role, **kw)
    except dbroles.RoleError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except sa.exc.DBAPIError as exc:
        click.echo(f"error: {exc.orig}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    click.echo(
        f"roles ready: {owner} owns the schema; {app_role} has DML, append-only on "
        + ", ".join(dbroles.APPEND_ONLY_TABLES)
    )


@jackpotx.group("gateways")
def gateways_group() -> None:
    """Payment gateways."""


@gateways_group.command("add")
@click.option("--code", required=True, help="Unique code; also the webhook path segment.")
@click.option("--name", required=True)
@click.option("--type", "type_", required=True, help="card, bank_transfer, ewallet, crypto ...")
@click.option("--secret", required=True, help="Webhook signing secret (stored encrypted).")
@click.option("--adapter", default=None, help="sandbox or stripe (default: the code if known).")
@click.option("--direction", default="both", type=click.Choice(["deposit", "withdrawal", "both"]))
@click.option("--currencies", default="EUR", show_default=True, help="Comma separated.")
@click.option("--countries", default="", help="Comma separated ISO codes; empty = all.")
@click.option("--min-amount", default=None, help="Major units, e.g. 10.00")
@click.option("--max-amount", default=None, help="Major units, e.g. 5000.00")
@click.option("--fee-percent", default="0", show_default=True)
@click.option("--fee-fixed", default="0", show_default=True)
@click.option("--api-key", default=None)
@click.option("--api-secret", default=None)
@click.option("--requires-kyc", is_flag=True)
@click.option("--inactive", is_flag=True)
def gateways_add(**opts) -> None:
    """Register a payment gateway and print its id."""
    from decimal import Decimal, InvalidOperation

    def dec(name: str) -> Decimal | None:
        raw = opts[name]
        if raw in (None, ""):
            return None
        try:
            return Decimal(raw)
        except InvalidOperation:
            raise click.BadParameter("not a decimal number", param_hint=name) from None

    data = {
        "code": opts["code"],
        "name": opts["name"],
        "type": opts["type_"],
        "direction": opts["direction"],
        "webhook_secret": opts["secret"],
        "api_key": opts["api_key"],
        "api_secret": opts["api_secret"],
        "supported_currencies": [c.strip().upper() for c in opts["currencies"].split(",") if c],
        "supported_countries": [c.strip().upper() for c in opts["countries"].split(",") if c],
        "min_amount": dec("min_amount"),
        "max_amount": dec("max_amount"),
        "fees_percentage": dec("fee_percent") or Decimal(0),
        "fees_fixed": dec("fee_fixed") or Decimal(0),
        "requires_kyc": opts["requires_kyc"],
        "is_active": not opts["inactive"],
    }
    if opts["adapter"]:
        data["adapter"] = opts["adapter"]
    try:
        gw = gateways_admin.create_gateway(data)
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(gw.id)


@jackpotx.group("deposits")
def deposits_group() -> None:
    """Player deposits."""


@deposits_group.command("expire-pending")
@click.option(
    "--older-than",
    default=None,
    help="Age of an unpaid deposit: 30m, 1h, 2d (default: DEPOSIT_PENDING_TTL_MINUTES).",
)
def deposits_expire_pending(older_than: str | None) -> None:
    """Expire pending deposits nobody paid in time (what the periodic job does); audited."""
    done = deposits.expire_stale(parse_duration(older_than) if older_than else None)
    click.echo(f"expired {done} deposit(s)")


@jackpotx.group("originals")
def originals_group() -> None:
    """JxOriginals, the built-in game studio."""


@originals_group.command("retry-pending")
@click.option(
    "--older-than",
    default="30s",
    show_default=True,
    help="Only rounds at least this old (e.g. 30s, 5m, 1h).",
)
def originals_retry_pending(older_than: str) -> None:
    """Finish studio rounds an outage left behind: roll back unconfirmed bets, pay owed wins."""
    done = service.retry_pending(parse_duration(older_than))
    click.echo(
        f"rolled back {done['rolled_back']}, settled {done['settled']}, "
        f"still pending {done['still_pending']}"
    )
    if done["still_pending"]:
        sys.exit(1)


@jackpotx.group("outbox")
def outbox_group() -> None:
    """The transactional outbox (events and jobs waiting for Redis)."""


@outbox_group.command("relay")
def outbox_relay() -> None:
    """Deliver everything pending to Redis now; exit 1 if Redis refused."""
    report = outbox.drain()
    click.echo(f"delivered={report.delivered} pending={report.pending}")
    if report.error:
        click.echo(f"error: {report.error}", err=True)
        sys.exit(1)


@outbox_group.command("status")
def outbox_status() -> None:
    """How many messages wait, since when, and the last error."""
    state = outbox.status()
    click.echo(" ".join(f"{key}={value}" for key, value in state.items()))


@jackpotx.group("affiliates")
def affiliates_group() -> None:
    """Agents and their commissions."""


@affiliates_group.command("pay-commissions")
@click.option(
    "--period",
    default=None,
    help="A date (YYYY-MM-DD) inside the closed period to settle; default: the last closed one.",
)
def affiliates_pay_commissions(period: str | None) -> None:
    """Compute and pay agent commissions (idempotent: settled agents are skipped)."""
    try:
        report = pay_commissions(period)
    except (ValueError, AppError) as exc:
        raise click.BadParameter(str(exc), param_hint="--period") from None
    click.echo(" ".join(f"{key}={value}" for key, value in report.items()))


@jackpotx.group("realtime")
def realtime_group() -> None:
    """Socket.IO events."""


@realtime_group.command("broadcast")
@click.option("--event", "name", required=True, help="Event name, e.g. notification.")
@click.option("--room", default="global", show_default=True, help="global, admin, user:<id>...")
@click.option("--data", "raw", default="{}", help="JSON object payload.")
@click.option("--durable/--no-durable", default=True, show_default=True)
def realtime_broadcast(name: str, room: str, raw: str, durable: bool) -> None:
    """Emit an event to a room from the command line (announcements, maintenance alerts)."""
    import json

    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    if periodic.jobs_in_process(current_app):
        # Embedded: no Redis carries an emit from this process to the server's sockets. The
        # outbox row (the SQLite file both share) is relayed by the server's periodic
        # ``relay_outbox`` (every 10 s), which emits to the clients connected there.
        if not durable:
            click.echo("embedded mode: only a durable event reaches the server; sent durably")
        with atomic():
            outbox.add_event(name, data, room=room, relay_now=False)
        click.echo(
            f"queued {name} for {room} in the outbox: the running server (make run) relays it "
            "to its connected clients within 10 s"
        )
        return
    with atomic():
        publish(name, data, room=room, durable=durable)
    click.echo(f"published {name} to {room}")


@jackpotx.group("jobs")
def jobs_group() -> None:
    """Background jobs."""


@jobs_group.command("schedule")
def jobs_schedule() -> None:
    """The periodic jobs: whether a scheduler runs (worker.py), each job's last and next run.

    Embedded (no REDIS_URL): the jobs run inside the `make run` server, whose schedule lives
    in its memory; this lists the jobs and their intervals and says so (the console's jobs
    page, served by that process, shows the runs)."""
    data = jobs_admin.schedule()
    beat = data["scheduler"]
    if beat["alive"]:
        click.echo(f"scheduler: running, last tick {beat['last_tick_at']} ({beat['name']})")
    elif beat["mode"] == "in-process":
        click.echo("scheduler: embedded mode (no REDIS_URL), not visible from this command")
    else:
        click.echo("scheduler: not running (python worker.py runs it)")
    click.echo(beat["where"].replace("`", ""))
    for job in data["periodic"]:
        click.echo(
            f"{job['func']} every={job['interval_seconds']}s queue={job['queue']}"
            f" last={job['last_run_at'] or '-'} status={job['last_status'] or '-'}"
            f" next={job['next_run_at'] or '-'}"
        )


@jackpotx.group("reports")
def reports_group() -> None:
    """Reports and analytics."""


@reports_group.command("rollup")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "date_to", default=None, type=click.DateTime(["%Y-%m-%d"]))
def reports_rollup(date_from, date_to) -> None:
    """Recompute the daily rollups of each UTC day from --from to --to (default: --from),
    one transaction per day; re-runnable (a day's rows are replaced, never added to)."""
    first = date_from.date()
    last = date_to.date() if date_to else first
    if last < first:
        raise click.BadParameter("--to is before --from")
    days = list(rollups.days_between(first, last))
    with click.progressbar(days, label="rolling up", show_pos=True) as bar:
        for day in bar:
            rollups.rollup_day(day)
    click.echo(f"rolled up {len(days)} day(s): {first.isoformat()} .. {last.isoformat()}")


@jackpotx.group("analytics")
def analytics_group() -> None:
    """The ClickHouse event sink (docs/analytics.md)."""


def _clickhouse() -> clickhouse.Writer:
    url = current_app.config.get("CLICKHOUSE_URL", "")
    if not url:
        raise click.ClickException("CLICKHOUSE_URL is not set: the ClickHouse sink is off")
    try:
        return clickhouse.connect(url)
    except (clickhouse.ClickHouseUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@analytics_group.command("clickhouse-init")
def analytics_clickhouse_init() -> None:
    """Create the ClickHouse database and tables (idempotent: IF NOT EXISTS)."""
    writer = _clickhouse()
    try:
        tables = clickhouse.init_schema(writer)
    except clickhouse.ClickHouseUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        writer.close()
    click.echo(f"ClickHouse database {writer.database}: {', '.join(tables)}")


@analytics_group.command("sink-run")
@click.option("--stream", "streams", multiple=True, type=click.Choice(list(sink.BY_NAME)))
@click.option("--batches", default=None, type=click.IntRange(1, 100_000), help="per stream")
def analytics_sink_run(streams: tuple[str, ...], batches: int | None) -> None:
    """Export the rows waiting for ClickHouse now (what the periodic job does)."""
    use_job_timeouts()
    settings = sink.Settings.from_app()
    writer = _clickhouse()
    try:
        done = sink.run(
            writer,
            streams=streams or None,
            batch=settings.batch,
            max_batches=batches or settings.max_batches,
            settle_seconds=settings.settle_seconds,
        )
    except sink.SinkFailed as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        writer.close()
    for name, n in done.items():
        click.echo(f"{name}: {n} row(s) exported")


@analytics_group.command("sink-status")
@click.option("--verify", is_flag=True, help="Count rows committed behind the mark (slower).")
def analytics_sink_status(verify: bool) -> None:
    """Each stream's mark and lag: rows behind, age of the oldest unexported, last error."""
    data = sink.status(verify=verify, lag=True)
    click.echo(
        f"sink: {'on, ' + str(data['target']) if data['enabled'] else 'off (no CLICKHOUSE_URL)'}"
        f" batch={data['batch']} settle={data['settle_seconds']}s"
    )
    for s in data["streams"]:
        line = (
            f"{s['stream']:<15} behind={s['behind']}{'+' if s['behind_capped'] else ''}"
            f" lag={s['lag_seconds']}s"
            f" exported={s['exported_rows']} mark={s['mark_ts'] or '-'}#{s['mark_id']}"
            f" last_batch={s['last_batch_at'] or '-'}"
        )
        if s["missed"] is not None:
            line += f" missed={s['missed']}"
        if s["last_error"]:
            line += f" error={s['last_error']}"
        click.echo(line)


@analytics_group.command("sink-rewind")
@click.option("--stream", "name", required=True, type=click.Choice(list(sink.BY_NAME)))
@click.option("--to", "to", default=None, type=click.DateTime(["%Y-%m-%d"]), help="UTC day")
def analytics_sink_rewind(name: str, to) -> None:
    """Move a stream's mark back to the start of --to (default: the beginning): its rows are
    sent again, and ClickHouse keeps one copy of each (nothing counts twice)."""
    at = to.replace(tzinfo=UTC) if to else None
    state = sink.rewind(name, at)
    click.echo(f"{name}: mark moved to {state.last_ts.isoformat() if state.last_ts else 'start'}")


@reports_group.command("rtp-check")
def reports_rtp_check() -> None:
    """Measure each game's RTP over the window (operator settings rtp_*) from the rollups and
    raise, refresh or clear its flag; the periodic job runs the same check hourly."""
    result = rtp_check.check()
    th = result.thresholds
    click.echo(
        f"window {result.window_from.isoformat()} .. {result.window_to.isoformat()}"
        f" ({th.window_days} days), tolerance {th.tolerance} pp,"
        f" floor {th.min_bets} bets / {th.min_stakes} minor units"
    )
    for m in result.measures:
        click.echo(
            f"game {m.game_id} {m.currency}: measured {m.measured} % declared {m.declared} %"
            f" ({m.deviation:+} pp) bets={m.bets_count} stakes={m.stakes} {m.verdict}"
        )
    click.echo(
        f"{result.count('outside')} outside, {result.count('within')} within,"
        f" {result.count('below_floor')} below the floor;"
        f" flags raised {len(result.raised)}, refreshed {len(result.refreshed)},"
        f" cleared {len(result.cleared)}"
    )


def register_cli(app: Flask) -> None:
    cli_money.register(jackpotx)
    app.cli.add_command(jackpotx)
