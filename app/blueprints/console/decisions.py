"""One flow for every decision taken through the shared modal form.

GET renders the form (in ``#modal-root`` for HTMX, as a plain page otherwise). A valid POST
calls the service; on success the fragment named by the view (a table row or a detail panel)
is rendered with ``swapped=True`` so ``after_action.html`` closes the modal and shows the
flash, and the response triggers ``jx:changed`` so stale panels reload; without HTMX it
redirects. A domain error or an invalid form re-renders the form in the
modal (``HX-Retarget``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request
from flask_wtf import FlaskForm

from app.blueprints.console.core import is_htmx
from app.core.errors import AppError

#: The htmx event a successful decision triggers (``hx-trigger="jx:changed from:body"``).
CHANGED = "jx:changed"


def attach_errors(form: FlaskForm, exc: AppError) -> str | None:
    """A service refusal about a field goes next to that field; the rest on top."""
    placed = False
    for problem in exc.errors or []:
        field = getattr(form, str(problem.get("field") or ""), None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, problem.get("message") or exc.message]
            placed = True
    return None if placed else exc.message


def run(
    form: FlaskForm,
    *,
    contexts: dict[str, str],
    dialog: dict[str, Any],
    act: Callable[[str], tuple[str, dict[str, Any], Any, str]],
):
    """``act(context)`` performs the decision and returns
    ``(fragment_template, template_vars, flash_message, redirect_url)``."""
    if request.method == "GET":
        form.context.data = request.args.get("context", "panel")
    context = form.context.data if form.context.data in contexts else "panel"
    form.context.data = context
    error = None
    if form.validate_on_submit():
        try:
            fragment, values, message, url = act(context)
        except AppError as exc:
            error = attach_errors(form, exc)
        else:
            # A message may carry its own category: ("...refused...", "warning").
            text, category = message if isinstance(message, tuple) else (message, "success")
            flash(text, category)
            if not is_htmx():
                return redirect(url)
            # Panels that show what the decision changed (a player's ledger and history, KYC
            # history, pending counts, menu badges) listen for this event and reload.
            html = render_template(fragment, swapped=True, **values)
            return html, 200, {"HX-Trigger": CHANGED}
    dialog = {**dialog, "target": contexts[context], "error": error}
    status = 200 if request.method == "GET" else (409 if error else 400)
    if is_htmx():
        headers = {"HX-Retarget": "#modal-root", "HX-Reswap": "innerHTML"}
        html = render_template("console/components/modal_form.html", form=form, dialog=dialog)
        return html, 200, headers
    return render_template("console/modal_page.html", form=form, dialog=dialog), status
