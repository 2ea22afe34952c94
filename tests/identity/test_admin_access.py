"""Every staff JSON endpoint is guarded: a role without its permission gets 403, always.

This walks the URL map, so an endpoint added later without a guard fails here.
"""

from __future__ import annotations

import re

import pytest

from app.identity.access import ROLES
from app.identity.models import ADMIN, AGENT, MANAGER, PLAYER, SUPPORT

#: Staff login/refresh are how one gets a token; they authenticate by credentials instead.
UNGUARDED = {"/api/admin/auth/login", "/api/admin/auth/refresh"}


def _admin_endpoints(app) -> list[tuple[str, str, str | None]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/admin/") or rule.rule in UNGUARDED:
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            handler = getattr(view_class, method.lower(), None) if view_class else view
            permission = getattr(handler, "required_permission", None)
            path = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
            found.append((method, path, permission))
    return found


def test_every_admin_endpoint_names_its_permission(app):
    endpoints = _admin_endpoints(app)
    assert len(endpoints) > 40
    # /api/admin/auth/{me,logout} act on the caller's own staff session (login_required).
    unguarded = [
        (m, p) for m, p, perm in endpoints if perm is None and not p.startswith("/api/admin/auth/")
    ]
    assert unguarded == []


@pytest.mark.parametrize("role_id", [PLAYER, AGENT, SUPPORT, MANAGER, ADMIN])
def test_roles_without_the_permission_are_refused_everywhere(
    app, client, factory, token_for, role_id
):
    actor = factory.user(role_id)
    headers = token_for(actor)
    granted = ROLES[role_id][2]
    checked = 0
    for method, path, permission in _admin_endpoints(app):
        if permission is None or "*" in granted or permission in granted:
            continue
        response = client.open(path, method=method, json={}, headers=headers)
        assert response.status_code == 403, (method, path, permission, response.get_json())
        assert response.get_json()["code"] == "ACCESS_DENIED"
        checked += 1
    if role_id != ADMIN:
        assert checked > 0
