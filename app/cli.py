"""Operator commands: ``flask --app wsgi jackpotx ...`` (names and flags are a contract)."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.db import atomic

jackpotx = AppGroup("jackpotx", help="JackpotX operator commands.")


@jackpotx.command("maintenance")
@click.argument("state", type=click.Choice(["on", "off", "status"]))
@click.option("--message", default=None, help="Text shown to players while on.")
def maintenance(state: str, message: str | None) -> None:
    """Turn maintenance mode on or off (the player API answers 503 while on)."""
    from app.services import settings

    if state != "status":
        with atomic():
            settings.set_maintenance(state == "on", message=message)
    current = settings.maintenance_state()
    click.echo(f"maintenance mode: {'on' if current['enabled'] else 'off'}")


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

    from app.errors import AppError
    from app.services import access
    from app.services import users as users_service

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
    """Create demo players, staff and data (safe to re-run); print the logins."""
    from app.seed import seed_demo as run_seed

    with atomic():
        logins = run_seed()
    click.echo("Demo logins (username / password):")
    for row in logins:
        click.echo(f"  {row['role']:<8} {row['username']:<12} {row['password']:<16} {row['note']}")


@jackpotx.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 at the first row that does not fit."""
    from app.services import audit

    report = audit.verify()
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} rows")
        return
    click.echo(f"audit chain BROKEN at row {report.broken_at}: {report.problem}", err=True)
    sys.exit(1)


def register_cli(app: Flask) -> None:
    from app import cli_money

    cli_money.register(jackpotx)
    app.cli.add_command(jackpotx)
