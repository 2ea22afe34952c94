"""Sign in (password + TOTP), first-time TOTP enrolment, sign out."""

from __future__ import annotations

import time

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.blueprints.console.core import (
    SESSION_ID,
    SESSION_STARTED,
    bp,
    console_view,
    safe_next,
)
from app.blueprints.console.forms import EnrolForm, LoginForm
from app.core.extensions import db, limiter
from app.identity import console_sessions, staff_auth, totp
from app.identity.models import User

#: Password checked, second factor still to be enrolled: ``{"uid", "exp", "next"}``.
PENDING_ENROLMENT = "console_enrol"
ENROLMENT_WINDOW = 10 * 60


def _auth_limit() -> str:
    return current_app.config["RATE_LIMIT_AUTH"]


def _start_session(user_id: int, next_url: str | None):
    """Fresh session at sign-in: old content (and any fixed id) is thrown away."""
    console_sessions.close(session.get(SESSION_ID))
    session.clear()
    user = db.session.get_one(User, user_id)  # the account that just passed the sign-in
    login_user(user)
    session.permanent = True
    started = time.time()
    session[SESSION_ID] = console_sessions.open_session(user.id, started)
    session[SESSION_STARTED] = started
    return redirect(safe_next(next_url) or url_for("console.dashboard"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_auth_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("console.dashboard"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"))
    error = None
    if form.validate_on_submit():
        attempt = staff_auth.authenticate(form.username.data, form.password.data, form.code.data)
        if attempt.outcome is staff_auth.Outcome.SIGNED_IN:
            return _start_session(attempt.user_id, form.next.data)
        if attempt.outcome is staff_auth.Outcome.ENROL_TOTP:
            session.clear()
            session[PENDING_ENROLMENT] = {
                "uid": attempt.user_id,
                "exp": time.time() + ENROLMENT_WINDOW,
                "next": safe_next(form.next.data),
            }
            return redirect(url_for("console.enrol_totp"))
        error = staff_auth.GENERIC_REFUSAL
    elif request.method == "POST":
        error = "Enter your username and password."
    status = 401 if error else 200
    return render_template("console/login.html", form=form, error=error), status


def _pending_user_id() -> int | None:
    pending = session.get(PENDING_ENROLMENT)
    if not pending or pending.get("exp", 0) < time.time():
        session.pop(PENDING_ENROLMENT, None)
        return None
    return int(pending["uid"])


@bp.route("/login/totp-setup", methods=["GET", "POST"])
@limiter.limit(_auth_limit, methods=["POST"])
def enrol_totp():
    user_id = _pending_user_id()
    if user_id is None:
        flash("Sign in with your password first.", "info")
        return redirect(url_for("console.login"))
    try:
        user, secret = staff_auth.pending_enrolment(user_id)
    except LookupError:
        session.pop(PENDING_ENROLMENT, None)
        return redirect(url_for("console.login"))
    form = EnrolForm()
    error = None
    if form.validate_on_submit():
        attempt = staff_auth.confirm_enrolment(user_id, form.code.data)
        if attempt.outcome is staff_auth.Outcome.SIGNED_IN:
            next_url = session.get(PENDING_ENROLMENT, {}).get("next")
            response = _start_session(user_id, next_url)
            flash("Two-factor authentication is set up. Welcome.", "success")
            # The recovery codes, shown this once: the page links on to where the sign-in led.
            return render_template(
                "console/recovery_codes.html",
                codes=attempt.recovery_codes,
                next_url=response.location,
            )
        error = "That code did not match. Check your device's clock and try the next code."
    uri = totp.provisioning_uri(user, secret)
    return render_template(
        "console/totp_setup.html",
        form=form,
        error=error,
        qr=totp.qr_svg(uri),
        secret=secret,
        user=user,
    ), (400 if error else 200)


@bp.post("/logout")
@console_view()
def logout():
    staff_auth.record_logout(current_user)
    console_sessions.close(session.get(SESSION_ID))
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("console.login"))
