"""The OpenAPI document tells the truth about errors.

flask-smorest documents its own ``Error`` schema (``code`` an integer, ``status`` a string, no
``success``) and a ``422`` for invalid arguments; the API answers every error with the envelope of
``app.core.errors`` (``{"success": false, "status", "code", "message", "errors"?}``) and a ``400``
for invalid arguments. ``JxApi`` documents that envelope, lists the common error answers on every
operation, and writes numeric bounds as numbers (a ``Decimal`` range would otherwise appear as the
string ``"0E-8"``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import INCLUDE, Schema, fields

#: Error answers any operation may give, documented on every operation (``default`` covers the
#: rest). 401 is listed everywhere: an invalid or expired bearer token is refused even where a
#: token is optional.
COMMON_ERROR_RESPONSES: dict[int, str] = {
    400: "The request is invalid (VALIDATION_ERROR, or a domain refusal such as "
    "INSUFFICIENT_BALANCE)",
    401: "Authentication required, or the token is invalid, expired or revoked",
    403: "The caller may not do this (ACCESS_DENIED, SELF_EXCLUDED, ...)",
    404: "Not found",
    405: "Method not allowed (the Allow header lists the allowed ones)",
    409: "Conflict with the current state",
    413: "The request body is too large",
    415: "Unsupported media type",
    422: "The Idempotency-Key was used for another request (IDEMPOTENCY_KEY_REUSED)",
    429: "Too many requests (Retry-After says when to retry)",
    500: "Unexpected error (masked outside development; the correlation id is logged)",
    503: "Maintenance, or a dependency is unavailable (Retry-After says when to retry)",
}


#: ``@blp.doc(**{WIRE_FORMAT: True})``: the operation answers in another party's protocol (game
#: providers' callbacks: JSON, form or XML, errors included), never in the API envelope.
WIRE_FORMAT = "x-jx-wire-format"
WIRE_FORMAT_RESPONSE: dict[str, Any] = {
    "description": "The calling protocol's own answer (see docs/providers.md), errors included",
    "content": {"*/*": {"schema": {}}},
}


class ErrorItemSchema(Schema):
    field = fields.String(required=True, metadata={"example": "amount"})
    message = fields.String(required=True, metadata={"example": "Must be greater than 0."})


class ErrorSchema(Schema):
    """What every error answer carries (``app.core.errors.envelope``); some errors add
    fields of their own (e.g. a lockout's ``retry_after``), so extra keys are allowed."""

    class Meta:
        unknown = INCLUDE

    success = fields.Boolean(required=True, metadata={"enum": [False]})
    status = fields.Integer(required=True, metadata={"example": 400})
    code = fields.String(required=True, metadata={"example": "VALIDATION_ERROR"})
    message = fields.String(required=True, metadata={"example": "Validation failed"})
    errors = fields.List(fields.Nested(ErrorItemSchema))


class _ErrorResponses(BasePlugin):
    """Adds the common error answers to every operation and drops flask-smorest's ``422``
    for invalid arguments (they answer 400)."""

    def operation_helper(self, path=None, operations=None, **kwargs: Any) -> None:
        for operation in (operations or {}).values():
            if operation.pop(WIRE_FORMAT, None):
                operation["responses"] = {"default": dict(WIRE_FORMAT_RESPONSE)}
                continue
            responses = operation.setdefault("responses", {})
            if responses.get("422") == "UNPROCESSABLE_ENTITY" or responses.get(422) == (
                "UNPROCESSABLE_ENTITY"
            ):
                responses.pop("422", None)
                responses.pop(422, None)
            for status in COMMON_ERROR_RESPONSES:
                if str(status) not in responses and status not in responses:
                    responses[str(status)] = f"JX_ERROR_{status}"


def _numeric_bounds(
    converter: Any, field: Any, ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """``minimum``/``maximum`` as JSON numbers (``Decimal`` bounds are rendered as strings)."""
    out: dict[str, Any] = {}
    for key in ("minimum", "maximum"):
        value = ret.get(key)
        if isinstance(value, Decimal | str):
            number = Decimal(value)
            out[key] = int(number) if number == number.to_integral_value() else float(number)
    return out


class JxApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, **kwargs: Any) -> None:
        kwargs["extra_plugins"] = [*(kwargs.get("extra_plugins") or ()), _ErrorResponses()]
        super()._init_spec(**kwargs)
        self.ma_plugin.converter.add_attribute_function(_numeric_bounds)
        for status, description in COMMON_ERROR_RESPONSES.items():
            response = {"description": description, "schema": self.ERROR_SCHEMA}
            prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(f"JX_ERROR_{status}", response, lazy=True)
