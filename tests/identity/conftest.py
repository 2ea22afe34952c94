"""Identity test fixtures: each test starts with an empty development SMS outbox."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _empty_sms_dir(app):
    shutil.rmtree(Path(app.config["SMS_DIR"]), ignore_errors=True)
    return
