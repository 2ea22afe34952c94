"""My exports: queue a CSV export from a list or report page, watch its progress (HTMX
polling while one is in progress), download it (``app.reports.exports``)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.blueprints.console.core import bp, console_view, is_htmx
from app.blueprints.console.listing import NO_PLAYER, player_filter
from app.core.errors import AppError
from app.core.i18n import translate_message
from app.reports import exports

#: What a page's "Export CSV" form may carry besides ``kind`` (its current filters).
PARAMS = ("date_from", "date_to", "currency", "group", "type", "source", "q", "status", "country")


@bp.post("/exports")
@console_view("exports.own")
def export_request():
    form = request.form
    params: dict[str, str | int] = {k: form[k] for k in PARAMS if form.get(k)}
    kind = form.get("kind", "")
    try:
        if kind == "transactions" and form.get("player"):
            text, player_id = player_filter(form)
            if player_id is None or player_id == NO_PLAYER:
                raise AppError(f"No player matches “{text[:40]}”.")
            params["player_id"] = player_id
        export = exports.request_export(current_user, kind, params)
    except AppError as exc:
        flash(_("Export not queued: %(reason)s", reason=translate_message(exc.message)), "error")
    else:
        flash(
            _(
                "%(kind)s: export queued. It stays here for download until it expires.",
                kind=translate_message(exports.KINDS[export.kind].label),
            ),
            "success",
        )
    return redirect(url_for("console.my_exports"))


@bp.get("/exports")
@console_view("exports.own")
def my_exports():
    rows = exports.list_for(current_user)
    context = {
        "rows": rows,
        "kinds": exports.KINDS,
        "polling": any(r.status in exports.ACTIVE for r in rows),
    }
    if is_htmx():
        return render_template("console/exports/_table.html", **context)
    return render_template("console/exports/list.html", **context)


@bp.get("/exports/<string:export_id>/download")
@console_view("exports.own")
def export_download(export_id: str):
    path, export = exports.download(current_user, export_id)
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=export.file_name)
