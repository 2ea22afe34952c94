"""Console forms generated from the operator settings registry (``app.core.opsettings``).

The settings page and ``/api/admin/settings`` must agree by construction: each category's
form is built from ``opsettings.SPECS`` (one field per declared setting, typed by its spec),
and what it posts is checked by ``opsettings.validate`` and stored by ``opsettings.put_many``,
the API's own path. A setting added to the registry appears on the page without touching a
template.

Only the settings the form changed are sent, so saving a category does not turn defaults into
overrides; "Reset" stores ``null`` (back to the environment's default).
"""

from __future__ import annotations

from typing import Any

from flask_babel import LazyString
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.blueprints.console.forms import without_grouping
from app.core import opsettings
from app.core.i18n import N_, translate_message

_CLASSES: dict[str, type[SettingsForm]] = {}
#: The units of ``Spec.unit``, so that they are extracted and translated.
UNITS = (
    N_("basis points"),
    N_("days"),
    N_("hours"),
    N_("messages"),
    N_("minor units"),
    N_("minutes"),
    N_("percent"),
    N_("seconds"),
)


class _Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form: Any) -> None:
        """``opsettings.validate`` says which values are unknown, in its own words."""


class SettingsForm(FlaskForm):
    category: str = ""
    specs: tuple[opsettings.Spec, ...] = ()

    def changes(self, current: dict[str, Any]) -> dict[str, Any] | None:
        """The typed values that differ from ``current`` (key -> value in force);
        ``None`` with the field errors filled when a value does not parse."""
        out: dict[str, Any] = {}
        ok = True
        for spec in self.specs:
            field = self[spec.key]
            raw = field.data
            if spec.type == "int":
                text = without_grouping(raw or "")
                if not text:
                    continue  # left empty: unchanged (Reset returns to the default)
                try:
                    raw = int(text)
                except ValueError:
                    field.errors = [*field.errors, _("Must be an integer")]
                    ok = False
                    continue
            elif spec.type == "list" and spec.choices is None:
                raw = [line.strip() for line in (raw or "").splitlines() if line.strip()]
            elif spec.type == "list":
                raw = list(raw or [])
            elif spec.type == "bool":
                raw = bool(raw)
            else:
                raw = (raw or "").strip() or None
            if raw != current.get(spec.key):
                out[spec.key] = raw
        return out if ok else None

    def show_errors(self, errors: list[dict[str, Any]]) -> None:
        for problem in errors:
            key = str(problem.get("field", "")).removeprefix("settings.")
            if key in self:
                self[key].errors = [*self[key].errors, translate_message(problem["message"])]


def _hint(spec: opsettings.Spec, extra: str = "") -> str:
    """The help text under a field, in the reader's language (built when shown)."""
    parts = [translate_message(spec.description)]
    if spec.unit:
        parts.append(_("in %(unit)s", unit=translate_message(spec.unit)))
    if spec.minimum is not None or spec.maximum is not None:
        low = "" if spec.minimum is None else f"{spec.minimum:,}"
        high = "" if spec.maximum is None else f"{spec.maximum:,}"
        parts.append(_("range %(low)s…%(high)s", low=low, high=high))
    text = "; ".join(parts) + ". " + _("Environment default: %(env)s.", env=spec.env)
    return text + (" " + translate_message(extra) if extra else "")


def _lazy_label(spec: opsettings.Spec) -> LazyString:
    return LazyString(lambda: translate_message(spec.label))


def _lazy_hint(spec: opsettings.Spec, extra: str = "") -> LazyString:
    # The form class is built once per process: label and hint are looked up when rendered.
    return LazyString(lambda: _hint(spec, extra))


def form_class(category: str) -> type[SettingsForm]:
    """The form of one category's settings (built once per process)."""
    cls = _CLASSES.get(category)
    if cls is not None:
        return cls
    specs = tuple(spec for spec in opsettings.SPECS if spec.category == category)
    attrs: dict[str, Any] = {"category": category, "specs": specs}
    for spec in specs:
        label = _lazy_label(spec)
        hint = _lazy_hint(spec)
        if spec.type == "bool":
            kw = {"data-confirm-when": "on"} if spec.key == "maintenance_mode" else {}
            attrs[spec.key] = BooleanField(label, description=hint, render_kw=kw)
        elif spec.type == "int":
            attrs[spec.key] = StringField(
                label, description=hint, render_kw={"inputmode": "numeric"}
            )
        elif spec.type == "list" and spec.choices is None:
            attrs[spec.key] = TextAreaField(
                label, description=_lazy_hint(spec, N_("One value per line."))
            )
        elif spec.type == "list":
            attrs[spec.key] = _Checkboxes(
                label, description=hint, choices=[SelectChoice(c, c) for c in spec.choices or ()]
            )
        else:
            attrs[spec.key] = StringField(
                label,
                description=hint,
                validators=[Optional(), Length(max=spec.max_length or 10_000)],
            )
    cls = _CLASSES[category] = type(f"SettingsForm_{category}", (SettingsForm,), attrs)
    return cls


def categories() -> list[str]:
    """The registry's categories in declaration order."""
    return list(dict.fromkeys(spec.category for spec in opsettings.SPECS))


def initial(described: list[dict[str, Any]], category: str) -> dict[str, Any]:
    """Form data of a category from ``opsettings.describe()``."""
    data: dict[str, Any] = {}
    for row in described:
        if row["category"] != category:
            continue
        value = row["value"]
        if value is None:
            value = ""
        elif row["type"] == "int":
            value = str(value)
        elif row["type"] == "list" and row["choices"] is None:
            value = "\n".join(value)
        data[row["key"]] = value
    return data
