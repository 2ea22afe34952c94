"""Switch the operator's sign-up mode in a test (audited like any settings change)."""

from __future__ import annotations

from app.core import opsettings
from app.core.db import atomic


def set_mode(factory, mode: str) -> None:
    admin = factory.staff("admin")
    with atomic():
        opsettings.put_many({"signup_mode": mode}, actor=admin, reason="test")
