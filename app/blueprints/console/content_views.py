"""Content: pages, FAQ, announcements and banners — list, create, edit, per-language drafts
with a preview, publish and unpublish. Permission ``content.manage``, as
``/api/admin/content``; forms are built from that API's schemas and every change goes through
``app.content.editing`` (sanitised, audited there)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.blueprints.api.admin_content import DraftArgs, ItemArgs, NewItemArgs
from app.blueprints.console.core import bp, console_view, is_htmx
from app.blueprints.console.listing import paged
from app.blueprints.console.schema_forms import UNCHANGED, schema_form
from app.content import editing, languages, media
from app.content.models import KINDS
from app.core.errors import AppError, ValidationError
from app.core.i18n import N_, translate_message

KIND_LABELS = {
    "page": N_("Page"),
    "faq": N_("FAQ entry"),
    "announcement": N_("Announcement"),
    "banner": N_("Banner"),
}
#: The "New ..." buttons and page titles (one text per kind: German capitalises the noun).
NEW_LABELS = {
    "page": N_("New page"),
    "faq": N_("New FAQ entry"),
    "announcement": N_("New announcement"),
    "banner": N_("New banner"),
}
#: Fields that mean something for some kinds only (console.js shows them for those kinds).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "slug": ("page",),
    "category": ("faq",),
    "sort_order": ("faq", "banner"),
    "position": ("banner",),
    "starts_at": ("announcement", "banner"),
    "ends_at": ("announcement", "banner"),
    "audience": ("announcement", "banner"),
    "segment_id": ("announcement", "banner"),
    "vip_level": ("announcement", "banner"),
}


def _kind(kind: str) -> str:
    """A content kind in the reader's language."""
    return translate_message(KIND_LABELS[kind])


def _kind_arg() -> str:
    kind = request.args.get("kind", "")
    return kind if kind in KINDS else ""


