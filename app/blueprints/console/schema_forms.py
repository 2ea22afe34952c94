"""Console forms built from the staff JSON API's marshmallow schemas.

The console and ``/api/admin/...`` must accept the same fields with the same rules, so a
console form is not written by hand: ``form_class(schema)`` makes a Flask-WTF form (CSRF
included) with one text-ish input per schema field, and ``SchemaForm.payload()`` turns the
posted text into the API's JSON shape and validates it with that very schema. A field added
to the API schema appears in the form, validated, without touching a template.

Field hints come from the schema field's ``metadata`` (``label``, ``description``,
``widget="textarea"``); the label otherwise derives from the field name. The form never
validates anything itself (WTForms fields are plain text with ``Optional``): the schema, the
API's own conversion and then the service decide, and their messages are shown inline.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as SchemaError
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from app.blueprints.console.forms import without_grouping
from app.blueprints.console.wording import human
from app.core.errors import AppError

_CLASSES: dict[tuple[type[Schema], tuple[str, ...]], type[SchemaForm]] = {}


class SchemaForm(FlaskForm):
    """A form whose fields mirror ``schema_fields``; see ``form_class``."""

    schema_cls: type[Schema]
    schema_fields: tuple[str, ...] = ()
    form_error: str | None = None

    # --- reading the post ---------------------------------------------------------------

    def _raw(self, name: str) -> Any:
        data = self[name].data
        return data.strip() if isinstance(data, str) else data

    def payload(self, *, initial: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The posted values loaded by the API schema (what the API view gets as ``args``).

        With ``initial`` (an edit form's starting values) only the fields the user changed
        are sent, like a client sending a partial ``PUT``: a service that reacts to a field
        being present (a jackpot's seed redraws its drop point) is not triggered by an edit
        of another field. Returns ``None`` and fills the field errors when invalid.
        """
        schema = self.schema_cls()
        data: dict[str, Any] = {}
        for name in self.schema_fields:
            field = schema.fields[name]
            unchanged = initial is not None and _same(
                self._raw(name), to_form_value(field, initial.get(name))
            )
            if unchanged:
                continue
            try:
                present, value = _from_form(field, self._raw(name))
            except ValueError as exc:
                self[name].errors = [*self[name].errors, str(exc)]
                continue
            if present:
                data[name] = value
        # Every problem at once: the schema checks the rest even when a field's text could
        # not be read; a field keeps only its first complaint.
        unreadable = {name for name in self.schema_fields if self[name].errors}
        try:
            loaded = schema.load(data, partial=initial is not None or tuple(unreadable))
        except SchemaError as exc:
            messages = exc.messages
            if isinstance(messages, dict):
                messages = {k: v for k, v in messages.items() if k not in unreadable}
            self.add_errors(messages)
            return None
        return None if unreadable else loaded

    # --- errors -------------------------------------------------------------------------

    def add_errors(self, messages: Any) -> None:
        """marshmallow messages (``{field: [..]}``) or AppError ``errors`` (``[{field,
        message}]``) next to their fields; anything else becomes the form's error."""
        items: list[tuple[str, str]] = []
        if isinstance(messages, dict):
            for key, value in messages.items():
                items.extend((key, text) for text in _flatten(value))
        else:
            items.extend((e.get("field", ""), e.get("message", "")) for e in messages or [])
        labels = {n: self[n].label.text for n in self.schema_fields}
        for name, text in items:
            if name in self.schema_fields:
                shown = human(text, labels[name], labels)
                if shown not in self[name].errors:
                    self[name].errors = [*self[name].errors, shown]
            else:
                shown = human(text, "", labels)
                self.form_error = shown if not self.form_error else f"{self.form_error} {shown}"

    def submit(self, save, *, initial: dict[str, Any] | None = None):
        """A POST of this form: validate, build the payload (only the changed fields when
        ``initial`` is given), call ``save(args)``; a service refusal goes next to its field.

        Returns ``(result, args)`` once saved, ``(UNCHANGED, {})`` for an edit that changed
        nothing, and ``None`` when the page must be shown again (GET, or errors)."""
        if not self.validate_on_submit():
            return None
        args = self.payload(initial=initial)
        if args is None:
            return None
        if initial is not None and not args:
            return UNCHANGED, args
        try:
            return save(args), args
        except AppError as exc:
            self.add_app_error(exc)
            return None

    def add_app_error(self, exc: AppError) -> None:
        before = sum(len(self[n].errors) for n in self.schema_fields)
        self.add_errors(exc.errors or [])
        if sum(len(self[n].errors) for n in self.schema_fields) == before and not self.form_error:
            self.form_error = exc.message

    @property
    def has_errors(self) -> bool:
        return bool(self.form_error) or any(self[n].errors for n in self.schema_fields)


#: What ``SchemaForm.submit`` returns for an edit that changed nothing.
UNCHANGED = object()


def saved_message(kind: str, result: Any, args: dict[str, Any]) -> str:
    """The flash after ``SchemaForm.submit`` of an edit form."""
    if result is UNCHANGED:
        return _("Nothing changed.")
    return _(
        "%(kind)s %(name)s saved (%(fields)s).",
        kind=kind,
        name=result.name,
        fields=", ".join(sorted(args)),
    )


