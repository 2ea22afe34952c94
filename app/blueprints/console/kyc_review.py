"""KYC review queue: pending submissions first, documents inline, approve / reject."""

from __future__ import annotations

from flask import Response, abort, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import ApproveForm, DecisionForm
from app.blueprints.console.listing import paginate
from app.compliance import kyc
from app.compliance.models import SUBMISSION_STATUSES, KycSubmission
from app.core.errors import NotFound
from app.core.extensions import db
from app.identity.models import User

SORTABLE = {"id": KycSubmission.id, "submitted": KycSubmission.submitted_at}
CONTEXTS = {"row": "#kyc-row-{id}", "panel": "#kyc-panel"}
#: Formats a browser may show inline; anything else (PDF) is downloaded.
INLINE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif"}


def _submission_or_404(submission_id: int) -> KycSubmission:
    try:
        return kyc.get_submission(submission_id)
    except NotFound:
        abort(404)


@bp.get("/kyc")
@console_view("kyc.read")
def kyc_queue():
    status = request.args.get("status", "pending")
    if status not in (*SUBMISSION_STATUSES, "all"):
        status = "pending"
    query = select(KycSubmission)
    if status != "all":
        query = query.where(KycSubmission.status == status)
    # The queue is worked oldest first; decided submissions read newest first.
    listing = paginate(
        query,
        sortable=SORTABLE,
        default_sort="submitted",
        default_direction="asc" if status == "pending" else "desc",
        filters={"status": status},
        tiebreak=KycSubmission.id,
    )
    players = _players_of(s.user_id for s in listing.items)
    return render_template(
        "console/kyc/list.html",
        listing=listing,
        players=players,
        statuses=(*SUBMISSION_STATUSES, "all"),
    )


def _players_of(ids) -> dict[int, User]:
    ids = set(ids)
    if not ids:
        return {}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


@bp.get("/kyc/<int:submission_id>")
@console_view("kyc.read")
def kyc_detail(submission_id: int):
    submission = _submission_or_404(submission_id)
    earlier = db.session.scalars(
        select(KycSubmission)
        .where(KycSubmission.user_id == submission.user_id, KycSubmission.id != submission.id)
        .order_by(KycSubmission.id.desc())
        .limit(10)
    ).all()
    actors = _players_of(
        [e.actor_id for e in submission.history if e.actor_id] + [submission.user_id]
    )
    return render_template(
        "console/kyc/detail.html",
        submission=submission,
        player=actors[submission.user_id],
        actors=actors,
        earlier=earlier,
        inline_types=INLINE_TYPES,
    )


@bp.get("/kyc/documents/<int:document_id>")
@console_view("kyc.read")
def kyc_document(document_id: int):
    """The stored file, after the permission check; the read is audited by the service."""
    try:
        doc, data = kyc.open_document(document_id, current_user)
    except NotFound:
        abort(404)
    extension = doc.storage_name.rsplit(".", 1)[-1]
    disposition = "inline" if doc.mime_type in INLINE_TYPES else "attachment"
    response = Response(data, mimetype=doc.mime_type)
    response.headers["Content-Disposition"] = f'{disposition}; filename="kyc-{doc.id}.{extension}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.route("/kyc/<int:submission_id>/<any(approve, reject):action>", methods=["GET", "POST"])
@console_view("kyc.review")
def kyc_decide(submission_id: int, action: str):
    submission = _submission_or_404(submission_id)
    form = ApproveForm() if action == "approve" else DecisionForm()

    def act(context: str):
        if action == "approve":
            kyc.approve(submission.id, current_user, note=(form.note.data or "").strip() or None)
        else:
            kyc.reject(submission.id, current_user, reason=form.reason.data)
        db.session.expire_all()
        fresh = kyc.get_submission(submission.id)
        player = db.session.get_one(User, fresh.user_id)  # fresh.user_id is a foreign key
        fragment = "_row.html" if context == "row" else "_panel.html"
        verb = "approved" if action == "approve" else "rejected"
        return (
            f"console/kyc/{fragment}",
            {"submission": fresh, "player": player},
            f"KYC submission #{fresh.id} of {player.username} {verb}.",
            url_for("console.kyc_detail", submission_id=fresh.id),
        )

    player = db.session.get_one(User, submission.user_id)  # a foreign key
    dialog = {
        "title": f"{action.capitalize()} KYC #{submission.id} ({player.username})",
        "action_url": url_for("console.kyc_decide", submission_id=submission.id, action=action),
        "submit_label": action.capitalize(),
        "danger": action == "reject",
        "description": (
            "The player is verified at level 2 with a proof of address, level 1 otherwise."
            if action == "approve"
            else "The player is told the reason and can upload new documents."
        ),
    }
    contexts = {k: v.format(id=submission.id) for k, v in CONTEXTS.items()}
    return decisions.run(form, contexts=contexts, dialog=dialog, act=act)
