"""Operator settings (generated from ``app.core.opsettings``) and staff accounts: Admin only."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.console import decisions, settings_forms
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import ConfirmForm, RecoveryCodesForm, StaffCreateForm
from app.blueprints.console.listing import paginate
from app.core import opsettings
from app.core.db import atomic
from app.core.errors import AppError, ValidationError
from app.core.extensions import db
from app.identity import recovery, staff_auth, users
from app.identity.models import ADMIN, STAFF_ROLES, User

STAFF_SORTABLE = {
    "id": User.id,
    "username": User.username,
    "role": User.role_id,
    "status": User.status,
    "last_login": User.last_login_at,
}


@bp.get("/settings")
@console_view("settings.manage")
def settings():
    described = opsettings.describe()
    forms = {
        category: settings_forms.form_class(category)(
            formdata=None, data=settings_forms.initial(described, category)
        )
        for category in settings_forms.categories()
    }
    return _settings_page(described, forms)


@bp.post("/settings/<category>")
@console_view("settings.manage")
def settings_save(category: str):
    if category not in settings_forms.categories():
        abort(404)
    described = opsettings.describe()
    form = settings_forms.form_class(category)()
    current = {row["key"]: row["value"] for row in described}
    changes = form.validate_on_submit() and form.changes(current)
    if changes:
        reason = (request.form.get("reason") or "").strip()[:500] or None
        try:
            with atomic():
                opsettings.put_many(changes, actor=current_user, reason=reason)
        except ValidationError as exc:
            form.show_errors(exc.errors or [])
        else:
            flash(_saved_message(changes), "success")
            return redirect(url_for("console.settings") + f"#settings-{category}")
    elif changes == {}:
        flash(_("Nothing changed."), "info")
        return redirect(url_for("console.settings") + f"#settings-{category}")
    forms = {
        name: form
        if name == category
        else settings_forms.form_class(name)(
            formdata=None, data=settings_forms.initial(described, name)
        )
        for name in settings_forms.categories()
    }
    return _settings_page(described, forms), 400


@bp.post("/settings/reset/<key>")
@console_view("settings.manage")
def settings_reset(key: str):
    """Back to the environment's default (the override is removed, audited)."""
    spec = opsettings.BY_KEY.get(key)
    if spec is None:
        abort(404)
    if spec.type == "bool" and key == "maintenance_mode":
        abort(400)  # maintenance is switched, not reset
    with atomic():
        opsettings.put_many({key: None}, actor=current_user)
    flash(_("%(key)s is back to its default.", key=key), "success")
    return redirect(url_for("console.settings") + f"#settings-{spec.category}")


def _settings_page(described, forms):
    rows = {row["key"]: row for row in described}
    return render_template(
        "console/settings.html", forms=forms, rows=rows, maintenance=rows["maintenance_mode"]
    )


def _saved_message(changes: dict) -> str:
    if changes.get("maintenance_mode") is True:
        return _("Maintenance mode is on: players get 503.")
    if changes.get("maintenance_mode") is False:
        return _("Maintenance mode is off.")
    return _("Saved: %(keys)s.", keys=", ".join(sorted(changes)))


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
            flash(_("Staff account %(name)s created.", name=user.username), "success")
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
    form = RecoveryCodesForm()
    error = None
    if form.validate_on_submit():
        codes = staff_auth.regenerate_recovery_codes(current_user.id, form.code.data)
        if codes is not None:
            return render_template(
                "console/recovery_codes.html", codes=codes, next_url=url_for("console.dashboard")
            )
        error = _("That code did not match. Enter the current code from your authenticator app.")
    remaining = recovery.remaining(current_user)
    status = 400 if error or form.errors else 200
    return render_template(
        "console/account_recovery.html", form=form, error=error, remaining=remaining
    ), status
