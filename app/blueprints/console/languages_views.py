"""The staff member's language (the switcher in the top bar) and the e-mail templates."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.blueprints.console.core import bp, console_view, hx_redirect, is_htmx, safe_next
from app.core import audit, i18n, mail_templates
from app.core.db import atomic
from app.core.errors import AppError
from app.core.extensions import db
from app.identity.models import User


class LanguageForm(FlaskForm):
    language = SelectField(choices=[])
    next = HiddenField()


class MailTemplateForm(FlaskForm):
    subject = StringField(
        _l("Subject"), validators=[DataRequired(), Length(max=mail_templates.MAX_SUBJECT)]
    )
    body = TextAreaField(
        _l("Body"),
        validators=[DataRequired(), Length(max=mail_templates.MAX_BODY)],
        render_kw={"rows": 14, "spellcheck": "true"},
    )


@bp.post("/language")
@console_view()
def set_language():
    """The staff member's own choice: stored on their account, audited."""
    form = LanguageForm()
    form.language.choices = [(code, name) for code, name in i18n.AVAILABLE.items()]
    target = safe_next(form.next.data) or url_for("console.dashboard")
    if not form.validate_on_submit() or form.language.data not in i18n.enabled_languages():
        abort(400)
    with atomic():
        user = db.session.get_one(User, current_user.id)
        before = user.language
        if before != form.language.data:
            user.language = form.language.data
            audit.record(
                "staff.language_change",
                actor=user,
                target_type="user",
                target_id=user.id,
                before={"language": before},
                after={"language": user.language},
            )
    return hx_redirect(target)


@bp.get("/mail-templates")
@console_view("settings.manage")
def mail_templates_list():
    return render_template(
        "console/mail_templates/list.html",
        templates=mail_templates.overview(),
        names=i18n.AVAILABLE,
    )


def _error_fields(form: MailTemplateForm, exc: AppError) -> str:
    for problem in exc.errors or []:
        field = getattr(form, problem.get("field", ""), None)
        if field is not None:
            field.errors = [*field.errors, i18n.translate_message(problem["message"])]
    return i18n.translate_message(exc.message)


@bp.route("/mail-templates/<key>/<language>", methods=["GET", "POST"])
@console_view("settings.manage")
def mail_template_edit(key: str, language: str):
    try:
        spec = mail_templates.spec_of(key)
        subject, body, edited = mail_templates.current_text(key, language)
    except AppError:
        abort(404)
    form = MailTemplateForm(data={"subject": subject, "body": body})
    error = preview = None
    status = 200
    action = request.form.get("action", "save")
    if request.method == "POST" and form.validate_on_submit():
        try:
            with atomic():
                if action == "preview":
                    preview = mail_templates.preview(
                        key, language, form.subject.data, form.body.data
                    )
                elif action == "test":
                    row = mail_templates.test_send(
                        key, language, form.subject.data, form.body.data, actor=current_user
                    )
                    flash(
                        _("Test e-mail queued to %(address)s.", address=row.to_address), "success"
                    )
                elif action == "reset":
                    mail_templates.reset(key, language, actor=current_user)
                    flash(_("The default template applies again."), "success")
                else:
                    mail_templates.save(
                        key, language, form.subject.data, form.body.data, actor=current_user
                    )
                    flash(_("Template saved."), "success")
        except AppError as exc:
            error, status = _error_fields(form, exc), exc.status
        else:
            if action != "preview":
                return redirect(url_for("console.mail_template_edit", key=key, language=language))
    elif request.method == "POST":
        status = 400
    context = {
        "form": form,
        "spec": spec,
        "language": language,
        "language_name": i18n.AVAILABLE.get(language, language),
        "edited": edited,
        "error": error,
        "preview": preview,
        "variables": sorted(spec.sample),
    }
    if is_htmx() and action == "preview":
        return render_template("console/mail_templates/_preview.html", **context), status
    return render_template("console/mail_templates/edit.html", **context), status
