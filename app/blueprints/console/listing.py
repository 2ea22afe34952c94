"""Sorting, filtering and pagination for console tables, driven by the query string.

A view declares which columns may be sorted (by a public name, never a raw column name from
the request) and hands its filtered ``select()`` to ``paginate``; the ``table`` macros in
``console/components/table.html`` render the headers, rows and pager from the ``Listing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import request, url_for
from sqlalchemy import Select, func, or_, select

from app.core.db import parse_row_id
from app.core.extensions import db
from app.identity.models import User

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default
    return min(max(value, low), high)


@dataclass
class Listing:
    items: list[Any]
    total: int
    page: int
    per_page: int
    sort: str
    direction: str
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)

    def _url(self, **changes: Any) -> str:
        endpoint = request.endpoint
        if endpoint is None:  # a Listing is only rendered by the routed view that built it
            raise RuntimeError("Listing URLs need a request matched to an endpoint")
        args: dict[str, Any] = {k: v for k, v in self.filters.items() if v}
        args.update(sort=self.sort, dir=self.direction, page=self.page)
        if self.per_page != DEFAULT_PER_PAGE:
            args["per_page"] = self.per_page
        args.update(changes)
        return url_for(endpoint, **(request.view_args or {}), **args)

    def page_url(self, page: int) -> str:
        return self._url(page=page)

    def sort_url(self, column: str) -> str:
        direction = "desc" if self.sort == column and self.direction == "asc" else "asc"
        return self._url(sort=column, dir=direction, page=1)

    def sort_state(self, column: str) -> str | None:
        """``ascending`` / ``descending`` for aria-sort, ``None`` when not sorted by it."""
        if column != self.sort:
            return None
        return "ascending" if self.direction == "asc" else "descending"


def paginate(
    query: Select,
    *,
    sortable: Mapping[str, Any],
    default_sort: str,
    default_direction: str = "desc",
    filters: Mapping[str, str] | None = None,
    tiebreak: Any = None,
) -> Listing:
    sort = request.args.get("sort", default_sort)
    if sort not in sortable:
        sort = default_sort
    direction = request.args.get("dir", default_direction)
    if direction not in ("asc", "desc"):
        direction = default_direction
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    pages = max(1, -(-(total or 0) // per_page))
    page = _int_arg("page", 1, 1, pages)
    column = sortable[sort]
    order = [column.asc() if direction == "asc" else column.desc()]
    if tiebreak is not None:
        order.append(tiebreak.asc() if direction == "asc" else tiebreak.desc())
    rows = db.session.scalars(
        query.order_by(*order).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return Listing(
        items=list(rows),
        total=total or 0,
        page=page,
        per_page=per_page,
        sort=sort,
        direction=direction,
        filters=dict(filters or {}),
    )


def paged(
    fetch,
    *,
    filters: Mapping[str, str] | None = None,
    sort: str = "created",
    direction: str = "desc",
) -> Listing:
    """A Listing over a service's own ``fetch(offset, limit) -> (rows, total)`` query (its
    order is the service's; the pager and filters work as for ``paginate``)."""
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    page = _int_arg("page", 1, 1, 1_000_000)
    rows, total = fetch((page - 1) * per_page, per_page)
    pages = max(1, -(-total // per_page))
    if page > pages:
        page = pages
        rows, total = fetch((page - 1) * per_page, per_page)
    return Listing(
        items=list(rows),
        total=total,
        page=page,
        per_page=per_page,
        sort=sort,
        direction=direction,
        filters=dict(filters or {}),
    )


def users_by_id(ids) -> dict[int, Any]:
    """The users behind a page of rows, in one query (ids may repeat or be None)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(wanted)))}


#: Filter value for "no such player": matches no row (ids are positive).
NO_PLAYER = -1


def find_player_id(text: str) -> int | None:
    """A player named by staff: id, username or e-mail (case-insensitive). ``None`` when the
    text is empty, ``NO_PLAYER`` when nobody matches."""
    text = (text or "").strip()[:255]
    if not text:
        return None
    row_id = parse_row_id(text)
    if row_id is not None:
        return row_id
    lowered = text.lower()
    found = db.session.scalar(
        select(User.id)
        .where(or_(func.lower(User.username) == lowered, func.lower(User.email) == lowered))
        .limit(1)
    )
    return found if found is not None else NO_PLAYER


def player_filter(args: Mapping[str, str]) -> tuple[str, int | None]:
    """The player filter of a list: ``player`` (username, e-mail or id, what the picker
    sends) or ``user_id`` (links from a profile). Returns ``(text to show, id or None)``."""
    text = (args.get("player") or args.get("user_id") or "").strip()[:255]
    return text, find_player_id(text)
