"""Promotions: list, create and edit (the admin API's own schema), activate/deactivate, and
each promotion's bonuses with their wagering progress. Permission ``promotions.manage``, as
``/api/admin/promotions``; every change goes through ``app.bonus.promotions`` (audited
there, ``promotion.update`` event after commit)."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.blueprints.api.promotions import (
    MONEY_FIELDS,
    NewPromotionArgs,
    PromotionArgs,
    promotion_json,
    to_model,
)
from app.blueprints.console.core import bp, console_view, enum_label, is_htmx
from app.blueprints.console.listing import paged, users_by_id
from app.blueprints.console.schema_forms import saved_message, schema_form
from app.bonus import bonuses, promotions
from app.bonus.models import PROMOTION_STATUSES, PROMOTION_TYPES, Promotion
from app.core.money import format_minor


def _filters() -> dict[str, str]:
    args = request.args
    return {
        "status": args.get("status", "") if args.get("status") in PROMOTION_STATUSES else "",
        "type": args.get("type", "") if args.get("type") in PROMOTION_TYPES else "",
        "q": args.get("q", "").strip()[:100],
    }


@bp.get("/promotions")
@console_view("promotions.manage")
def promotions_list():
    filters = _filters()
    listing = paged(
        lambda offset, limit: promotions.list_promotions(
            filters["status"] or None,
            offset // limit + 1,
            limit,
            type_=filters["type"] or None,
            query=filters["q"] or None,
        ),
        filters=filters,
    )
    return render_template(
        "console/engagement/promotions.html",
        listing=listing,
        statuses=PROMOTION_STATUSES,
        types=PROMOTION_TYPES,
    )


def _create_defaults() -> dict[str, Any]:
    """The model's own column defaults, API-shaped (a new form starts where the API does)."""
    currency = current_app.config["DEFAULT_CURRENCY"]
    money = {column: name for name, column in MONEY_FIELDS.items()}
    out: dict[str, Any] = {"currency": currency, "type": PROMOTION_TYPES[0]}
    for column in Promotion.__table__.columns:
        default = column.default
        if default is None or not default.is_scalar:
            continue
        if column.key in money:
            out[money[column.key]] = format_minor(default.arg, currency)
        else:
            out[column.key] = default.arg
    return out


_DEPOSIT = ("deposit_match", "reload")

#: Fields that mean something for some promotion types only; the form shows them for those
#: types (console.js, on the Type select). Every other field applies to every type.
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "match_percent": _DEPOSIT,
    "max_bonus": _DEPOSIT,
    "min_deposit": _DEPOSIT,
    "first_deposit_only": _DEPOSIT,
    "bonus_amount": ("no_deposit",),
    "cashback_percent": ("cashback",),
    "cashback_period_days": ("cashback",),
    "free_spins_count": ("free_spins",),
    "free_spins_game_id": ("free_spins",),
    "free_spin_value": ("free_spins",),
    "free_spins_valid_days": ("free_spins",),
}


def _form_page(form, *, title: str, action: str, submit: str, promotion=None, status=200):
    return render_template(
        "console/engagement/promotion_form.html",
        form=form,
        title=title,
        action=action,
        submit_label=submit,
        promotion=promotion,
        type_fields=TYPE_FIELDS,
    ), status


@bp.route("/promotions/new", methods=["GET", "POST"])
@console_view("promotions.manage")
def promotion_new():
    form = schema_form(NewPromotionArgs, _create_defaults())
    saved = form.submit(
        lambda args: promotions.create_promotion(
            to_model(args, args["currency"]), actor=current_user
        )
    )
    if saved:
        flash(
            _(
                "Promotion %(name)s created as a draft: activate it to offer it.",
                name=saved[0].name,
            ),
            "success",
        )
        return redirect(url_for("console.promotions_list"))
    return _form_page(
        form,
        title="New promotion",
        action=url_for("console.promotion_new"),
        submit="Create promotion",
        status=400 if request.method == "POST" else 200,
    )


@bp.route("/promotions/<int:promotion_id>/edit", methods=["GET", "POST"])
@console_view("promotions.manage")
def promotion_edit(promotion_id: int):
    p = promotions.get_promotion(promotion_id)
    values = promotion_json(p, staff=True, refusal=False)
    form = schema_form(PromotionArgs, values)
    saved = form.submit(
        lambda args: promotions.update_promotion(
            p.id, to_model(args, p.currency), actor=current_user
        ),
        initial=values,
    )
    if saved:
        flash(saved_message(_("Promotion"), *saved), "success" if saved[1] else "info")
        return redirect(url_for("console.promotions_list"))
    return _form_page(
        form,
        title=f"Edit promotion #{p.id}",
        action=url_for("console.promotion_edit", promotion_id=p.id),
        submit="Save changes",
        promotion=p,
        status=400 if request.method == "POST" else 200,
    )


@bp.post("/promotions/<int:promotion_id>/<any(activate, deactivate):action>")
@console_view("promotions.manage")
def promotion_status(promotion_id: int, action: str):
    status = "active" if action == "activate" else "inactive"
    p = promotions.set_status(promotion_id, status, actor=current_user)
    flash(
        _("Promotion %(name)s: %(status)s.", name=p.name, status=_(enum_label(p.status))),
        "success",
    )
    if is_htmx():
        return render_template("console/engagement/_promotion_row.html", p=p, swapped=True)
    return redirect(url_for("console.promotions_list"))


@bp.get("/promotions/<int:promotion_id>/bonuses")
@console_view("promotions.manage")
def promotion_bonuses(promotion_id: int):
    p = promotions.get_promotion(promotion_id)
    listing = paged(
        lambda offset, limit: promotions.bonuses_of_promotion(p.id, offset // limit + 1, limit)
    )
    rows = [(b, bonuses.bonus_json(b)) for b in listing.items]
    return render_template(
        "console/engagement/promotion_bonuses.html",
        p=p,
        listing=listing,
        rows=rows,
        users=users_by_id(b.user_id for b in listing.items),
    )
