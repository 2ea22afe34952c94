"""JSON from outside, parsed with limits: nesting depth, duplicate keys, numbers kept exact.

Invariants:
* A body nested deeper than ``max_depth`` is refused with ``JSONRejected`` (a ``ValueError``),
  never a ``RecursionError`` (100,000 nested brackets used to be an HTTP 500).
* ``unique_keys=True`` refuses an object naming a key twice: in a signed body the signer and
  we could otherwise read different values (``{"amount": "1", "amount": "1000"}``).
* Numbers that are not integers stay text (``parse_float=str``) so money is parsed exactly.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from flask.json.provider import DefaultJSONProvider

#: Deeper than any body we take (the API's deepest is 3-4 levels).
MAX_DEPTH = 32


class JSONRejected(ValueError):
    """The text is not JSON we accept (malformed, too deep, a key twice)."""


class JSONTooDeep(JSONRejected):
    """Nested deeper than allowed."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JSONRejected(f"The key {key!r} appears twice in one object")
        out[key] = value
    return out


def depth(value: Any, limit: int) -> int:
    """Nesting depth of ``value`` (a scalar is 0), counting no further than ``limit + 1``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def loads(
    text: str | bytes,
    *,
    max_depth: int = MAX_DEPTH,
    unique_keys: bool = False,
    exact_numbers: bool = True,
) -> Any:
    """``json.loads`` with the limits above; raises ``JSONRejected`` for anything refused."""
    try:
        value = json.loads(
            text,
            parse_float=str if exact_numbers else None,
            parse_constant=str if exact_numbers else None,
            object_pairs_hook=_unique if unique_keys else None,
        )
    except RecursionError:
        raise JSONTooDeep(f"The JSON is nested deeper than {max_depth} levels") from None
    except JSONRejected:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise JSONRejected(f"The body is not valid JSON: {exc}") from None
    if depth(value, max_depth) > max_depth:
        raise JSONTooDeep(f"The JSON is nested deeper than {max_depth} levels")
    return value


class LimitedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with the nesting limit on every parsed request body: a body too
    deep is a 400 like any malformed JSON (``request.get_json`` turns ``ValueError`` into
    one), never a ``RecursionError`` 500."""

    @staticmethod
    def default(o: Any) -> Any:
        """Dates and times as ISO-8601 everywhere (Flask's default writes RFC 1123)."""
        if isinstance(o, datetime | date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        return loads(s, exact_numbers=False)
