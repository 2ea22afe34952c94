"""E-mail templates: file templates translated by the catalogue, overridable by staff.

A service mail is named by a template key (``TEMPLATES``) and given plain values
(``context``); ``queue_templated`` renders its subject and body in the recipient's language
and queues it (``app.core.mail``).

Invariants:
* A staff-edited template (``MailTemplate`` row for the key and language) wins; without one,
  the file template ``app/templates/mail/<key>/{subject,body}.txt`` renders under
  ``force_locale`` (its texts are in the message catalogue).
* Staff-edited text is untrusted: it is parsed and accepted only if it uses nothing but the
  key's declared variables, the filters in ``ALLOWED_FILTERS``, ``{% if %}`` and plain
  comparisons (no attribute or item access, no calls, loops, macros, includes, arithmetic),
  and is rendered by Jinja's ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``, so
  ``{{ ''.__class__.__mro__ }}`` is refused at save and would be refused again at render.
  Saving test-renders the sample context; a stored template that fails at send time (a
  variable removed since) falls back to the file template and logs.
* Every save, reset and test send is audited; a test send goes only to the staff member's own
  address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import render_template
from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select

from app.core import audit, i18n, mail
from app.core.errors import AccessDenied, NotFound, ValidationError
from app.core.extensions import db
from app.core.i18n import N_
from app.core.models import MailTemplate, OutboxEmail

log = logging.getLogger(__name__)

MAX_SUBJECT, MAX_BODY, MAX_OUTPUT = 200, 20_000, 50_000
ALLOWED_FILTERS = frozenset({"upper", "lower", "title", "capitalize", "trim", "default"})
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Filter,
    nodes.If,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.CondExpr,
    nodes.Concat,
)


@dataclass(frozen=True)
class TemplateSpec:
    key: str
    description: str
    #: The variables a template may use, with the sample values of the preview.
    sample: dict[str, Any] = field(default_factory=dict)


TEMPLATES: dict[str, TemplateSpec] = {
    spec.key: spec
    for spec in (
        TemplateSpec(
            "password_reset",
            N_("Password reset link"),
            {
                "username": "player1",
                "link": "https://casino.example/reset-password?token=SAMPLE-TOKEN",
                "token": "SAMPLE-TOKEN",
                "minutes": 30,
            },
        ),
        TemplateSpec(
            "email_verification",
            N_("E-mail address verification"),
            {
                "username": "player1",
                "link": "https://casino.example/verify-email?token=SAMPLE-TOKEN",
                "code": "123456",
                "hours": 24,
            },
        ),
    )
}


class _MailSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with only the allowed filters and no globals (no ``range``, ``lipsum``,
    ``cycler``, ``namespace``...)."""

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.filters = {name: self.filters[name] for name in ALLOWED_FILTERS}
        self.globals = {}
        self.tests = {name: self.tests[name] for name in ("defined", "none", "eq", "ne")}


_sandbox = _MailSandbox()


def sandbox_environment() -> ImmutableSandboxedEnvironment:
    return _sandbox


def spec_of(key: str) -> TemplateSpec:
    spec = TEMPLATES.get(key)
    if spec is None:
        raise NotFound(N_("Unknown e-mail template"))
    return spec


def _language(language: str) -> str:
    if language not in i18n.enabled_languages():
        raise ValidationError.field("language", N_("This language is not enabled"))
    return language


def check_source(source: str, variables: set[str], *, field_name: str) -> None:
    """Refuse what the sandboxed templates may not use (see the module docstring)."""
    try:
        tree = _sandbox.parse(source)
    except TemplateError as exc:
        raise ValidationError.field(field_name, f"Template syntax error: {exc}") from None
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValidationError.field(
                field_name,
                N_(
                    "Only the template's variables, simple filters and {% if %} are allowed "
                    "(no attribute access, calls or loops)"
                ),
            )
        if isinstance(node, nodes.Name) and node.name not in variables:
            raise ValidationError.field(
                field_name,
                f"Unknown variable {node.name!r}; available: {', '.join(sorted(variables))}",
            )
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            raise ValidationError.field(
                field_name,
                f"Filter {node.name!r} is not allowed; "
                f"allowed: {', '.join(sorted(ALLOWED_FILTERS))}",
            )


def render_source(source: str, context: dict[str, Any]) -> str:
    """Render untrusted template text in the sandbox (call ``check_source`` first)."""
    out = _sandbox.from_string(source).render(**context)
    if len(out) > MAX_OUTPUT:
        raise ValidationError(N_("The rendered e-mail is too long"))
    return out


def _validate(spec: TemplateSpec, subject: str, body: str) -> tuple[str, str]:
    subject, body = (subject or "").strip(), (body or "").replace("\r\n", "\n")
    if not subject:
        raise ValidationError.field("subject", N_("Write a subject"))
    if len(subject) > MAX_SUBJECT:
        raise ValidationError.field("subject", f"At most {MAX_SUBJECT} characters")
    if not body.strip():
        raise ValidationError.field("body", N_("Write the body"))
    if len(body) > MAX_BODY:
        raise ValidationError.field("body", f"At most {MAX_BODY} characters")
    if "\x00" in subject or "\x00" in body:
        raise ValidationError(N_("NUL characters are not allowed"))
    variables = set(spec.sample)
    check_source(subject, variables, field_name="subject")
    check_source(body, variables, field_name="body")
    try:
        rendered_subject = render_source(subject, spec.sample)
        render_source(body, spec.sample)
    except TemplateError as exc:
        raise ValidationError(f"The template does not render: {exc}") from None
    if "\n" in rendered_subject.strip():
        raise ValidationError.field("subject", N_("The subject must be one line"))
    return subject, body


