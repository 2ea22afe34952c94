"""CRM: segments (a condition, its live count) and broadcasts to them, on the console.

The forms are the staff API's own schemas (``schema_forms``): what the console accepts is
what ``/api/admin/crm`` accepts.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.api.admin_crm import BroadcastArgs, NewSegmentArgs
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.schema_forms import schema_form
from app.core.errors import AppError
from app.core.extensions import db
from app.messaging import crm
from app.messaging.models import CrmBroadcast, CrmSegment


@bp.get("/crm/segments")
@console_view("crm.manage")
def crm_segments():
    preview = None
    condition = (request.args.get("condition") or "").strip()
    if condition:
        try:
            preview = {"condition": condition, "count": crm.count(condition)}
        except AppError as exc:
            preview = {"condition": condition, "error": exc.message}
    return render_template(
        "console/crm/segments.html",
        segments=crm.list_segments(),
        preview=preview,
        fields=sorted(crm.FIELDS.items()),
    )


@bp.route("/crm/segments/new", methods=["GET", "POST"])
@console_view("crm.manage")
def crm_segment_new():
    form = schema_form(NewSegmentArgs, {"condition": request.args.get("condition", "")})
    saved = form.submit(
        lambda args: crm.create_segment(
            args["name"], args["condition"], args["description"], current_user
        )
    )
    if saved:
        seg = saved[0]
        flash(
            _(
                "Segment %(name)s saved: %(count)s players match today.",
                name=seg.name,
                count=seg.last_count,
            ),
            "success",
        )
        return redirect(url_for("console.crm_segments"))
    return render_template(
        "console/engagement/form_page.html",
        form=form,
        title="New segment",
        action=url_for("console.crm_segment_new"),
        submit_label="Save segment",
        back_url=url_for("console.crm_segments"),
        back_label="CRM segments",
        intro=_(
            "Fields: %(fields)s. Example: %(example)s.",
            fields=", ".join(sorted(crm.FIELDS)),
            example="country = 'MT' AND deposits_30d > 100 AND NOT kyc_status = 'approved'",
        ),
    ), (400 if request.method == "POST" else 200)


@bp.post("/crm/segments/<int:segment_id>/recount")
@console_view("crm.manage")
def crm_segment_recount(segment_id: int):
    seg = crm.recount(segment_id)
    flash(
        _("%(name)s: %(count)s players match now.", name=seg.name, count=seg.last_count),
        "success",
    )
    return redirect(url_for("console.crm_segments"))


@bp.get("/crm/broadcasts")
@console_view("crm.manage")
def crm_broadcasts():
    rows = db.session.scalars(select(CrmBroadcast).order_by(CrmBroadcast.id.desc()).limit(100))
    names = {row.id: row.name for row in db.session.execute(select(CrmSegment.id, CrmSegment.name))}
    return render_template("console/crm/broadcasts.html", broadcasts=list(rows), names=names)


@bp.route("/crm/broadcasts/new", methods=["GET", "POST"])
@console_view("crm.manage")
def crm_broadcast_new():
    segment = request.args.get("segment_id", "")
    form = schema_form(BroadcastArgs, {"segment_id": int(segment)} if segment.isdigit() else {})
    saved = form.submit(
        lambda args: crm.create_broadcast(
            args["segment_id"], args["title"], args["message"], args["email"], current_user
        )
    )
    if saved:
        flash(_("Broadcast “%(title)s” queued.", title=saved[0].title), "success")
        return redirect(url_for("console.crm_broadcasts"))
    segments = ", ".join(f"{s.id} = {s.name}" for s in crm.list_segments()) or _("none yet")
    return render_template(
        "console/engagement/form_page.html",
        form=form,
        title="New broadcast",
        action=url_for("console.crm_broadcast_new"),
        submit_label="Queue broadcast",
        back_url=url_for("console.crm_broadcasts"),
        back_label="Broadcasts",
        intro=_(
            "Sent as an in-app notification (and e-mail when ticked) to the segment's players "
            "who opted in to marketing and are not self-excluded. Segments: %(segments)s.",
            segments=segments,
        ),
    ), (400 if request.method == "POST" else 200)
