"""Operator commands of the money path: providers, games, wallets, callbacks, rounds."""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.bonus import free_spins
from app.bonus.models import FreeSpinGrant
from app.conformance import runner as conformance
from app.conformance.fixtures import SetupError
from app.core import chain
from app.core.errors import AppError
from app.core.extensions import db
from app.core.money import format_minor
from app.play import game_lists, games, rounds
from app.play.callbacks import replay
from app.play.models import PROVIDER_PROTOCOLS
from app.wallet import integrity
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction, Wallet

providers = AppGroup("providers", help="Game providers.")
games_group = AppGroup("games", help="Game catalog.")
wallets = AppGroup("wallets", help="Wallets and the ledger.")
callbacks = AppGroup("callbacks", help="Provider callback log.")
rounds_group = AppGroup("rounds", help="Game rounds.")


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@providers.command("add")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option(
    "--protocol",
    type=click.Choice(list(PROVIDER_PROTOCOLS)),
    default="native",
    show_default=True,
    help="Wire protocol of its callbacks (docs/providers.md).",
)
@click.option("--secret", default=None, help="Shared signing secret (native, pragmatic; 16+).")
@click.option(
    "--public-key-file",
    type=click.File("r"),
    default=None,
    help="The aggregator's public key PEM (hub88); ours is generated, see `providers key`.",
)
@click.option("--currencies", default="", help="Comma list, e.g. EUR,USD (empty = any).")
@click.option("--launch-url", default=None, help="Template with {token} {game} {currency} ...")
@click.option("--api-url", default=None, help="The aggregator's API base URL, if it has one.")
@click.option("--ip-allowlist", default="", help="Comma list of IPs/CIDRs (empty = any).")
@click.option(
    "--stale-policy", type=click.Choice(["refund", "close"]), default="refund", show_default=True
)
def providers_add(
    code,
    name,
    protocol,
    secret,
    public_key_file,
    currencies,
    launch_url,
    api_url,
    ip_allowlist,
    stale_policy,
):
    """Register a game provider or aggregator; print its id (and our public key, if any)."""
    try:
        provider = games.create_provider(
            code=code,
            name=name,
            secret=secret,
            peer_public_key=public_key_file.read() if public_key_file else None,
            currencies=_csv(currencies),
            launch_url=launch_url,
            api_url=api_url,
            protocol=protocol,
            ip_allowlist=_csv(ip_allowlist),
            stale_round_policy=stale_policy,
        )
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(provider.id)
    if provider.private_key_enc:
        click.echo("Our public key (give it to the aggregator; `providers key` prints it again):")
        click.echo(games.provider_public_key(provider.code), nl=False)


@providers.command("key")
@click.option("--code", required=True)
def providers_key(code: str) -> None:
    """Print our public key (PEM) for a key-pair provider: what the aggregator verifies."""
    try:
        click.echo(games.provider_public_key(code), nl=False)
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


@providers.command("free-rounds-retry")
@click.option("--grant", "grant_ref", default=None, help="One grant (fsg_...), even a failed one.")
def providers_free_rounds_retry(grant_ref: str | None) -> None:
    """Send free rounds still pending at an aggregator again (the same issue id)."""
    if grant_ref is None:
        counts = free_spins.retry_pending(older_than=timedelta(0))
        click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing pending")
        return
    grant_id = db.session.scalar(
        select(FreeSpinGrant.id).where(FreeSpinGrant.public_id == grant_ref)
    )
    if grant_id is None:
        click.echo(f"error: no grant {grant_ref}", err=True)
        sys.exit(1)
    status = free_spins.issue_remote(grant_id, include_failed=True)
    click.echo(f"{grant_ref}: {status}")
    if status != "issued":
        sys.exit(1)


@providers.command("conformance")
@click.option("--protocol", type=click.Choice(sorted(conformance.DRIVERS)), required=True)
@click.option("--base-url", required=True, help="The JackpotX to test, e.g. https://casino.example")
@click.option("--only", default=None, help="Run only scenarios whose name contains this.")
def providers_conformance(protocol: str, base_url: str, only: str | None) -> None:
    """Play the aggregator against a running JackpotX: one line per scenario, exit 1 on any
    failure. Needs this deployment's database (it sets up its own test players)."""
    try:
        report = conformance.run(protocol, base_url, echo=click.echo, only=only)
    except (AppError, SetupError) as exc:
        click.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        sys.exit(2)
    if report.failed or not report.outcomes:
        sys.exit(1)


