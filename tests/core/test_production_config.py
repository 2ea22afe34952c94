"""Production refuses weak, shared or malformed secrets and loopback outbound calls, and warns
about what it allows but an operator should know (issue 21, docs/security.md)."""

from __future__ import annotations

import logging
import secrets

import pytest
from cryptography.fernet import Fernet

from app import create_app
from app.core import dbroles
from app.core.config import (
    LOOPBACK_IN_PRODUCTION_ACK,
    ConfigError,
    fernet_key_problem,
    load_config,
    secret_weakness,
)
from tests.prodenv import PRODUCTION_ENV

SECRETS = ("SECRET_KEY", "JWT_SECRET_KEY", "AUDIT_CHAIN_KEY")


def test_the_fixture_environment_starts():
    assert load_config(PRODUCTION_ENV)["ENV"] == "production"


@pytest.mark.parametrize("name", SECRETS)
@pytest.mark.parametrize(
    "weak",
    [
        "a" * 40,
        "abcd" * 10,
        "Xy7#Xy7#Xy7#Xy7#Xy7#Xy7#Xy7#Xy7#Xy7#Xy7#",
        "a" * 30 + "bcdefghijk",  # 11 distinct, ~66 bits
        "short-but-random-" + "Q2x9",
        "0123456789" * 4,
    ],
)
def test_a_low_entropy_secret_is_refused(name, weak):
    with pytest.raises(ConfigError, match=f"{name} is too weak"):
        load_config({**PRODUCTION_ENV, name: weak})


def test_generated_secrets_pass_the_rule():
    for _ in range(200):
        assert secret_weakness(secrets.token_urlsafe(32)) is None
        assert secret_weakness(secrets.token_hex(16)) is None  # 32 hex digits: 128 bits
        assert secret_weakness(secrets.token_hex(32)) is None
    assert secret_weakness("correct horse battery staple of a long passphrase") is None


def test_secret_key_and_jwt_key_must_differ():
    same = PRODUCTION_ENV["SECRET_KEY"]
    with pytest.raises(ConfigError, match="SECRET_KEY and JWT_SECRET_KEY must differ"):
        load_config({**PRODUCTION_ENV, "JWT_SECRET_KEY": same})


@pytest.mark.parametrize(
    "key",
    [
        "k" * 44,  # not base64 of 32 bytes
        "not-a-key",
        "",
        "ZGV2LWVuY3J5cHRpb24ta2V5LWNoYW5nZS1tZS0w",  # 30 bytes
        "a" * 43 + "=",  # a Fernet key, but three repeated bytes
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  # 32 zero bytes
        "ww5ViADKqduPZOEmuz9vuhyDFpEK-nHj5AClU4prTHQ=\x00",
    ],
)
def test_an_encryption_key_that_is_no_usable_fernet_key_is_refused(key):
    with pytest.raises(ConfigError, match="ENCRYPTION_KEY is"):
        load_config({**PRODUCTION_ENV, "ENCRYPTION_KEY": key})


def test_generated_fernet_keys_pass():
    for _ in range(200):
        assert fernet_key_problem(Fernet.generate_key().decode()) is None


def test_development_and_testing_keep_their_defaults():
    assert load_config({})["ENV"] == "development"
    assert load_config({"ENV": "testing", "SECRET_KEY": "a" * 40})["SECRET_KEY"] == "a" * 40


def test_production_refuses_loopback_outbound_unless_a_staging_server_says_so():
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOW_LOOPBACK must be off"):
        load_config({**PRODUCTION_ENV, "OUTBOUND_ALLOW_LOOPBACK": "true"})
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOW_LOOPBACK must be off"):
        load_config(
            {
                **PRODUCTION_ENV,
                "OUTBOUND_ALLOW_LOOPBACK": "true",
                "OUTBOUND_LOOPBACK_IN_PRODUCTION": "yes",
            }
        )
    staging = load_config(
        {
            **PRODUCTION_ENV,
            "OUTBOUND_ALLOW_LOOPBACK": "true",
            "OUTBOUND_LOOPBACK_IN_PRODUCTION": LOOPBACK_IN_PRODUCTION_ACK,
        }
    )
    assert staging["OUTBOUND_ALLOW_LOOPBACK"] is True
    assert load_config({"OUTBOUND_ALLOW_LOOPBACK": "true"})["OUTBOUND_ALLOW_LOOPBACK"] is True


def _production_app(database_url, redis_url, tmp_path, **extra):
    if not redis_url or not database_url.startswith("postgresql"):
        pytest.skip("the production profile needs PostgreSQL and Redis")
    return create_app(
        {
            **{k: v for k, v in PRODUCTION_ENV.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "INSTANCE_DIR": str(tmp_path),
            **extra,
        }
    )


def test_an_empty_outbound_allow_list_is_a_warning_at_start(
    database_url, redis_url, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="jackpotx.config")
    _production_app(database_url, redis_url, tmp_path)
    assert any("OUTBOUND_ALLOWED_HOSTS is empty" in r.getMessage() for r in caplog.records)
    caplog.clear()
    _production_app(database_url, redis_url, tmp_path, OUTBOUND_ALLOWED_HOSTS=["api.stripe.com"])
    assert not any("OUTBOUND_ALLOWED_HOSTS" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_a_superuser_login_is_a_warning_and_a_dead_database_is_not_fatal(
    requires_postgres, database_url, caplog
):
    import sqlalchemy as sa

    # The test suite logs in as the PostgreSQL superuser: exactly what production must not.
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    caplog.set_level(logging.WARNING, logger="jackpotx.dbroles")
    warnings = dbroles.warn_if_privileged(engine)
    assert len(warnings) == 1
    assert "superuser" in warnings[0]
    assert any("can rewrite the ledger" in r.getMessage() for r in caplog.records)
    caplog.clear()
    dead = sa.create_engine(
        "postgresql+psycopg2://nobody@127.0.0.1:1/none", poolclass=sa.pool.NullPool
    )
    assert dbroles.warn_if_privileged(dead) == []
    assert any("could not check" in r.getMessage() for r in caplog.records)
