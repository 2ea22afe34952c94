"""The typed registry of operator settings: what an Admin may change at run time.

Each setting is declared once (``SPECS``): its key, type, bounds or choices, description and
default. The default is the environment variable of the same name, upper-cased (read from
``current_app.config`` at call time), so a deployment that set ``DEPOSIT_PENDING_TTL_MINUTES``
keeps its value until an operator overrides it; an override lives in the ``settings`` table
under ``ops.<key>`` and is read through ``settings.cached`` (a change reaches this process at
once, the others within ``SETTINGS_CACHE_SECONDS``). Storing ``null`` returns to the default.

Environment variables stay the only source for secrets, infrastructure and what runs on the
callback hot path (``RG_SESSION_IDLE_MINUTES`` is read by every bet: not here).

Invariant: ``put_many`` validates every value before writing any, and writes each change with
its audit row (``settings.put``) inside the caller's transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import current_app

from app.core import settings
from app.core.errors import ValidationError

PREFIX = "ops."

#: Minor units: at most 10^13 (a hundred billion in a two-decimal currency).
_MONEY_MAX = 10**13


@dataclass(frozen=True)
class Spec:
    key: str
    type: str  # "bool" | "int" | "string" | "list"
    description: str
    category: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None
    max_length: int | None = None
    #: A string setting's shape (``re.fullmatch``) and how to say it when a value misses it.
    pattern: tuple[str, str] | None = None
    unit: str | None = None
    #: The built-in default when the configuration has no such key.
    fallback: Any = None

    @property
    def env(self) -> str:
        return self.key.upper()

    @property
    def label(self) -> str:
        """The setting's name in words, an English msgid: ``"AML velocity count"``."""
        return label(self.key)


#: Words written in capitals in a setting's label.
_ACRONYMS = {"aml": "AML", "kyc": "KYC", "ttl": "TTL", "rg": "RG", "rtp": "RTP", "vip": "VIP"}


def label(key: str) -> str:
    """``"aml_velocity_count"`` → ``"AML velocity count"`` (``app.core.i18n_extract`` extracts
    it from each ``Spec(...)`` and the console shows it translated)."""
    words = [_ACRONYMS.get(word, word) for word in key.split("_")]
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