@bp.get("/content")
@console_view("content.manage")
def content_list():
    kind = _kind_arg()
    listing = paged(
        lambda offset, limit: editing.list_items(kind or None, offset // limit + 1, limit),
        filters={"kind": kind},
    )
    return render_template(
        "console/content/list.html",
        listing=listing,
        kinds=KINDS,
        kind_labels=KIND_LABELS,
        new_labels=NEW_LABELS,
    )


def _item_form_page(form, *, title, action, submit, item=None, kind=None, status=200):
    return render_template(
        "console/content/item_form.html",
        form=form,
        title=title,
        action=action,
        submit_label=submit,
        item=item,
        kind=kind or (item.kind if item else None),
        kind_fields=KIND_FIELDS,
    ), status


@bp.route("/content/new", methods=["GET", "POST"])
@console_view("content.manage")
def content_new():
    kind = _kind_arg() or "page"
    form = schema_form(NewItemArgs, {"kind": kind, "audience": "all", "sort_order": 0})
    saved = form.submit(
        lambda args: editing.create_item(args.pop("kind"), args, actor=current_user)
    )
    if saved:
        item = saved[0]
        flash(
            _(
                "%(kind)s %(name)s created: write its first language.",
                kind=_kind(item.kind),
                name=item.name,
            ),
            "success",
        )
        return redirect(url_for("console.content_edit", item_id=item.id))
    return _item_form_page(
        form,
        title=translate_message(NEW_LABELS[kind]),
        action=url_for("console.content_new", kind=kind),
        submit=_("Create"),
        kind=kind,
        status=400 if request.method == "POST" else 200,
    )


@bp.route("/content/<int:item_id>", methods=["GET", "POST"])
@console_view("content.manage")
def content_edit(item_id: int):
    item = editing.get_item(item_id)
    values = editing.item_snapshot(item)
    form = schema_form(ItemArgs, values)
    saved = form.submit(
        lambda args: editing.update_item(item.id, args, actor=current_user), initial=values
    )
    if saved:
        changed = (
            _("Nothing changed.")
            if saved[0] is UNCHANGED
            else _("Saved (%(fields)s).", fields=", ".join(sorted(saved[1])))
        )
        flash(changed, "success" if saved[0] is not UNCHANGED else "info")
        return redirect(url_for("console.content_edit", item_id=item.id))
    return _item_form_page(
        form,
        title=f"{_kind(item.kind)} #{item.id}: {item.name}",
        action=url_for("console.content_edit", item_id=item.id),
        submit=_("Save settings"),
        item=item,
        status=400 if request.method == "POST" else 200,
    )


@bp.post("/content/<int:item_id>/language")
@console_view("content.manage")
def content_add_language(item_id: int):
    editing.get_item(item_id)
    try:
        code = languages.normalize(request.form.get("language", "")[:16])
    except ValidationError as exc:
        flash(exc.message if not exc.errors else exc.errors[0]["message"], "error")
        return redirect(url_for("console.content_edit", item_id=item_id))
    return redirect(url_for("console.content_version", item_id=item_id, language=code))


def _code(language: str) -> str:
    try:
        return languages.normalize(language[:16])
    except ValidationError:
        abort(404)


@bp.route("/content/<int:item_id>/versions/<language>", methods=["GET", "POST"])
@console_view("content.manage")
def content_version(item_id: int, language: str):
    item = editing.get_item(item_id)
    code = _code(language)
    version = item.version(code)
    values = {"title": version.draft_title, "body": version.draft_body} if version else {}
    form = schema_form(DraftArgs, values)
    saved = form.submit(
        lambda args: editing.save_draft(
            item.id, code, args["title"], args["body"], actor=current_user
        )
    )
    if saved:
        flash(
            _("Draft (%(code)s) saved and sanitised: check the preview, then publish.", code=code),
            "success",
        )
        return redirect(url_for("console.content_preview", item_id=item.id, language=code))
    return render_template(
        "console/content/version_form.html",
        form=form,
        item=item,
        language=code,
        version=version,
        kind_label=KIND_LABELS[item.kind],
    ), (400 if request.method == "POST" else 200)


@bp.get("/content/<int:item_id>/versions/<language>/preview")
@console_view("content.manage")
def content_preview(item_id: int, language: str):
    item = editing.get_item(item_id)
    version = item.version(_code(language))
    if version is None:
        abort(404)
    return render_template(
        "console/content/preview.html", item=item, v=version, kind_label=KIND_LABELS[item.kind]
    )


@bp.post("/content/<int:item_id>/versions/<language>/<any(publish, unpublish):action>")
@console_view("content.manage")
def content_publish(item_id: int, language: str, action: str):
    code = _code(language)
    if action == "publish":
        version = editing.publish(item_id, code, actor=current_user)
        flash(_("Version %(code)s published: players see it now.", code=code), "success")
    else:
        version = editing.unpublish(item_id, code, actor=current_user)
        flash(_("Version %(code)s unpublished: players no longer see it.", code=code), "success")
    if is_htmx():
        return render_template(
            "console/content/_version_row.html", item=version.item, v=version, swapped=True
        )
    if request.form.get("next") == "preview":
        return redirect(url_for("console.content_preview", item_id=item_id, language=code))
    return redirect(url_for("console.content_edit", item_id=item_id))


@bp.post("/content/<int:item_id>/image")
@console_view("content.manage")
def content_image(item_id: int):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose an image file first.", "error")
        return redirect(url_for("console.content_edit", item_id=item_id))
    limit = media.max_bytes()
    try:
        media.set_image(item_id, upload.stream.read(limit + 1), actor=current_user)
    except AppError as exc:
        reason = exc.errors[0]["message"] if exc.errors else exc.message
        flash(_("Image refused: %(reason)s", reason=translate_message(reason)), "error")
    else:
        flash("Image uploaded.", "success")
    return redirect(url_for("console.content_edit", item_id=item_id))
