"""The sandbox gateway's hosted checkout page (HTML, no scripts: CSP script-src 'self').

Unauthenticated by design (it plays the gateway's page), so it answers 404 wherever the
sandbox gateway is disabled (``SANDBOX_GATEWAY_ENABLED``, off in production)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request

from app.core import redirects
from app.core.errors import AppError, NotFound
from app.payments import gateways_admin, records, sandbox_checkout
from app.payments.gateways.sandbox import checkout_summary

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")


@bp.before_request
def _only_where_enabled():
    if not gateways_admin.adapter_enabled("sandbox"):
        raise NotFound("Not found")


@bp.get("/checkout/<string:public_id>")
def checkout(public_id: str):
    txn = records.get_payment(public_id)
    if txn.type != "deposit" or txn.gateway.adapter != "sandbox":
        return render_template("sandbox/result.html", title="Not found", ok=False), 404
    return render_template("sandbox/checkout.html", payment=checkout_summary(txn))


@bp.post("/checkout/<string:public_id>/<any(pay, decline):outcome>")
def submit(public_id: str, outcome: str):
    try:
        account = (request.form.get("account") or "")[:64] or None
        txn = sandbox_checkout.submit(public_id, outcome, account)
    except AppError as exc:
        return render_template(
            "sandbox/result.html", title="Payment not possible", message=exc.message, ok=False
        ), exc.status
    target = txn.return_url if outcome == "pay" else (txn.cancel_url or txn.return_url)
    if target and redirects.is_allowed(target):  # checked again: stored before the allow-list
        return redirect(target, code=303)
    return render_template(
        "sandbox/result.html",
        title="Payment submitted" if outcome == "pay" else "Payment declined",
        message="You can close this page and return to the casino.",
        ok=outcome == "pay",
    )
