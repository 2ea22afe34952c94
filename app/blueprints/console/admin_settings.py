"""Settings (maintenance mode) and staff accounts: Admin only."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import MaintenanceForm, StaffCreateForm
from app.blueprints.console.listing import paginate
from app.core import settings as settings_service
from app.core.db import atomic
from app.core.errors import AppError
from app.identity import users
from app.identity.models import STAFF_ROLES, User

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
            _("Maintenance mode is on: players get 503.")
            if form.enabled.data
            else _("Maintenance mode is off."),
            "success",
        )
        return redirect(url_for("console.settings"))
    return render_template("console/settings.html", form=form, state=state)


@bp.get("/staff")
@console_view("staff.manage")
def staff():
    query = select(User).where(User.role_id.in_(STAFF_ROLES))
    listing = paginate(query, sortable=STAFF_SORTABLE, default_sort="id", default_direction="asc")
    return render_template("console/staff/list.html", listing=listing)


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
