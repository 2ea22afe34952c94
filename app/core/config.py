"""Settings from the environment.

Three profiles: ``development`` (the embedded default: SQLite file, in-process jobs, in-memory
limiter, one-process Socket.IO), ``testing`` and ``production`` (PostgreSQL + Redis, refuses
development secrets). Every knob is an environment variable with a safe development default.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__version__ = "0.1.0"
BASE_DIR = Path(__file__).resolve().parent.parent

#: Values that must never reach production; the factory refuses to start with them.
DEV_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 - refused in production
DEV_JWT_SECRET_KEY = "dev-jwt-secret-key-change-me-please"  # noqa: S105 - refused in production
DEV_ENCRYPTION_KEY = "ZGV2LWVuY3J5cHRpb24ta2V5LWNoYW5nZS1tZS0wMDA="
DEV_AUDIT_CHAIN_KEY = "dev-audit-chain-key-change-me-not-secret"
#: The phrase ``SANDBOX_GATEWAY_IN_PRODUCTION`` must hold for the production profile to start
#: with the sandbox gateway on: only where no real player can deposit (load and fault tests).
SANDBOX_IN_PRODUCTION_ACK = "no-real-players-deposits-are-not-paid"
#: The phrase ``OUTBOUND_LOOPBACK_IN_PRODUCTION`` must hold for the production profile to start
#: with ``OUTBOUND_ALLOW_LOOPBACK`` on: a staging server the conformance runner plays against.
LOOPBACK_IN_PRODUCTION_ACK = "staging-loopback-services-are-trusted"
#: A production secret (SECRET_KEY, JWT_SECRET_KEY, AUDIT_CHAIN_KEY) needs at least this many
#: characters, this many distinct ones, and this many bits of estimated entropy (the Shannon
#: entropy of its own characters times its length: it underestimates a random key, ~112 bits
#: for 32 random hex digits and never below ~90 in 200,000 draws), and no repeated block.
#: ``secrets.token_urlsafe(32)`` and ``secrets.token_hex(16)`` pass; ``"a" * 40``,
#: ``"abcd" * 10`` or ``"a" * 30 + "bcdefghijk"`` do not.
SECRET_MIN_LENGTH = 32
#: Low enough that a random hex secret passes: 32 hex digits show fewer than 10 distinct ones
#: once in ~7,000 draws (`openssl rand -hex 16` was refused), fewer than 6 practically never.
SECRET_MIN_DISTINCT = 6
SECRET_MIN_BITS = 80
#: Distinct byte values the 32 bytes of a production ENCRYPTION_KEY must have (random keys
#: have ~30; the chance of fewer than 16 is below 1e-9).
FERNET_MIN_DISTINCT_BYTES = 16
#: The phrase ``SMS_FILE_IN_PRODUCTION`` must hold for production to write SMS to files
#: instead of sending them (no player receives a code: only where no real player signs in).
SMS_FILE_IN_PRODUCTION_ACK = "no-real-players-sms-are-not-sent"
SMS_BACKENDS = ("file", "twilio")


class ConfigError(RuntimeError):
    """The environment does not describe a safe configuration."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _list(env: Mapping[str, str], name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env.get(name, default).split(",") if item.strip()]


