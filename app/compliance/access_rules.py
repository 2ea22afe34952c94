"""Network access rules: IP block/allow lists and restricted countries, stored as a setting.

Invariants:
* The rules are one ``settings`` row (``security.access_rules``), changed with its audit entry.
* ``check_player`` decides for the player API: an address on the allow list always passes;
  otherwise a blocked address or a restricted country is refused. ``check_staff`` applies the
  staff allow list (empty = any address) to ``/api/admin``.
* The country comes from a header set by a trusted proxy (``COUNTRY_HEADER``); without the
  header no country rule applies.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from app.core import settings
from app.core.errors import AccessDenied, ValidationError

KEY = "security.access_rules"
LISTS = ("ip_blocklist", "ip_allowlist", "admin_ip_allowlist")
EMPTY: dict[str, list[str]] = {
    "ip_blocklist": [],
    "ip_allowlist": [],
    "admin_ip_allowlist": [],
    "restricted_countries": [],
}


def get_rules(*, fresh: bool = True) -> dict[str, list[str]]:
    stored = (settings.get(KEY) if fresh else settings.cached(KEY)) or {}
    return {name: list(stored.get(name) or []) for name in EMPTY}


def _networks(values: list[str], field: str) -> list[str]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise ValidationError.field(field, f"{value!r} is not an IP address or CIDR") from None
    return sorted(set(out))


def set_rules(changes: dict[str, Any], *, actor: Any, reason: str | None = None) -> dict:
    """Replace the given lists (others unchanged); caller owns the transaction."""
    rules = get_rules()
    for name, values in changes.items():
        if name not in EMPTY:
            raise ValidationError.field(name, "Unknown rule list")
        if not isinstance(values, list):
            raise ValidationError.field(name, "Must be a list")
        if name == "restricted_countries":
            codes = sorted({str(v).strip().upper() for v in values})
            bad = [c for c in codes if len(c) != 2 or not c.isalpha()]
            if bad:
                raise ValidationError.field(name, f"Not ISO-3166 alpha-2 codes: {', '.join(bad)}")
            rules[name] = codes
        else:
            rules[name] = _networks(values, name)
    settings.put(KEY, rules, actor=actor, reason=reason)
    return rules


def _matches(ip: str | None, networks: list[str]) -> bool:
    if not ip or not networks:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for network in networks:
        net = ipaddress.ip_network(network, strict=False)
        if address.version == net.version and address in net:
            return True
    return False


def check_player(ip: str | None, country: str | None, rules: dict | None = None) -> None:
    rules = rules or get_rules(fresh=False)
    if _matches(ip, rules["ip_allowlist"]):
        return
    if _matches(ip, rules["ip_blocklist"]):
        raise AccessDenied("Access from your network is not allowed", reason="ip_blocked")
    if country and country.upper() in rules["restricted_countries"]:
        raise AccessDenied("JackpotX is not available in your country", reason="country_restricted")


def check_staff(ip: str | None, rules: dict | None = None) -> None:
    rules = rules or get_rules(fresh=False)
    if rules["admin_ip_allowlist"] and not _matches(ip, rules["admin_ip_allowlist"]):
        raise AccessDenied(
            "The staff API is not reachable from this address", reason="ip_not_allowed"
        )
