"""Affiliates in the back office: the application queue (approve / reject) and the agents
with their figures. Plans and the tree are on the JSON API (docs/engagement.md)."""

from __future__ import annotations

from flask import abort, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.affiliates import program as affiliates
from app.affiliates.models import APPLICATION_STATUSES, AffiliateApplication
from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import ApproveForm, DecisionForm
from app.blueprints.console.listing import paginate, users_by_id
from app.core.extensions import db
from app.identity.models import User

SORTABLE = {"id": AffiliateApplication.id, "created": AffiliateApplication.created_at}
#: How many agents the page lists (the JSON API pages through all of them).
AGENTS_SHOWN = 50


@bp.get("/affiliates")
@console_view("affiliates.read")
def affiliates_page():
    status = request.args.get("status", "pending")
    if status not in (*APPLICATION_STATUSES, "all"):
        status = "pending"
    query = select(AffiliateApplication)
    if status != "all":
        query = query.where(AffiliateApplication.status == status)
    listing = paginate(
        query,
        sortable=SORTABLE,
        default_sort="created",
        default_direction="asc" if status == "pending" else "desc",
        filters={"status": status},
        tiebreak=AffiliateApplication.id,
    )
    agents, agents_total = affiliates.staff_stats(1, AGENTS_SHOWN)
    return render_template(
        "console/affiliates/list.html",
        listing=listing,
        users=users_by_id(a.user_id for a in listing.items),
        statuses=(*APPLICATION_STATUSES, "all"),
        agents=agents,
        agents_total=agents_total,
        default_plan=affiliates.plan_json(affiliates.plan_for(None)),
    )


@bp.route(
    "/affiliates/applications/<int:application_id>/<any(approve, reject):action>",
    methods=["GET", "POST"],
)
@console_view("affiliates.manage")
def affiliate_decide(application_id: int, action: str):
    application = db.session.get(AffiliateApplication, application_id)
    if application is None:
        abort(404)
    form = ApproveForm() if action == "approve" else DecisionForm()

    def act(_context: str):
        if action == "approve":
            note = (form.note.data or "").strip() or None
            affiliates.decide_application(current_user, application_id, approve=True, reason=note)
        else:
            affiliates.decide_application(
                current_user, application_id, approve=False, reason=form.reason.data
            )
        db.session.expire_all()
        fresh = db.session.get_one(AffiliateApplication, application_id)  # just decided
        user = db.session.get_one(User, fresh.user_id)  # fresh.user_id is a foreign key
        return (
            "console/affiliates/_row.html",
            {"application": fresh, "user": user},
            f"Affiliate application #{fresh.id} of {user.username} {fresh.status}.",
            url_for("console.affiliates_page"),
        )

    user = db.session.get_one(User, application.user_id)  # a foreign key
    dialog = {
        "title": f"{action.capitalize()} affiliate application #{application.id} ({user.username})",
        "action_url": url_for(
            "console.affiliate_decide", application_id=application.id, action=action
        ),
        "submit_label": action.capitalize(),
        "danger": action == "reject",
        "description": (
            "The player becomes an Agent: their player sessions end, they sign in to the "
            "agent area, and the players they referred become theirs."
            if action == "approve"
            else "The applicant is told the reason and may apply again."
        ),
    }
    row = f"#aff-row-{application.id}"
    return decisions.run(form, contexts={"row": row, "panel": row}, dialog=dialog, act=act)
