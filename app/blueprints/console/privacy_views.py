"""Privacy decisions on the console: GDPR erasure requests (approve / reject, audited by
``app.identity.gdpr``) and re-sending a player's e-mail verification."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.console.core import bp, console_view
from app.core import audit
from app.core.db import atomic
from app.core.errors import AppError
from app.core.extensions import db
from app.identity import gdpr, verification
from app.identity.models import ErasureRequest, User

STATUSES = ("pending", "completed", "rejected")


@bp.get("/erasure-requests")
@console_view("players.read")
def erasure_requests():
    status = request.args.get("status", "pending")
    rows, total = gdpr.list_requests(
        status=status if status in STATUSES else None, page=1, limit=200
    )
    ids = {row.user_id for row in rows}
    names = (
        dict(db.session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
        if ids
        else {}
    )
    return render_template(
        "console/privacy/erasure.html",
        rows=rows,
        total=total,
        names=names,
        status=status,
        statuses=STATUSES,
        retained=gdpr.RETAINED,
        can_decide=current_user.can("players.manage"),
    )


@bp.post("/erasure-requests/<int:request_id>/<any(approve, reject):decision>")
@console_view("players.manage")
def erasure_decide(request_id: int, decision: str):
    if db.session.get(ErasureRequest, request_id) is None:
        abort(404)
    note = (request.form.get("note") or "").strip()[:500]
    try:
        if decision == "approve":
            gdpr.approve(request_id, current_user, note or None)
            flash(_("Erasure carried out: the player's personal data is pseudonymised."), "success")
        else:
            if not note:
                flash(_("Say why the request is rejected."), "error")
                return redirect(url_for("console.erasure_requests"))
            gdpr.reject(request_id, current_user, note)
            flash(_("Erasure request rejected."), "success")
    except AppError as exc:
        flash(exc.message, "error")
    return redirect(url_for("console.erasure_requests"))


@bp.post("/players/<int:player_id>/resend-verification")
@console_view("players.manage")
def player_resend_verification(player_id: int):
    player = db.session.get(User, player_id)
    if player is None or player.is_staff:
        abort(404)
    try:
        verification.resend(player)
    except AppError as exc:
        flash(exc.message, "error")
    else:
        with atomic():
            audit.record(
                "staff.verification_resend",
                actor=current_user,
                target_type="user",
                target_id=player.id,
            )
        flash(
            _("A new verification e-mail is on its way to %(email)s.", email=player.email),
            "success",
        )
    return redirect(url_for("console.player_detail", player_id=player.id))
