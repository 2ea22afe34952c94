"""Settings the production profile accepts (app.core.config.validate_production): strong,
distinct secrets and a real Fernet key. Fixed values, so a failing test reads the same twice;
never used outside tests."""

from __future__ import annotations

PRODUCTION_SECRETS = {
    "SECRET_KEY": "Z1x4BoqUPAOIE2W73nHPXGFb2I-K-S4SdMzWz8rYI_nU44Zf",
    "JWT_SECRET_KEY": "4LOpG2d8cZDICiUCkiy7sCdtoiJXPgJbadRVv4PORSgxa-m9",
    "ENCRYPTION_KEY": "ww5ViADKqduPZOEmuz9vuhyDFpEK-nHj5AClU4prTHQ=",
    "AUDIT_CHAIN_KEY": "O39egv9yW44hCyIIMSLmPKirm-saDViI4ZC7BQbnpCleFkz_",
}

#: The environment of a production-profile process (no real services are contacted by
#: ``load_config``): the secrets above, PostgreSQL and Redis URLs.
PRODUCTION_ENV = {
    "ENV": "production",
    **PRODUCTION_SECRETS,
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DATABASE_URL": "postgresql://u@db/jackpotx",
}
