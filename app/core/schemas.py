"""Marshmallow building blocks shared by the API schemas: money, currency, pagination."""

from __future__ import annotations

from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate

from app.core.money import MoneyError, normalize_currency, to_decimal

#: What an ``Amount`` is in the OpenAPI document (a plain ``Field`` would show ``{}``).
AMOUNT_OPENAPI = {
    "oneOf": [{"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, {"type": "number"}],
    "description": 'Major units of the currency, e.g. "50.00" (a string keeps it exact) or 50; '
    "no more decimals than the currency has.",
    "example": "50.00",
}


class Amount(fields.Field):
    """A JSON number or decimal string, kept as an exact ``Decimal``.

    The currency's exponent is checked where the currency is known (``parse_minor``); here we
    refuse what can never be money: booleans, NaN/inf (``1e309``), text, empty strings.
    """

    def __init__(self, **kwargs) -> None:
        kwargs["metadata"] = {**AMOUNT_OPENAPI, **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> Decimal:
        try:
            return to_decimal(value)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


class Currency(fields.String):
    def _deserialize(self, value, attr, data, **kwargs) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalize_currency(raw)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from None


#: A row id: what a BIGINT holds (SQLite refuses a larger Python int outright).
ID_RANGE = validate.Range(min=1, max=2**63 - 1)


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


def page_meta(page: int, limit: int, total: int) -> dict[str, int]:
    return {"page": page, "limit": limit, "total": total}


class PageMetaSchema(Schema):
    page = fields.Integer()
    limit = fields.Integer()
    total = fields.Integer()


_ENVELOPES: dict[tuple[str, bool], type[Schema]] = {}


def envelope_of(schema: type[Schema], *, many: bool = False) -> type[Schema]:
    """``{"success": true, "data": <schema>, "meta"?}`` as a schema the OpenAPI doc shows."""
    key = (schema.__name__, many)
    if key not in _ENVELOPES:
        name = f"{schema.__name__.removesuffix('Schema')}{'List' if many else ''}Envelope"
        _ENVELOPES[key] = Schema.from_dict(
            {
                "success": fields.Constant(True),
                "data": fields.Nested(schema, many=many, required=True),
                "meta": fields.Nested(PageMetaSchema, required=False),
            },
            name=name,
        )
    return _ENVELOPES[key]