SPECS: tuple[Spec, ...] = (
    Spec(
        "maintenance_mode",
        "bool",
        "Maintenance mode: the player API answers 503 MAINTENANCE_MODE (staff API, callbacks "
        "and webhooks keep working)",
        "platform",
        fallback=False,
    ),
    Spec(
        "maintenance_message",
        "string",
        "The message players see while maintenance is on",
        "platform",
        max_length=500,
        fallback=None,
    ),
    Spec(
        "content_fallback_language",
        "string",
        "The language players get a page, FAQ entry, announcement or banner in when it has no "
        "version in theirs (a code such as en, de or pt-br)",
        "platform",
        max_length=16,
        pattern=(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", "Must be a language code such as en, de or pt-br"),
        fallback="en",
    ),
    Spec(
        "languages_enabled",
        "list",
        "Languages of the console, e-mails and API messages; the first is the fallback",
        "platform",
        choices=("en", "de"),
        fallback=["en", "de"],
    ),
    Spec(
        "deposit_pending_ttl_minutes",
        "int",
        "How long a pending deposit waits for its payment before it expires (0: never)",
        "payments",
        minimum=0,
        maximum=7 * 24 * 60,
        unit="minutes",
        fallback=60,
    ),
    Spec(
        "withdrawal_dual_approval_threshold",
        "int",
        "Withdrawals at or above this amount need two staff approvals (0: never)",
        "payments",
        minimum=0,
        maximum=_MONEY_MAX,
        unit="minor units",
        fallback=1000_00,
    ),
    Spec(
        "kyc_withdrawal_threshold",
        "int",
        "Withdrawals at or above this amount need approved KYC",
        "payments",
        minimum=0,
        maximum=_MONEY_MAX,
        unit="minor units",
        fallback=200_00,
    ),
    Spec(
        "unverified_email_blocks",
        "list",
        "What a player whose e-mail is not verified may not do",
        "payments",
        choices=("withdraw", "deposit"),
        fallback=["withdraw"],
    ),
    Spec(
        "signup_mode",
        "string",
        "How players open an account: password (username, e-mail, password, captcha), otp "
        "(an e-mail address or phone number and a one-time code; password optional), or both",
        "identity",
        choices=("password", "otp", "both"),
        fallback="password",
    ),
    Spec(
        "rg_cooling_off_hours",
        "int",
        "Delay before a raised or removed responsible-gaming limit takes effect",
        "responsible_gaming",
        minimum=1,
        maximum=30 * 24,
        unit="hours",
        fallback=24,
    ),
    Spec(
        "deposit_limit_prompt_required",
        "bool",
        "A first deposit is refused until the player answered the deposit-limit prompt "
        "(set a limit or declined; UKGC RTS 12A)",
        "responsible_gaming",
        fallback=True,
    ),
    Spec(
        "rg_exclusion_lift_cooling_hours",
        "int",
        "Cooling-off between a player's request to lift an ended fixed-term self-exclusion "
        "and the confirmation that lifts it",
        "responsible_gaming",
        minimum=24,
        maximum=30 * 24,
        unit="hours",
        fallback=24,
    ),
    Spec(
        "rg_indefinite_exclusion_minimum_days",
        "int",
        "Minimum time an indefinite (permanent) self-exclusion runs before the player may ask "
        "to lift it",
        "responsible_gaming",
        minimum=182,
        maximum=10 * 365,
        unit="days",
        fallback=182,
    ),
    Spec(
        "rg_indefinite_exclusion_lift_cooling_days",
        "int",
        "Cooling-off between a request to lift an indefinite self-exclusion and its confirmation",
        "responsible_gaming",
        minimum=7,
        maximum=90,
        unit="days",
        fallback=7,
    ),
    Spec(
        "withdrawal_reversal_allowed",
        "bool",
        "A player may cancel a pending withdrawal back into the playable balance (UKGC: off, "
        "no reverse withdrawals; staff rejection still returns the funds)",
        "payments",
        fallback=False,
    ),
    Spec(
        "account_reopen_cooling_days",
        "int",
        "Days after a self-service account closure before the player may reopen it",
        "identity",
        minimum=0,
        maximum=3650,
        unit="days",
        fallback=7,
    ),
    Spec(
        "aml_large_deposit",
        "int",
        "A single deposit at or above this amount raises a large_deposit risk flag",
        "risk",
        minimum=1,
        maximum=_MONEY_MAX,
        unit="minor units",
        fallback=5000_00,
    ),
    Spec(
        "aml_large_withdrawal",
        "int",
        "A single withdrawal at or above this amount raises a large_withdrawal risk flag",
        "risk",
        minimum=1,
        maximum=_MONEY_MAX,
        unit="minor units",
        fallback=5000_00,
    ),
    Spec(
        "aml_velocity_count",
        "int",
        "This many deposits within the velocity window raise a deposit_velocity risk flag",
        "risk",
        minimum=2,
        maximum=1000,
        fallback=5,
    ),
    Spec(
        "aml_velocity_window_minutes",
        "int",
        "The deposit velocity window",
        "risk",
        minimum=1,
        maximum=7 * 24 * 60,
        unit="minutes",
        fallback=60,
    ),
    Spec(
        "aml_min_play_percent",
        "int",
        "A withdrawal after wagering less than this share of the deposits raises a low_play flag",
        "risk",
        minimum=0,
        maximum=100,
        unit="percent",
        fallback=50,
    ),
    Spec(
        "welcome_duplicate_signals",
        "list",
        "Shared identities that refuse a second welcome bonus",
        "bonus",
        choices=("device", "ip", "payment"),
        fallback=["device", "ip", "payment"],
    ),
    Spec(
        "chat_messages_per_minute",
        "int",
        "A player sends at most this many support messages a minute (live chat and tickets)",
        "support",
        minimum=1,
        maximum=120,
        unit="messages",
        fallback=10,
    ),
    Spec(
        "chat_blocked_words",
        "list",
        "Words refused in players' support messages (whole words, any case)",
        "support",
        max_length=60,
        fallback=[],
    ),
    Spec(
        "rtp_window_days",
        "int",
        "The RTP check measures each game over this many complete UTC days before today",
        "reports",
        minimum=1,
        maximum=366,
        unit="days",
        fallback=30,
    ),
    Spec(
        "rtp_min_bets",
        "int",
        "The RTP check ignores a game with fewer bets than this in the window (too few to tell)",
        "reports",
        minimum=1,
        maximum=10**9,
        fallback=1000,
    ),
    Spec(
        "rtp_min_stakes",
        "int",
        "The RTP check ignores a game whose stakes in the window are below this amount",
        "reports",
        minimum=0,
        maximum=_MONEY_MAX,
        unit="minor units",
        fallback=1000_00,
    ),
    Spec(
        "rtp_tolerance_bp",
        "int",
        "A game is flagged when its measured RTP departs from the declared one by more than "
        "this (100 = 1 percentage point)",
        "reports",
        minimum=1,
        maximum=100_00,
        unit="basis points",
        fallback=300,
    ),
)

BY_KEY: dict[str, Spec] = {spec.key: spec for spec in SPECS}


def default(spec: Spec) -> Any:
    """The environment's value (the configuration), else the built-in fallback."""
    raw = current_app.config.get(spec.env, spec.fallback)
    try:
        return coerce(spec, raw)
    except ValueError:
        return spec.fallback


def coerce(spec: Spec, raw: Any) -> Any:
    """``raw`` as the spec's type within its bounds, else ``ValueError`` saying why."""
    if spec.type == "bool":
        if not isinstance(raw, bool):
            raise ValueError("Must be true or false")
        return raw
    if spec.type == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError("Must be an integer")
        if spec.minimum is not None and raw < spec.minimum:
            raise ValueError(f"Must be at least {spec.minimum}")
        if spec.maximum is not None and raw > spec.maximum:
            raise ValueError(f"Must be at most {spec.maximum}")
        return raw
    if spec.type == "string":
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise ValueError("Must be a string")
        text = raw.strip()
        if spec.max_length is not None and len(text) > spec.max_length:
            raise ValueError(f"Must be at most {spec.max_length} characters")
        if text and spec.pattern is not None and not re.fullmatch(spec.pattern[0], text):
            raise ValueError(spec.pattern[1])
        if spec.choices is not None and text not in spec.choices:
            raise ValueError(f"Choose one of {', '.join(spec.choices)}")
        return text or None
    if spec.type == "list":
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ValueError("Must be a list of strings")
        items = [item.strip().lower() for item in raw]
        if len(items) > 500:
            raise ValueError("At most 500 values")
        if spec.max_length is not None and any(len(i) > spec.max_length for i in items):
            raise ValueError(f"Each value at most {spec.max_length} characters")
        if spec.choices is None and not all(items):
            raise ValueError("Values must not be empty")
        if spec.choices is not None:
            bad = sorted({item for item in items if item not in spec.choices})
            if bad:
                raise ValueError(
                    f"Unknown value(s) {', '.join(bad)}; choose from {', '.join(spec.choices)}"
                )
        return sorted(set(items), key=items.index)
    raise ValueError(f"Unknown setting type {spec.type}")  # pragma: no cover - a declaration bug


def _stored(spec: Spec, *, fresh: bool) -> Any:
    """The operator's override (``None``: none)."""
    if spec.key in ("maintenance_mode", "maintenance_message"):
        state = (
            settings.get(settings.MAINTENANCE) if fresh else settings.cached(settings.MAINTENANCE)
        )
        if not state:
            return None
        return (
            bool(state.get("enabled")) if spec.key == "maintenance_mode" else state.get("message")
        )
    key = PREFIX + spec.key
    return settings.get(key) if fresh else settings.cached(key)


def value(key: str) -> Any:
    """The setting in force: the override if valid, else the default (cached read)."""
    spec = BY_KEY[key]
    stored = _stored(spec, fresh=False)
    if stored is None:
        return default(spec)
    try:
        return coerce(spec, stored)
    except ValueError:
        current_app.logger.warning("setting %s holds an invalid value; using the default", key)
        return default(spec)


def describe() -> list[dict[str, Any]]:
    """Every setting with its declaration, its value in force and where that comes from."""
    out = []
    for spec in SPECS:
        stored = _stored(spec, fresh=True)
        out.append(
            {
                "key": spec.key,
                "type": spec.type,
                "category": spec.category,
                "description": spec.description,
                "value": default(spec) if stored is None else coerce(spec, stored),
                "default": default(spec),
                "source": "default" if stored is None else "override",
                "env": spec.env,
                "minimum": spec.minimum,
                "maximum": spec.maximum,
                "choices": list(spec.choices) if spec.choices else None,
                "max_length": spec.max_length,
                "unit": spec.unit,
            }
        )
    return out


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    """The changes coerced to their types; every bad key or value is one field error."""
    errors = []
    clean: dict[str, Any] = {}
    for key, raw in changes.items():
        spec = BY_KEY.get(key)
        if spec is None:
            errors.append({"field": f"settings.{key}", "message": "Unknown setting"})
            continue
        if raw is None and key != "maintenance_mode":
            clean[key] = None  # back to the default
            continue
        try:
            clean[key] = coerce(spec, raw)
        except ValueError as exc:
            errors.append({"field": f"settings.{key}", "message": str(exc)})
    if errors:
        raise ValidationError("Invalid settings", errors=errors)
    return clean


def put_many(changes: dict[str, Any], *, actor: Any, reason: str | None = None) -> None:
    """Validate all, then store each change with its audit row (caller owns the transaction)."""
    clean = validate(changes)
    if "maintenance_mode" in clean or "maintenance_message" in clean:
        state = settings.get(settings.MAINTENANCE) or {}
        enabled = clean.get("maintenance_mode", bool(state.get("enabled")))
        message = (
            clean["maintenance_message"] if "maintenance_message" in clean else state.get("message")
        )
        if (enabled, message) != (bool(state.get("enabled")), state.get("message")) or not state:
            settings.put(
                settings.MAINTENANCE,
                {"enabled": enabled, "message": message},
                actor=actor,
                reason=reason,
            )
    for key, new in clean.items():
        if key in ("maintenance_mode", "maintenance_message"):
            continue
        if settings.get(PREFIX + key) == new:
            continue  # unchanged: no audit row
        settings.put(PREFIX + key, new, actor=actor, reason=reason)