@games_group.command("import")
@click.option("--provider", "provider_code", required=True, help="Provider code.")
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "list_format",
    type=click.Choice(list(game_lists.FORMATS)),
    default=None,
    help="The list's shape; default: the provider's protocol (the aggregator's list as is).",
)
def games_import(provider_code: str, path: str, list_format: str | None) -> None:
    """Upsert a provider's games from its game list (docs/providers.md, "Game lists")."""
    try:
        with open(path, encoding="utf-8") as fh:
            payload = json.load(fh)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read JSON: {exc}", param_hint="--file") from None
    try:
        list_format, items = games.game_list_items(provider_code, payload, list_format)
    except game_lists.NotAGameList as exc:
        message = exc.errors[0]["message"] if exc.errors else exc.message
        raise click.BadParameter(message, param_hint="--file") from None
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    try:
        with click.progressbar(length=len(items), label="importing games") as bar:
            report = games.import_games(
                provider_code, items, format=list_format, progress=bar.update
            )
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(
        f"imported {report.imported}, updated {report.updated}, failed {report.failed}"
        f" ({list_format} format)"
    )
    for error in report.errors or []:
        click.echo(f"  item {error['index']}: {error['message']}", err=True)
    if report.failed:
        sys.exit(1)


@wallets.command("reconcile")
def wallets_reconcile() -> None:
    """Check ledger sum == balance for every wallet and that every transaction balances."""
    from sqlalchemy import func, select

    problems = wallet.reconcile()
    n_wallets = db.session.scalar(select(func.count(Wallet.id)))
    n_tx = db.session.scalar(select(func.count(LedgerTransaction.id)))
    if not problems:
        click.echo(f"ledger reconciled: {n_wallets} wallets, {n_tx} transactions, all balanced")
        return
    click.echo(f"ledger DOES NOT reconcile: {len(problems)} problem(s)", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@wallets.command("verify")
def wallets_verify() -> None:
    """Reconcile, then check every ledger transaction's signature and entries, each wallet's
    continuity and the latest signed checkpoint's count and head; exit 1 on any problem."""
    try:
        anchor = chain.latest_checkpoint()
    except chain.CheckpointError as exc:
        click.echo(f"checkpoint REFUSED: {exc}", err=True)
        sys.exit(1)
    problems = [str(p) for p in wallet.reconcile()]
    report = integrity.verify(anchor=anchor and anchor["ledger"])
    problems += report.problems
    if not problems:
        where = f", checkpoint {anchor['file']} holds" if anchor else ""
        click.echo(f"ledger verified: {report.checked} transactions signed and continuous{where}")
        for note in report.notes:
            click.echo(f"note: {note}")
        return
    click.echo(f"ledger DOES NOT verify: {len(problems)} problem(s)", err=True)
    for problem in problems[:200]:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@callbacks.command("replay")
@click.argument("callback_id", type=int)
def callbacks_replay(callback_id: int) -> None:
    """Re-run a logged provider callback through the same service; print the answer."""
    try:
        _row, result = replay.replay(callback_id)
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result.as_native(), sort_keys=True))
    if not result.ok:
        sys.exit(1)


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text or "")
    if not match:
        raise click.BadParameter("a duration like 30m, 1h or 2d", param_hint="--older-than")
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


@rounds_group.command("settle-stale")
@click.option("--older-than", default="1h", show_default=True, help="Idle time: 30m, 1h, 2d.")
def rounds_settle_stale(older_than: str) -> None:
    """Refund (or close, per provider policy) rounds a provider never finished; audited."""
    report = rounds.settle_stale(parse_duration(older_than))
    refunded = ", ".join(f"{format_minor(v, c)} {c}" for c, v in report.refunded.items()) or "none"
    click.echo(
        f"settled {report.rounds} round(s): {report.cancelled} refunded and cancelled, "
        f"{report.closed} closed; {report.refunded_bets} bet(s) refunded ({refunded})"
    )


def register(group: AppGroup) -> None:
    for sub in (providers, games_group, wallets, callbacks, rounds_group):
        group.add_command(sub)