def normalize_database_url(url: str) -> str:
    """Map plain ``postgres(ql)://`` URLs onto the psycopg2 driver we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


_OIDC_KEYS = {"issuer", "client_id", "client_secret", "scopes", "label"}


def _oidc_providers(raw: str) -> dict[str, dict[str, str]]:
    """``OIDC_PROVIDERS`` parsed and checked (names ``[a-z0-9_-]``, https issuers unless
    loopback, the three required keys)."""
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"OIDC_PROVIDERS is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ConfigError("OIDC_PROVIDERS must be a JSON object of providers")
    out: dict[str, dict[str, str]] = {}
    for name, entry in parsed.items():
        if not re.fullmatch(r"[a-z0-9_-]{1,40}", str(name)) or not isinstance(entry, dict):
            raise ConfigError(f"OIDC_PROVIDERS: bad provider {name!r}")
        missing = {"issuer", "client_id", "client_secret"} - set(entry)
        unknown = set(entry) - _OIDC_KEYS
        if missing or unknown:
            raise ConfigError(
                f"OIDC_PROVIDERS[{name}]: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        issuer = str(entry["issuer"]).rstrip("/")
        host = urlsplit(issuer).hostname or ""
        if not issuer.startswith("https://") and host not in ("127.0.0.1", "localhost"):
            raise ConfigError(f"OIDC_PROVIDERS[{name}]: the issuer must be an https URL")
        out[name] = {
            "issuer": issuer,
            "client_id": str(entry["client_id"]),
            "client_secret": str(entry["client_secret"]),
            "scopes": str(entry.get("scopes") or "openid email profile"),
            "label": str(entry.get("label") or name.capitalize()),
        }
    return out


def load_config(env: Mapping[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Read the settings from ``env`` (default ``os.environ``) at call time.

    ``overrides`` win over the environment (tests and tools pass them).
    """
    env = os.environ if env is None else env
    profile = (overrides.get("ENV") or env.get("ENV") or "development").strip().lower()
    if profile not in PROFILES:
        raise ConfigError(f"ENV must be one of {', '.join(PROFILES)}, got {profile!r}")
    instance_dir = Path(env.get("INSTANCE_DIR", BASE_DIR / "instance"))
    get = env.get

    cfg: dict[str, Any] = {
        "ENV": profile,
        "VERSION": __version__,
        "DEBUG": _bool(env, "FLASK_DEBUG", False) and profile == "development",
        "TESTING": profile == "testing",
        "SECRET_KEY": get("SECRET_KEY", DEV_SECRET_KEY),
        "JWT_SECRET_KEY": get("JWT_SECRET_KEY", DEV_JWT_SECRET_KEY),
        # Fernet key (urlsafe base64 of 32 bytes) for secrets stored in the DB.
        "ENCRYPTION_KEY": get("ENCRYPTION_KEY", DEV_ENCRYPTION_KEY),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(
            get("DATABASE_URL", f"sqlite:///{instance_dir / 'jackpotx.sqlite3'}")
        ),
        # Migrations (``flask db upgrade``) connect here when set: the owner role; the app's
        # DATABASE_URL names the least-privilege app role (docs/security.md, "Database roles").
        "MIGRATION_DATABASE_URL": normalize_database_url(get("MIGRATION_DATABASE_URL", "")),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # A streaming replica of DATABASE_URL (docs/console.md, "Read replica"): reports,
        # analytics and CSV exports read there; empty = everything reads the primary. A replica
        # that does not answer, or is more than REPLICA_MAX_LAG_SECONDS behind, is skipped
        # (the primary answers, with a log line) for REPLICA_CHECK_SECONDS.
        "DATABASE_REPLICA_URL": normalize_database_url(get("DATABASE_REPLICA_URL", "")),
        "REPLICA_MAX_LAG_SECONDS": _int(env, "REPLICA_MAX_LAG_SECONDS", 30),
        "REPLICA_CHECK_SECONDS": _int(env, "REPLICA_CHECK_SECONDS", 5),
        "REPLICA_CONNECT_TIMEOUT": _int(env, "REPLICA_CONNECT_TIMEOUT", 2),
        # Queued CSV exports (docs/console.md, "Queued exports"): where the files are kept,
        # how long (then the periodic job deletes them), the most rows one export may hold,
        # and the rows read per batch (one progress update per batch).
        # Empty: INSTANCE_DIR/exports.
        "EXPORT_DIR": get("EXPORT_DIR", ""),
        "EXPORT_TTL_HOURS": _int(env, "EXPORT_TTL_HOURS", 24),
        # A player's GDPR data archive waits this long for its one download.
        "GDPR_ARCHIVE_TTL_HOURS": _int(env, "GDPR_ARCHIVE_TTL_HOURS", 72),
        "EXPORT_MAX_ROWS": _int(env, "EXPORT_MAX_ROWS", 1_000_000),
        "EXPORT_BATCH_ROWS": _int(env, "EXPORT_BATCH_ROWS", 2000),
        # HMAC key of the audit chain and of ledger transactions (app.core.chain): never in the
        # database. Rotation: the old key moves to AUDIT_CHAIN_PREVIOUS_KEYS (verification).
        "AUDIT_CHAIN_KEY": get("AUDIT_CHAIN_KEY", DEV_AUDIT_CHAIN_KEY),
        "AUDIT_CHAIN_PREVIOUS_KEYS": _list(env, "AUDIT_CHAIN_PREVIOUS_KEYS"),
        # Signed checkpoints (count + head of both chains) go here, outside the database:
        # a directory on other storage (WORM bucket mount, another host) in production.
        "AUDIT_CHECKPOINT_DIR": get("AUDIT_CHECKPOINT_DIR", str(instance_dir / "checkpoints")),
        # Empty = embedded mode: fakeredis in-process, RQ jobs run synchronously.
        "REDIS_URL": get("REDIS_URL", ""),
        # Embedded only (no REDIS_URL): ``python wsgi.py`` runs the periodic jobs in-process.
        "EMBEDDED_SCHEDULER": _bool(env, "EMBEDDED_SCHEDULER", True),
        "INSTANCE_DIR": str(instance_dir),
        # The ClickHouse event sink (docs/analytics.md): empty = off. http(s)://user:pass@host:
        # 8123/database for a server; chdb:///dir for chDB in-process (pip install chdb).
        "CLICKHOUSE_URL": get("CLICKHOUSE_URL", ""),
        "CLICKHOUSE_SINK_BATCH": max(1, min(_int(env, "CLICKHOUSE_SINK_BATCH", 5000), 100_000)),
        "CLICKHOUSE_SINK_MAX_BATCHES": max(1, _int(env, "CLICKHOUSE_SINK_MAX_BATCHES", 20)),
        # Rows younger than this wait: a transaction still open must not commit behind the mark.
        "CLICKHOUSE_SINK_SETTLE_SECONDS": max(0, _int(env, "CLICKHOUSE_SINK_SETTLE_SECONDS", 30)),
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "JWT_ACCESS_TOKEN_EXPIRES": _int(env, "JWT_ACCESS_TOKEN_EXPIRES", 15 * 60),
        "JWT_REFRESH_TOKEN_EXPIRES": _int(env, "JWT_REFRESH_TOKEN_EXPIRES", 30 * 24 * 3600),
        "JWT_TOKEN_LOCATION": ["headers"],
        "CAPTCHA_REQUIRED": _bool(env, "CAPTCHA_REQUIRED", True),
        "RATELIMIT_ENABLED": _bool(env, "RATELIMIT_ENABLED", True),
        "RATE_LIMIT_AUTH": get("RATE_LIMIT_AUTH", "20 per minute"),
        "RATE_LIMIT_API": get("RATE_LIMIT_API", "300 per minute"),
        # The availability checks (/api/auth/check/*), per client address, on top of the above.
        "RATE_LIMIT_AVAILABILITY": get("RATE_LIMIT_AVAILABILITY", "30 per hour"),
        "RATE_LIMIT_CALLBACK": get("RATE_LIMIT_CALLBACK", "20000 per minute"),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Staff accounts (console and staff API): LOGIN_MAX_FAILURES failed secrets within
        # the window (minutes; older failures are forgotten) lock the account for
        # LOGIN_LOCKOUT_MINUTES (PCI DSS 8.3.4: at least 30, production refuses less).
        "LOGIN_MAX_FAILURES": _int(env, "LOGIN_MAX_FAILURES", 5),
        "LOGIN_FAILURE_WINDOW_MINUTES": _int(env, "LOGIN_FAILURE_WINDOW_MINUTES", 30),
        "LOGIN_LOCKOUT_MINUTES": _int(env, "LOGIN_LOCKOUT_MINUTES", 30),
        # Players are never locked: per (login name + client address), failures past the free
        # ones make that address wait BASE seconds, doubled per failure up to MAX; forgotten
        # WINDOW minutes after the last failure (app.identity.throttle).
        "LOGIN_THROTTLE_FREE_FAILURES": _int(env, "LOGIN_THROTTLE_FREE_FAILURES", 5),
        "LOGIN_THROTTLE_BASE_SECONDS": _int(env, "LOGIN_THROTTLE_BASE_SECONDS", 30),
        "LOGIN_THROTTLE_MAX_SECONDS": _int(env, "LOGIN_THROTTLE_MAX_SECONDS", 15 * 60),
        "LOGIN_THROTTLE_WINDOW_MINUTES": _int(env, "LOGIN_THROTTLE_WINDOW_MINUTES", 60),
        # Per login name across all addresses (a botnet): after this many failures within
        # the window (minutes, from the last failure) its sign-ins need a solved captcha;
        # 0 turns the challenge off (app.identity.throttle).
        "LOGIN_NAME_CHALLENGE_AFTER": _int(env, "LOGIN_NAME_CHALLENGE_AFTER", 20),
        "LOGIN_NAME_WINDOW_MINUTES": _int(env, "LOGIN_NAME_WINDOW_MINUTES", 60),
        # The sandbox payment gateway credits deposits nobody paid (its checkout page has no
        # login): on outside production only, and production refuses to start with it on.
        "SANDBOX_GATEWAY_ENABLED": _bool(env, "SANDBOX_GATEWAY_ENABLED", profile != "production"),
        # Outbound calls to staff-configured URLs (app.core.outbound): optional host
        # allow-list; private, link-local and reserved addresses are always refused, loopback
        # only with OUTBOUND_ALLOW_LOOPBACK (development/tests serve the remote side locally).
        "OUTBOUND_ALLOWED_HOSTS": _list(env, "OUTBOUND_ALLOWED_HOSTS"),
        "OUTBOUND_ALLOW_LOOPBACK": _bool(env, "OUTBOUND_ALLOW_LOOPBACK", False),
        # Production refuses OUTBOUND_ALLOW_LOOPBACK unless this holds LOOPBACK_IN_PRODUCTION_ACK
        # (a staging server whose loopback services are the conformance runner's).
        "OUTBOUND_LOOPBACK_IN_PRODUCTION": get("OUTBOUND_LOOPBACK_IN_PRODUCTION", ""),
        # Origins a deposit's return_url/cancel_url may name (app.core.redirects); empty =
        # CORS_ORIGINS + PUBLIC_URL. Relative paths are always allowed.
        "REDIRECT_ALLOWED_ORIGINS": _list(env, "REDIRECT_ALLOWED_ORIGINS"),
        # A production-profile environment without real players (load and fault tests,
        # staging) may run it only by also setting this to SANDBOX_IN_PRODUCTION_ACK.
        "SANDBOX_GATEWAY_IN_PRODUCTION": get("SANDBOX_GATEWAY_IN_PRODUCTION", ""),
        # Sign-in through outside identities (app.identity.external): OpenID Connect issuers
        # as JSON {"name": {"issuer", "client_id", "client_secret", "scopes"?, "label"?}},
        # the Telegram Login widget's bot token (empty: off) and how old its auth_date may be,
        # and the lifetime of a sign-in in progress (state) and of its handoff code.
        "OIDC_PROVIDERS": _oidc_providers(get("OIDC_PROVIDERS", "")),
        "TELEGRAM_BOT_TOKEN": get("TELEGRAM_BOT_TOKEN", ""),
        "TELEGRAM_AUTH_MAX_AGE": _int(env, "TELEGRAM_AUTH_MAX_AGE", 600),
        "EXTERNAL_LOGIN_STATE_TTL": _int(env, "EXTERNAL_LOGIN_STATE_TTL", 600),
        "EXTERNAL_LOGIN_HANDOFF_TTL": _int(env, "EXTERNAL_LOGIN_HANDOFF_TTL", 120),
        "CAPTCHA_TTL": _int(env, "CAPTCHA_TTL", 300),
        "PASSWORD_RESET_TTL": _int(env, "PASSWORD_RESET_TTL", 3600),
        # E-mail verification: link/code lifetime, resend spacing and daily cap, wrong codes.
        "EMAIL_VERIFICATION_TTL": _int(env, "EMAIL_VERIFICATION_TTL", 24 * 3600),
        "EMAIL_VERIFICATION_RESEND_SECONDS": _int(env, "EMAIL_VERIFICATION_RESEND_SECONDS", 60),
        "EMAIL_VERIFICATION_MAX_PER_DAY": _int(env, "EMAIL_VERIFICATION_MAX_PER_DAY", 5),
        "EMAIL_VERIFICATION_MAX_ATTEMPTS": _int(env, "EMAIL_VERIFICATION_MAX_ATTEMPTS", 5),
        # ``file`` writes each mail to MAIL_DIR and logs it; ``smtp`` sends through SMTP_HOST.
        "MAIL_BACKEND": get("MAIL_BACKEND", "file"),
        "MAIL_FROM": get("MAIL_FROM", "JackpotX <no-reply@jackpotx.local>"),
        "SMTP_HOST": get("SMTP_HOST", ""),
        "SMTP_PORT": _int(env, "SMTP_PORT", 587),
        "SMTP_USERNAME": get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": _bool(env, "SMTP_STARTTLS", True),
        # SMS (docs/identity.md): ``file`` writes each message to SMS_DIR (development, tests;
        # production refuses it unless SMS_FILE_IN_PRODUCTION is SMS_FILE_IN_PRODUCTION_ACK),
        # ``twilio`` calls Twilio's Messages API (default in production).
        "SMS_BACKEND": get("SMS_BACKEND", "twilio" if profile == "production" else "file")
        .strip()
        .lower(),
        "SMS_DIR": get("SMS_DIR", str(instance_dir / "sms")),
        "SMS_FILE_IN_PRODUCTION": get("SMS_FILE_IN_PRODUCTION", ""),
        "SMS_TIMEOUT": float(get("SMS_TIMEOUT", "10") or 10),
        "TWILIO_ACCOUNT_SID": get("TWILIO_ACCOUNT_SID", ""),
        "TWILIO_AUTH_TOKEN": get("TWILIO_AUTH_TOKEN", ""),
        # The sender: a Twilio number (E.164) or, instead, a Messaging Service SID (MG...).
        "TWILIO_FROM": get("TWILIO_FROM", ""),
        "TWILIO_MESSAGING_SERVICE_SID": get("TWILIO_MESSAGING_SERVICE_SID", ""),
        "TWILIO_API_BASE": get("TWILIO_API_BASE", "https://api.twilio.com").rstrip("/"),
        # One-time codes sent by SMS or e-mail (phone verification, SMS 2FA, OTP sign-up).
        "OTP_TTL_SECONDS": _int(env, "OTP_TTL_SECONDS", 600),
        "OTP_MAX_ATTEMPTS": _int(env, "OTP_MAX_ATTEMPTS", 5),
        "OTP_RESEND_SECONDS": _int(env, "OTP_RESEND_SECONDS", 60),
        "OTP_MAX_PER_DESTINATION_PER_DAY": _int(env, "OTP_MAX_PER_DESTINATION_PER_DAY", 5),
        "OTP_MAX_PER_IP_PER_HOUR": _int(env, "OTP_MAX_PER_IP_PER_HOUR", 10),
        "PHONE_MAX_PER_USER": _int(env, "PHONE_MAX_PER_USER", 5),
        "API_DOCS_PASSWORD": get("API_DOCS_PASSWORD", ""),
        "DEFAULT_CURRENCY": get("DEFAULT_CURRENCY", "EUR").upper(),
        # Minor units; withdrawals at or above need approved KYC.
        "KYC_WITHDRAWAL_THRESHOLD": _int(env, "KYC_WITHDRAWAL_THRESHOLD", 200_00),
        "UPLOAD_DIR": get("UPLOAD_DIR", str(instance_dir / "uploads")),
        # Staff-uploaded game thumbnails and banners (JPEG/PNG/WebP, served /media/games/).
        "GAME_IMAGE_MAX_BYTES": _int(env, "GAME_IMAGE_MAX_BYTES", 2 * 1024 * 1024),
        "AVATAR_MAX_BYTES": _int(env, "AVATAR_MAX_BYTES", 2 * 1024 * 1024),
        "CONTENT_IMAGE_MAX_BYTES": _int(env, "CONTENT_IMAGE_MAX_BYTES", 2 * 1024 * 1024),
        # Payments / KYC / responsible gaming (docs/payments.md). Amounts in minor units.
        "KYC_MAX_FILE_BYTES": _int(env, "KYC_MAX_FILE_BYTES", 8 * 1024 * 1024),
        # A KYC PDF must have 1 to this many pages (a statement, a bill, an ID scan).
        "KYC_PDF_MAX_PAGES": _int(env, "KYC_PDF_MAX_PAGES", 50),
        "WITHDRAWAL_DUAL_APPROVAL_THRESHOLD": _int(
            env, "WITHDRAWAL_DUAL_APPROVAL_THRESHOLD", 1000_00
        ),
        "DEPOSIT_PENDING_TTL_MINUTES": _int(env, "DEPOSIT_PENDING_TTL_MINUTES", 60),
        "RG_COOLING_OFF_HOURS": _int(env, "RG_COOLING_OFF_HOURS", 24),
        "RG_SESSION_IDLE_MINUTES": _int(env, "RG_SESSION_IDLE_MINUTES", 30),
        "RG_SESSION_TOUCH_SECONDS": _int(env, "RG_SESSION_TOUCH_SECONDS", 15),
        "AML_LARGE_DEPOSIT": _int(env, "AML_LARGE_DEPOSIT", 5000_00),
        "AML_LARGE_WITHDRAWAL": _int(env, "AML_LARGE_WITHDRAWAL", 5000_00),
        "AML_VELOCITY_COUNT": _int(env, "AML_VELOCITY_COUNT", 5),
        "AML_VELOCITY_WINDOW_MINUTES": _int(env, "AML_VELOCITY_WINDOW_MINUTES", 60),
        # Percent of deposits since the last withdrawal that must be wagered before a
        # withdrawal is not "deposit then cash out with little play".
        "AML_MIN_PLAY_PERCENT": _int(env, "AML_MIN_PLAY_PERCENT", 50),
        # Affiliate commission periods: "monthly" (UTC calendar months) or a number of days
        # counted from the Unix epoch (UTC), so every run agrees on the boundaries.
        "COMMISSION_PERIOD": get("COMMISSION_PERIOD", "monthly").strip().lower(),
        # Loyalty points per whole currency unit of cash wagered (1 = a point per EUR 1).
        "LOYALTY_POINTS_PER_UNIT": _int(env, "LOYALTY_POINTS_PER_UNIT", 1),
        # What a referring player earns (loyalty points) when the player they referred makes a
        # first deposit of at least REFERRAL_MIN_DEPOSIT (in the deposit's currency).
        "REFERRAL_REWARD_POINTS": _int(env, "REFERRAL_REWARD_POINTS", 500),
        "REFERRAL_MIN_DEPOSIT": get("REFERRAL_MIN_DEPOSIT", "10.00").strip(),
        # Live events (balance updates, ...) of a request: "background" (a per-process
        # publisher sends them in batches after the answer) or "inline" (before the answer).
        "EVENTS_AFTER_COMMIT": get(
            "EVENTS_AFTER_COMMIT", "background" if profile == "production" else "inline"
        )
        .strip()
        .lower(),
        # After-commit play listeners (loyalty, tournament scores): "inline" (in the request,
        # once the view returned) or "background" (a per-process queue drained in batches).
        "PLAY_AFTER_COMMIT": get(
            "PLAY_AFTER_COMMIT", "background" if profile == "production" else "inline"
        )
        .strip()
        .lower(),
        # Tournaments are settled this long after their end (scores are written after each
        # callback commits; a bet claimed before the end commits within its request timeout).
        "TOURNAMENT_SETTLE_GRACE_SECONDS": _int(env, "TOURNAMENT_SETTLE_GRACE_SECONDS", 90),
        # Which shared identities refuse a second welcome bonus: device, ip, payment.
        "WELCOME_DUPLICATE_SIGNALS": _list(env, "WELCOME_DUPLICATE_SIGNALS", "device,ip,payment"),
        "MAIL_DIR": get("MAIL_DIR", str(instance_dir / "mail")),
        "CORS_ORIGINS": _list(env, "CORS_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000"),
        # Origins that may frame the game pages (the player app's); empty: none may.
        "GAME_EMBED_ORIGINS": _list(env, "GAME_EMBED_ORIGINS", ""),
        "LOG_LEVEL": get("LOG_LEVEL", "INFO").upper(),
        # Public base URL for links we hand out (launch URLs, checkout pages, e-mails).
        # Default: this machine on the port we serve (`PORT=5070 make run` hands out :5070).
        "PUBLIC_URL": get("PUBLIC_URL", f"http://127.0.0.1:{_int(env, 'PORT', 5000)}").rstrip("/"),
        # Header a trusted proxy sets with the client's ISO-3166 country code.
        "COUNTRY_HEADER": get("COUNTRY_HEADER", "CF-IPCountry"),
        # How many proxies in front of us append to X-Forwarded-For (0 = trust none).
        "PROXY_COUNT": _int(env, "PROXY_COUNT", 0),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 12 * 1024 * 1024),
        # Password policy (ASVS 5): length, no composition rules, no common passwords.
        "PASSWORD_MIN_LENGTH": _int(env, "PASSWORD_MIN_LENGTH", 12),
        "PASSWORD_MAX_LENGTH": _int(env, "PASSWORD_MAX_LENGTH", 128),
        # Argon2id cost; OWASP's floor is m=19 MiB, t=2, p=1.
        "ARGON2_TIME_COST": _int(env, "ARGON2_TIME_COST", 2),
        "ARGON2_MEMORY_COST": _int(env, "ARGON2_MEMORY_COST", 19 * 1024),
        "ARGON2_PARALLELISM": _int(env, "ARGON2_PARALLELISM", 1),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": _int(env, "CONSOLE_IDLE_TIMEOUT", 30 * 60),
        # Absolute console session lifetime: activity never extends a session past it.
        "CONSOLE_SESSION_MAX_HOURS": _int(env, "CONSOLE_SESSION_MAX_HOURS", 12),
        "WTF_CSRF_TIME_LIMIT": None,
        "API_TITLE": "JackpotX API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "SOCKETIO_ASYNC_MODE": get("SOCKETIO_ASYNC_MODE", "gevent"),
        # False in a process group that serves only provider callbacks and the JSON API
        # (``wsgi_api.py``): no Socket.IO server there, events still go out on the Redis
        # channel to the Socket.IO group. Ignored without Redis (embedded: one process).
        "SOCKETIO_SERVER": _bool(env, "SOCKETIO_SERVER", True),
        # JxOriginals (the built-in studio): its callback secret (else generated and stored
        # encrypted), the casino base URL it calls back over HTTP, and that call's timeout.
        "JXORIGINALS_SECRET": get("JXORIGINALS_SECRET", ""),
        "JXORIGINALS_WALLET_URL": get("JXORIGINALS_WALLET_URL", "").rstrip("/"),
        "JXORIGINALS_TIMEOUT": float(get("JXORIGINALS_TIMEOUT", "5") or 5),
        # Pub/sub channel; default derives from the Redis db so environments never cross.
        "SOCKETIO_CHANNEL": get("SOCKETIO_CHANNEL", ""),
        "SOCKETIO_PING_INTERVAL": _int(env, "SOCKETIO_PING_INTERVAL", 25),
        "SOCKETIO_PING_TIMEOUT": _int(env, "SOCKETIO_PING_TIMEOUT", 20),
        # Live connections re-check token expiry/revocation this often (seconds).
        "SOCKETIO_AUTH_RECHECK_SECONDS": _int(env, "SOCKETIO_AUTH_RECHECK_SECONDS", 30),
        # Client events per connection: "<events>/<seconds>" token bucket.
        "SOCKETIO_EVENT_RATE": get("SOCKETIO_EVENT_RATE", "20/10"),
        "SOCKETIO_MAX_CONNECTIONS_PER_USER": _int(env, "SOCKETIO_MAX_CONNECTIONS_PER_USER", 10),
        # PostgreSQL timeouts (docs/operations.md). Interactive: the web process (callbacks,
        # player API, console): a held row lock or a runaway query answers a retryable error
        # within seconds instead of freezing workers. Jobs: worker.py and `flask jackpotx`.
        "DB_LOCK_TIMEOUT_MS": _int(env, "DB_LOCK_TIMEOUT_MS", 2000),
        "DB_STATEMENT_TIMEOUT_MS": _int(env, "DB_STATEMENT_TIMEOUT_MS", 15000),
        "DB_JOB_LOCK_TIMEOUT_MS": _int(env, "DB_JOB_LOCK_TIMEOUT_MS", 15000),
        "DB_JOB_STATEMENT_TIMEOUT_MS": _int(env, "DB_JOB_STATEMENT_TIMEOUT_MS", 600000),
        # The callback path's statements are PREPAREd once per connection (core/prepared.py);
        # false behind a transaction-pooling proxy (PgBouncer "transaction" mode).
        "DB_PREPARED_STATEMENTS": _bool(env, "DB_PREPARED_STATEMENTS", True),
        # Connection pool per process; past size + overflow a request waits at most
        # DB_POOL_TIMEOUT seconds, then answers 503 (never queues for half a minute). No
        # overflow by default: a gevent worker's load swings fill and drain the pool many times
        # a second, and every overflow connection closed and reopened cost a backend start and
        # its prepared statements planned again (docs/perf.md, item 28).
        "DB_POOL_SIZE": _int(env, "DB_POOL_SIZE", 15),
        "DB_MAX_OVERFLOW": _int(env, "DB_MAX_OVERFLOW", 0),
        "DB_POOL_TIMEOUT": _int(env, "DB_POOL_TIMEOUT", 3),
        # Callbacks of one player (session token or player id) in flight per process: more
        # wait up to the lock timeout for a slot without holding a database connection, then
        # answer the protocol's retryable error (a hot or stuck wallet cannot take the pool).
        # One: the player's row locks serialize their money movements anyway, and a queue of
        # one keeps a locked player's answers within the lock timeout (no chain of waits).
        "CALLBACK_MAX_INFLIGHT_PER_PLAYER": _int(env, "CALLBACK_MAX_INFLIGHT_PER_PLAYER", 1),
        # Largest callback or webhook body (bytes); larger is refused with 413 before parsing.
        "CALLBACK_MAX_BODY_BYTES": _int(env, "CALLBACK_MAX_BODY_BYTES", 16 * 1024),
        # Serve provider callbacks without Flask's request cycle (an app context only, the same
        # answers; docs/perf.md "fifth slice"). Off: every callback goes through Flask.
        "CALLBACK_LANE": _bool(env, "CALLBACK_LANE", True),
        # Largest JSON body of the player and staff API (uploads have their own limit).
        "API_MAX_JSON_BYTES": _int(env, "API_MAX_JSON_BYTES", 256 * 1024),
        # Request gates (maintenance, access rules) cache their setting this long per process.
        "SETTINGS_CACHE_SECONDS": _int(env, "SETTINGS_CACHE_SECONDS", 2),
        # GET /metrics (docs/operations.md, "Metrics"): a bearer token accepted from anywhere,
        # and the addresses that may scrape without it (loopback outside production, none in
        # production: behind a proxy every caller may look like the proxy).
        "METRICS_ENABLED": _bool(env, "METRICS_ENABLED", True),
        "METRICS_TOKEN": get("METRICS_TOKEN", ""),
        "METRICS_ALLOW_IPS": _list(
            env, "METRICS_ALLOW_IPS", "" if profile == "production" else "127.0.0.1,::1"
        ),
    }
    if cfg["SMS_BACKEND"] not in SMS_BACKENDS:
        raise ConfigError(f"SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}")
    for entry in cfg["METRICS_ALLOW_IPS"]:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"METRICS_ALLOW_IPS: {entry!r} is not an address or network"
            ) from None
    if profile == "testing":
        cfg.update(
            CAPTCHA_REQUIRED=False,
            SQLALCHEMY_DATABASE_URI="sqlite://",
            REDIS_URL="",
            ARGON2_TIME_COST=1,
            ARGON2_MEMORY_COST=8,
            WTF_CSRF_ENABLED=False,
            SOCKETIO_ASYNC_MODE="threading",
            # Each test rolls its settings back: a cached value would leak into the next test.
            SETTINGS_CACHE_SECONDS=0,
        )
    if profile == "production":
        cfg.update(
            # No ping round trip before every request's first query (the callback hot path pays
            # it on every call): connections are recycled before PostgreSQL or a proxy drops
            # them, and a connection that died anyway fails its request (a callback answers
            # INTERNAL_ERROR, nothing moved, the provider retries) and invalidates the pool.
            SQLALCHEMY_ENGINE_OPTIONS={
                "pool_pre_ping": _bool(env, "DB_POOL_PRE_PING", False),
                "pool_recycle": _int(env, "DB_POOL_RECYCLE", 1800),
                "pool_size": cfg["DB_POOL_SIZE"],
                "max_overflow": cfg["DB_MAX_OVERFLOW"],
                "pool_timeout": cfg["DB_POOL_TIMEOUT"],
            },
            SESSION_COOKIE_SECURE=True,
            SESSION_COOKIE_NAME="__Host-jackpotx",
            REMEMBER_COOKIE_SECURE=True,
        )
    cfg.update(overrides)
    if "SQLALCHEMY_DATABASE_URI" in overrides:
        cfg["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(cfg["SQLALCHEMY_DATABASE_URI"])
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite serializes writers; wait for the lock instead of failing at once.
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    cfg["DATABASE_REPLICA_URL"] = normalize_database_url(cfg.get("DATABASE_REPLICA_URL") or "")
    if cfg["DATABASE_REPLICA_URL"]:
        cfg["SQLALCHEMY_BINDS"] = {"replica": replica_engine_options(cfg)}
    if profile == "production":
        validate_production(cfg)
    return cfg


def replica_engine_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The replica bind (Flask-SQLAlchemy ``SQLALCHEMY_BINDS`` entry): the primary's pool
    settings, a short connect timeout (a dead replica costs a report seconds, not minutes)
    and an ``application_name`` that tells its sessions apart in ``pg_stat_activity``."""
    url = cfg["DATABASE_REPLICA_URL"]
    options: dict[str, Any] = {"url": url, "pool_pre_ping": True}
    if url.startswith("postgresql"):
        options["connect_args"] = {
            "connect_timeout": int(cfg["REPLICA_CONNECT_TIMEOUT"]),
            "application_name": "jackpotx-replica",
        }
        for key in ("pool_size", "max_overflow", "pool_timeout", "pool_recycle"):
            if key in cfg["SQLALCHEMY_ENGINE_OPTIONS"]:
                options[key] = cfg["SQLALCHEMY_ENGINE_OPTIONS"][key]
    return options


def secret_weakness(value: str) -> str | None:
    """Why ``value`` is too weak for a production secret, or None.

    Not a proof of randomness: it refuses what a person types as a placeholder (a repeated
    character or short pattern, a word padded to length). The rule (docs/security.md): at
    least SECRET_MIN_LENGTH characters, SECRET_MIN_DISTINCT distinct ones, and
    SECRET_MIN_BITS bits estimated as length x the Shannon entropy of its characters, and no
    block repeated to fill it (``"Xy7#" * 10``).
    """
    if len(value) < SECRET_MIN_LENGTH:
        return f"shorter than {SECRET_MIN_LENGTH} characters"
    counts = Counter(value)
    if len(counts) < SECRET_MIN_DISTINCT:
        return f"fewer than {SECRET_MIN_DISTINCT} distinct characters"
    n = len(value)
    bits = -n * sum(c / n * math.log2(c / n) for c in counts.values())
    if bits < SECRET_MIN_BITS:
        return f"about {int(bits)} bits of entropy, fewer than {SECRET_MIN_BITS}"
    for period in range(1, n // 2 + 1):
        if all(value[i] == value[i - period] for i in range(period, n)):
            return "a repeated pattern"
    return None


def fernet_key_problem(value: str) -> str | None:
    """Why ``value`` is not a usable Fernet key (cryptography's ``Fernet`` refuses it, or its
    32 bytes are a pattern, like ``"a" * 43 + "="``), or None."""
    from cryptography.fernet import Fernet

    try:
        Fernet(value)
        raw = base64.urlsafe_b64decode(value.encode())
        if base64.urlsafe_b64encode(raw).decode() != value:
            raise ValueError("not canonical base64")  # stray characters base64 would skip
    except (ValueError, TypeError, binascii.Error):
        return "not a Fernet key (url-safe base64 of 32 bytes: Fernet.generate_key())"
    if len(set(raw)) < FERNET_MIN_DISTINCT_BYTES:
        return "a Fernet key whose bytes are a pattern, not random"
    return None


def validate_production(cfg: Mapping[str, Any]) -> None:
    """Refuse development secrets, weak or shared secrets and embedded services in production."""
    problems = []
    for key, dev_value in (
        ("SECRET_KEY", DEV_SECRET_KEY),
        ("JWT_SECRET_KEY", DEV_JWT_SECRET_KEY),
        ("AUDIT_CHAIN_KEY", DEV_AUDIT_CHAIN_KEY),
    ):
        if cfg[key] == dev_value:
            problems.append(f"{key} is the development default")
        elif weakness := secret_weakness(cfg[key]):
            problems.append(f"{key} is too weak ({weakness})")
    if cfg["SECRET_KEY"] == cfg["JWT_SECRET_KEY"]:
        problems.append("SECRET_KEY and JWT_SECRET_KEY must differ")
    if cfg["AUDIT_CHAIN_KEY"] in (cfg["SECRET_KEY"], cfg["JWT_SECRET_KEY"]):
        problems.append("AUDIT_CHAIN_KEY must differ from SECRET_KEY and JWT_SECRET_KEY")
    if cfg["ENCRYPTION_KEY"] == DEV_ENCRYPTION_KEY:
        problems.append("ENCRYPTION_KEY is the development default")
    elif problem := fernet_key_problem(cfg["ENCRYPTION_KEY"]):
        problems.append(f"ENCRYPTION_KEY is {problem}")
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        problems.append("DATABASE_URL must be set to a PostgreSQL URL")
    if not cfg["REDIS_URL"]:
        problems.append("REDIS_URL is required")
    replica = cfg.get("DATABASE_REPLICA_URL") or ""
    if replica and not replica.startswith("postgresql"):
        problems.append("DATABASE_REPLICA_URL must be a PostgreSQL URL (a standby of DATABASE_URL)")
    if cfg["LOGIN_LOCKOUT_MINUTES"] < 30:
        problems.append("LOGIN_LOCKOUT_MINUTES must be at least 30 (PCI DSS 8.3.4)")
    if not 1 <= cfg["CONSOLE_SESSION_MAX_HOURS"] <= 24:
        problems.append("CONSOLE_SESSION_MAX_HOURS must be between 1 and 24")
    if (
        cfg["SANDBOX_GATEWAY_ENABLED"]
        and cfg.get("SANDBOX_GATEWAY_IN_PRODUCTION") != SANDBOX_IN_PRODUCTION_ACK
    ):
        problems.append(
            "SANDBOX_GATEWAY_ENABLED must be off: the sandbox gateway credits unpaid deposits"
        )
    if (
        cfg["OUTBOUND_ALLOW_LOOPBACK"]
        and cfg.get("OUTBOUND_LOOPBACK_IN_PRODUCTION") != LOOPBACK_IN_PRODUCTION_ACK
    ):
        problems.append(
            "OUTBOUND_ALLOW_LOOPBACK must be off: staff-set URLs could reach this host's services"
        )
    if cfg["SMS_BACKEND"] == "file" and (
        cfg.get("SMS_FILE_IN_PRODUCTION") != SMS_FILE_IN_PRODUCTION_ACK
    ):
        problems.append("SMS_BACKEND=file writes codes to disk instead of sending them")
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))


def production_warnings(cfg: Mapping[str, Any]) -> list[str]:
    """What production allows but an operator should know (logged as WARNING at start)."""
    warnings = []
    if not cfg["OUTBOUND_ALLOWED_HOSTS"]:
        warnings.append(
            "OUTBOUND_ALLOWED_HOSTS is empty: staff-set gateway and provider URLs may name any "
            "public host (private, loopback and link-local addresses stay refused); list the "
            "hosts your gateways and aggregators use"
        )
    return warnings


PROFILES = ("development", "testing", "production")