def form_class(schema_cls: type[Schema], *, exclude: tuple[str, ...] = ()) -> type[SchemaForm]:
    """The Flask-WTF form for ``schema_cls`` (built once, cached)."""
    key = (schema_cls, exclude)
    if key not in _CLASSES:
        schema = schema_cls()
        attrs: dict[str, Any] = {"schema_cls": schema_cls}
        names = [n for n, f in schema.fields.items() if n not in exclude and not f.dump_only]
        for name in names:
            attrs[name] = _wtf_field(name, schema.fields[name])
        attrs["schema_fields"] = tuple(names)
        _CLASSES[key] = type(f"{schema_cls.__name__}Form", (SchemaForm,), attrs)
    return _CLASSES[key]


def schema_form(schema_cls: type[Schema], values: dict[str, Any] | None = None) -> SchemaForm:
    """The form for this request: the posted data on POST, ``values`` (API-shaped) on GET."""
    form_cls = form_class(schema_cls)
    if request.method == "POST":
        return form_cls()
    return form_cls(data=initial_data(schema_cls, values or {}))


def initial_data(schema_cls: type[Schema], values: dict[str, Any]) -> dict[str, Any]:
    """API-shaped starting values → the strings/booleans the form shows."""
    schema = schema_cls()
    return {
        name: to_form_value(schema.fields[name], value)
        for name, value in values.items()
        if name in schema.fields
    }


# --- schema field <-> form text ------------------------------------------------------------


def _label(name: str, field: fields.Field) -> str:
    label = field.metadata.get("label") or name.replace("_", " ").capitalize()
    if isinstance(field, fields.DateTime):
        label += " (UTC)"
    return label + ("" if not field.required else " *")


def _choices(field: fields.Field) -> list[str] | None:
    for rule in field.validators:
        if isinstance(rule, validate.OneOf):
            return [str(c) for c in rule.choices]
    return None


def _help(field: fields.Field) -> str | None:
    text = field.metadata.get("description")
    if isinstance(field, fields.List):
        text = text or "Comma-separated."
    elif isinstance(field, fields.Dict):
        text = text or "One key=value per line."
    return text


def _wtf_field(name: str, field: fields.Field):
    kw: dict[str, Any] = {"validators": [Optional()], "description": _help(field)}
    label = _label(name, field)
    if isinstance(field, fields.Boolean):
        return BooleanField(label, description=kw["description"])
    choices = _choices(field)
    if choices is not None:
        blank = [] if field.required else [SelectChoice("", "—")]
        options = blank + [SelectChoice(c, c.replace("_", " ")) for c in choices]
        return SelectField(label, choices=options, **kw)
    if isinstance(field, fields.Dict) or field.metadata.get("widget") == "textarea":
        return TextAreaField(label, render_kw={"rows": 3}, **kw)
    render: dict[str, Any] = {"autocomplete": "off"}
    if isinstance(field, fields.DateTime):
        render["type"] = "datetime-local"
    elif isinstance(field, fields.Integer):
        render["inputmode"] = "numeric"
    elif field.__class__.__name__ == "Amount":
        render["inputmode"] = "decimal"
        unit = "In the currency above, e.g. 25.00 (1,000.00 works too)."
        kw["description"] = f"{kw['description']} {unit}" if kw["description"] else unit
    return StringField(label, render_kw=render, **kw)


def to_form_value(field: fields.Field, value: Any) -> Any:
    """One API value as the form shows it (``None`` → empty)."""
    if isinstance(field, fields.Boolean):
        return bool(value)
    if value is None:
        return ""
    if isinstance(field, fields.List):
        return ", ".join(str(v) for v in value)
    if isinstance(field, fields.Dict):
        return "\n".join(f"{k}={v}" for k, v in (value or {}).items())
    if isinstance(field, fields.DateTime) and isinstance(value, str):
        value = datetime.fromisoformat(value)  # an API-shaped (ISO) value
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date | Decimal | int):
        return str(value)
    return str(value)


def _same(raw: Any, initial: Any) -> bool:
    if isinstance(initial, bool) or isinstance(raw, bool):
        return bool(raw) == bool(initial)
    return (raw or "") == (initial or "")


def _from_form(field: fields.Field, raw: Any) -> tuple[bool, Any]:
    """Posted text → ``(present, json value)``. Empty: ``None`` where the API allows it,
    otherwise left out (the schema reports a missing required field)."""
    if isinstance(field, fields.Boolean):
        return True, bool(raw)
    if raw in (None, ""):
        return (True, None) if field.allow_none else (False, None)
    if field.__class__.__name__ == "Amount" and isinstance(raw, str):
        return True, without_grouping(raw)
    if isinstance(field, fields.List):
        return True, [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(field, fields.Dict):
        out: dict[str, Any] = {}
        for line in raw.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValueError(f"Write key=value on each line (not {line.strip()[:40]!r})")
            value = value.strip()
            out[key.strip()] = int(value) if re.fullmatch(r"-?[0-9]{1,18}", value) else value
        return True, out
    if isinstance(field, fields.DateTime):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            return True, raw  # the schema answers "Not a valid datetime."
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # the console shows and takes UTC
        return True, moment.isoformat()
    return True, raw


def _flatten(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [f"{k}: {text}" for k, v in value.items() for text in _flatten(v)]
    return [text for v in value for text in _flatten(v)]
