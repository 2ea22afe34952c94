"""Settings (maintenance mode) and staff accounts: Admin only."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import (
    ConfirmForm,
    MaintenanceForm,
    RecoveryCodesForm,
    StaffCreateForm,
)
from app.blueprints.console.listing import paginate
from app.core import settings as settings_service
from app.core.db import atomic
from app.core.errors import AppError
from app.core.extensions import db
from app.identity import staff_auth, users
from app.identity.models import ADMIN, STAFF_ROLES, User

STAFF_SORTABLE = {
    "id": User.id,
    "username": User.username,
    "role": User.role_id,
    "status": User.status,
    "last_login": User.last_login_at,
}


@bp.route("/settings", methods=["GET", "POST"])
@console_view("settings.manage")
def settings():
    state = settings_service.maintenance_state()
    form = MaintenanceForm(data=state)
    if form.validate_on_submit():
        message = (form.message.data or "").strip() or None
        with atomic():
            settings_service.set_maintenance(
                bool(form.enabled.data), message=message, actor=current_user
            )
        flash(
            "Maintenance mode is on: players get 503."
            if form.enabled.data
            else "Maintenance mode is off.",
            "success",
        )
        return redirect(url_for("console.settings"))
    return render_template("console/settings.html", form=form, state=state)


@bp.get("/staff")
@console_view("staff.manage")
def staff():
    query = select(User).where(User.role_id.in_(STAFF_ROLES))
    listing = paginate(query, sortable=STAFF_SORTABLE, default_sort="id", default_direction="asc")
    return render_template(
        "console/staff/list.html", listing=listing, can_reset_2fa=current_user.role_id == ADMIN
    )


@bp.route("/staff/new", methods=["GET", "POST"])
@console_view("staff.manage")
def staff_new():
    form = StaffCreateForm()
    error = None
    if form.validate_on_submit():
        try:
            with atomic():
                user = users.create_user(
                    username=form.username.data,
                    email=form.email.data,
                    password=form.password.data,
                    role_id=int(form.role.data),
                    first_name=(form.first_name.data or "").strip() or None,
                    last_name=(form.last_name.data or "").strip() or None,
                    actor=current_user,
                )
        except AppError as exc:
            error = exc.message
            for problem in exc.errors or []:
                field = getattr(form, problem.get("field", ""), None)
                if field is not None:
                    field.errors = [*field.errors, problem["message"]]
        else:
            flash(f"Staff account {user.username} created.", "success")
            return redirect(url_for("console.staff"))
    status = 400 if form.errors or error else 200
    return render_template("console/staff/new.html", form=form, error=error), status


@bp.route("/staff/<int:user_id>/reset-2fa", methods=["GET", "POST"])
@console_view("staff.manage")
def staff_reset_2fa(user_id: int):
    """Admin: reset another staff member's second factor (a lost device)."""
    target = db.session.get(User, user_id)
    if target is None or not target.is_staff:
        abort(404)
    name = target.username

    def act(context: str):
        user = staff_auth.reset_totp(user_id, current_user)
        return (
            "console/staff/_row.html",
            {"u": user, "can_reset_2fa": True},
            f"Two-factor of {name} reset: every session ended; they set up a new "
            "authenticator at their next sign-in.",
            url_for("console.staff"),
        )

    dialog = {
        "title": f"Reset two-factor of {name}",
        "action_url": url_for("console.staff_reset_2fa", user_id=user_id),
        "submit_label": "Reset 2FA",
        "danger": True,
        "description": (
            "For a lost or broken authenticator. Their authenticator key and recovery codes "
            "stop working, every session of theirs ends now, and their next sign-in (with "
            "their password) sets up a new authenticator. Audited."
        ),
    }
    return decisions.run(
        ConfirmForm(),
        contexts={"row": f"#staff-row-{user_id}", "panel": f"#staff-row-{user_id}"},
        dialog=dialog,
        act=act,
    )


@bp.route("/account/recovery-codes", methods=["GET", "POST"])
@console_view()
def recovery_codes():
    """The signed-in staff member's recovery codes: how many are left; new ones (shown once)
    for a current authenticator code."""
    from app.identity import recovery

    form = RecoveryCodesForm()
    error = None
    if form.validate_on_submit():
        codes = staff_auth.regenerate_recovery_codes(current_user.id, form.code.data)
        if codes is not None:
            return render_template(
                "console/recovery_codes.html", codes=codes, next_url=url_for("console.dashboard")
            )
        error = "That code did not match. Enter the current code from your authenticator app."
    remaining = recovery.remaining(current_user)
    status = 400 if error or form.errors else 200
    return render_template(
        "console/account_recovery.html", form=form, error=error, remaining=remaining
    ), status
