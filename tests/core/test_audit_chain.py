"""The audit chain is keyed and anchored (issue 21): an edited row, a chain recomputed without
the key and a deleted tail are all caught; checkpoints are signed files outside the database."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import sqlalchemy as sa

from app.core import audit, chain
from app.core.config import ConfigError, load_config
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.wallet import integrity
from tests.prodenv import PRODUCTION_ENV

SECRET = "audit-chain-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _keyed(app, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", SECRET)
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_PREVIOUS_KEYS", [])
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))


def _rows(n: int = 3, start: int = 0) -> None:
    with atomic():
        for i in range(start, start + n):
            audit.record("test.action", target_type="thing", target_id=i, after={"n": i})


def _writable(is_postgres: bool) -> None:
    """What an attacker with the superuser (not the app role) does first."""
    if is_postgres:
        db.session.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))


def _all() -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditLog).order_by(AuditLog.id)))


def _recompute_unkeyed(rows: list[AuditLog]) -> None:
    """Rewrite every hash as plain SHA-256, the way the old chain was computed."""
    prev = audit.GENESIS
    for row in rows:
        row.prev_hash = prev
        row.hash = hashlib.sha256((prev + audit._canonical(row)).encode()).hexdigest()
        db.session.execute(
            sa.update(AuditLog)
            .where(AuditLog.id == row.id)
            .values(prev_hash=row.prev_hash, hash=row.hash, key_id=None, after=row.after)
        )
        prev = row.hash


def test_rows_are_keyed_and_verify(app):
    _rows()
    rows = _all()
    assert {r.key_id for r in rows} == {chain.key_id(SECRET)}
    # Not the unkeyed digest: without the key nobody can compute it.
    first = rows[0]
    assert (
        first.hash != hashlib.sha256((audit.GENESIS + audit._canonical(first)).encode()).hexdigest()
    )
    report = audit.verify()
    assert report.ok
    assert report.checked == 3


def test_an_edited_row_is_caught(app, is_postgres, runner):
    _rows()
    target = _all()[1]
    _writable(is_postgres)
    db.session.execute(sa.update(AuditLog).where(AuditLog.id == target.id).values(after={"n": 9}))
    report = audit.verify()
    assert (report.ok, report.broken_at) == (False, target.id)
    assert "altered" in report.problem
    out = runner.invoke(args=["jackpotx", "audit", "verify"])
    assert out.exit_code == 1
    assert "BROKEN" in out.output


def test_a_chain_recomputed_without_the_key_is_caught(app, is_postgres, runner):
    _rows()
    _writable(is_postgres)
    rows = _all()
    rows[1].after = {"n": 1000}  # the edit the attacker wants to hide
    _recompute_unkeyed(rows)
    report = audit.verify()
    assert not report.ok
    assert report.broken_at == rows[0].id
    assert "not keyed" in report.problem
    out = runner.invoke(args=["jackpotx", "audit", "verify"])
    assert out.exit_code == 1, out.output


def test_a_chain_recomputed_with_a_guessed_key_is_caught(app, is_postgres):
    _rows()
    _writable(is_postgres)
    rows = _all()
    rows[2].after = {"n": 1000}
    db.session.execute(
        sa.update(AuditLog).where(AuditLog.id == rows[2].id).values(after=rows[2].after)
    )
    # The attacker keeps our key id but signs with the development default.
    forged = hmac.new(
        b"dev-audit-chain-key-change-me-not-secret",
        (rows[2].prev_hash + audit._canonical(rows[2])).encode(),
        "sha256",
    ).hexdigest()
    db.session.execute(sa.update(AuditLog).where(AuditLog.id == rows[2].id).values(hash=forged))
    report = audit.verify()
    assert (report.ok, report.broken_at) == (False, rows[2].id)


def test_a_deleted_tail_is_caught_by_the_checkpoint(app, is_postgres, runner):
    _rows(4)
    written = runner.invoke(args=["jackpotx", "audit", "checkpoint"])
    assert written.exit_code == 0, written.output
    ok = runner.invoke(args=["jackpotx", "audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "checkpoint jx-checkpoint-" in ok.output
    rows = _all()
    _writable(is_postgres)
    db.session.execute(sa.delete(AuditLog).where(AuditLog.id >= rows[2].id))
    # Today's verify: the remaining chain is intact; only the checkpoint knows.
    assert audit.verify().ok
    latest = chain.latest_checkpoint()
    report = audit.verify(anchor=latest["audit"])
    assert not report.ok
    assert "tail deleted" in report.problem
    # Rows written after the deletion chain on the shortened tail: still caught.
    _rows(2, start=10)
    assert not audit.verify(anchor=chain.latest_checkpoint()["audit"]).ok
    out = runner.invoke(args=["jackpotx", "audit", "verify"])
    assert out.exit_code == 1
    # PostgreSQL: the head row is missing; SQLite reuses the deleted ids: it differs.
    assert "checkpoint head row" in out.output


def test_checkpoints_are_incremental_and_refuse_a_broken_segment(app, is_postgres, runner):
    _rows(2)
    first = integrity.checkpoint()
    _rows(2, start=5)
    second = integrity.checkpoint()
    data = chain.read_checkpoint(second)
    assert data["audit"]["count"] == 4
    assert data["audit"]["last_id"] == _all()[-1].id
    assert data["ledger"]["count"] == 0
    assert first != second
    # Rows since the last checkpoint are checked before the next one anchors them.
    _rows(2, start=7)
    target = _all()[-1]
    _writable(is_postgres)
    db.session.execute(sa.update(AuditLog).where(AuditLog.id == target.id).values(reason="x"))
    refused = runner.invoke(args=["jackpotx", "audit", "checkpoint"])
    assert refused.exit_code == 1
    assert "REFUSED" in refused.output
    assert chain.latest_checkpoint()["file"] == second.name


def test_an_altered_checkpoint_file_is_refused(app, runner):
    _rows(2)
    path = integrity.checkpoint()
    data = json.loads(path.read_text())
    data["audit"]["count"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(chain.CheckpointError, match="altered"):
        chain.latest_checkpoint()
    out = runner.invoke(args=["jackpotx", "audit", "verify"])
    assert out.exit_code == 1
    assert "checkpoint REFUSED" in out.output


def test_key_rotation_keeps_old_rows_verifiable(app, monkeypatch):
    _rows(2)
    new_key = "rotated-audit-chain-key-abcdefghijklmnop"
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", new_key)
    _rows(2, start=2)
    report = audit.verify()
    assert not report.ok
    assert "unknown key" in report.problem
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_PREVIOUS_KEYS", [SECRET])
    assert audit.verify().ok
    assert [r.key_id for r in _all()] == [chain.key_id(SECRET)] * 2 + [chain.key_id(new_key)] * 2
    path = integrity.checkpoint()  # signed with the new key
    assert chain.read_checkpoint(path)["key_id"] == chain.key_id(new_key)
    # The next rotation keeps both old keys for verification.
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", "third-audit-chain-key-abcdefghijklmnopq")
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_PREVIOUS_KEYS", [new_key, SECRET])
    assert chain.read_checkpoint(path)["audit"]["count"] == 4
    assert audit.verify(anchor=chain.latest_checkpoint()["audit"]).ok
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_PREVIOUS_KEYS", [])
    with pytest.raises(chain.CheckpointError, match="unknown key"):
        chain.read_checkpoint(path)


def test_rows_from_before_the_upgrade_need_one_vouching_checkpoint(app, is_postgres, runner):
    _rows(3)
    _writable(is_postgres)
    _recompute_unkeyed(_all())  # what a database written by the old code holds
    assert not audit.verify().ok
    refused = runner.invoke(args=["jackpotx", "audit", "checkpoint"])
    assert refused.exit_code == 1
    assert "--accept-legacy" in refused.output
    vouched = runner.invoke(args=["jackpotx", "audit", "checkpoint", "--accept-legacy"])
    assert vouched.exit_code == 0, vouched.output
    _rows(1, start=3)  # keyed from now on
    ok = runner.invoke(args=["jackpotx", "audit", "verify"])
    assert ok.exit_code == 0, ok.output
    # An unkeyed row after the vouched ones is a forgery.
    _recompute_unkeyed(_all())
    out = runner.invoke(args=["jackpotx", "audit", "verify"])
    assert out.exit_code == 1
    assert "not keyed" in out.output


def test_production_refuses_the_default_chain_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "AUDIT_CHAIN_KEY"}
    with pytest.raises(ConfigError, match="AUDIT_CHAIN_KEY"):
        load_config(env)
    with pytest.raises(ConfigError, match="AUDIT_CHAIN_KEY must differ"):
        load_config({**env, "AUDIT_CHAIN_KEY": env["SECRET_KEY"]})
    with pytest.raises(ConfigError, match="AUDIT_CHAIN_KEY is too weak"):
        load_config({**env, "AUDIT_CHAIN_KEY": "c" * 40})
    key = PRODUCTION_ENV["AUDIT_CHAIN_KEY"]
    assert load_config({**env, "AUDIT_CHAIN_KEY": key})["AUDIT_CHAIN_KEY"] == key