def stored(key: str, language: str) -> MailTemplate | None:
    return db.session.scalar(
        select(MailTemplate).where(MailTemplate.key == key, MailTemplate.language == language)
    )


def _file_render(key: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
    with i18n.force_locale(language):
        subject = render_template(f"mail/{key}/subject.txt", **context)
        body = render_template(f"mail/{key}/body.txt", **context)
    return " ".join(subject.split()), body.strip() + "\n"


def render(key: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
    """``(subject, body)`` for ``key`` in ``language``: the stored template, else the file."""
    spec_of(key)
    row = stored(key, language)
    if row is not None:
        try:
            return " ".join(render_source(row.subject, context).split()), render_source(
                row.body, context
            )
        except (TemplateError, ValidationError):
            log.exception(
                "stored mail template %s/%s failed; using the file template", key, language
            )
    return _file_render(key, language, context)


def queue_templated(
    key: str, *, to: str, user_id: int | None, language: str | None, context: dict[str, Any]
) -> OutboxEmail | None:
    """Render ``key`` in the recipient's language and queue it (caller's transaction)."""
    subject, body = render(key, i18n.language_for(language), context)
    return mail.queue_email(to=to, subject=subject, body=body, template=key, user_id=user_id)


def overview() -> list[dict[str, Any]]:
    """Each template key with, per enabled language, whether staff edited it."""
    rows = db.session.scalars(select(MailTemplate)).all()
    edited = {(r.key, r.language): r for r in rows}
    return [
        {
            "key": spec.key,
            "description": spec.description,
            "languages": [
                {"language": lang, "row": edited.get((spec.key, lang))}
                for lang in i18n.enabled_languages()
            ],
        }
        for spec in TEMPLATES.values()
    ]


def current_text(key: str, language: str) -> tuple[str, str, bool]:
    """``(subject, body, edited)``: the stored text, else the file template in ``language``
    with the variables left as placeholders."""
    spec = spec_of(key)
    row = stored(key, _language(language))
    if row is not None:
        return row.subject, row.body, True
    placeholders = {v: "{{ " + v + " }}" for v in spec.sample}
    subject, body = _file_render(key, language, placeholders)
    return subject, body, False


def preview(key: str, language: str, subject: str, body: str) -> tuple[str, str]:
    """A draft rendered with the key's sample values (nothing stored)."""
    spec = spec_of(key)
    _language(language)
    subject, body = _validate(spec, subject, body)
    return " ".join(render_source(subject, spec.sample).split()), render_source(body, spec.sample)


def save(key: str, language: str, subject: str, body: str, *, actor: Any) -> MailTemplate:
    """Store the staff's version (validated), audited with before/after (caller commits)."""
    spec = spec_of(key)
    _language(language)
    subject, body = _validate(spec, subject, body)
    row = stored(key, language)
    before = {"subject": row.subject, "body": row.body} if row else None
    if row is None:
        row = MailTemplate(key=key, language=language, subject=subject, body=body)
        db.session.add(row)
    row.subject, row.body, row.updated_by = subject, body, getattr(actor, "id", None)
    db.session.flush()  # the audit row names it
    audit.record(
        "mail_template.save",
        actor=actor,
        target_type="mail_template",
        target_id=f"{key}:{language}",
        before=before,
        after={"subject": subject, "body": body},
    )
    return row


def reset(key: str, language: str, *, actor: Any) -> bool:
    """Delete the staff's version: the file template applies again. ``False``: none stored."""
    spec_of(key)
    row = stored(key, language)
    if row is None:
        return False
    audit.record(
        "mail_template.reset",
        actor=actor,
        target_type="mail_template",
        target_id=f"{key}:{language}",
        before={"subject": row.subject, "body": row.body},
    )
    db.session.delete(row)
    return True


def test_send(key: str, language: str, subject: str, body: str, *, actor: Any) -> OutboxEmail:
    """Queue the draft, rendered with the sample values, to the staff member's own address."""
    address = getattr(actor, "email", None)
    if not address:
        raise AccessDenied(N_("Your account has no e-mail address to send the test to"))
    rendered_subject, rendered_body = preview(key, language, subject, body)
    row = mail.queue_email(
        to=address,
        subject=f"[TEST] {rendered_subject}",
        body=rendered_body,
        template=f"test:{key}",
        user_id=getattr(actor, "id", None),
    )
    if row is None:  # pragma: no cover - only marketing templates are ever skipped
        raise ValidationError(N_("The test e-mail could not be queued"))
    audit.record(
        "mail_template.test_send",
        actor=actor,
        target_type="mail_template",
        target_id=f"{key}:{language}",
        after={"to": address, "outbox_id": row.id},
    )
    return row
