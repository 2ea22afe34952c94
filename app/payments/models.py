"""Payment gateways and the deposits / withdrawals that go through them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model
from app.core.states import StateMachine

PAYMENT_TYPES = ("deposit", "withdrawal")
PAYMENT_STATUSES = (
    "pending",
    "approved",
    "processing",
    "completed",
    "failed",
    "rejected",
    "cancelled",
    "expired",
)
#: A deposit waits for its gateway's webhook (or fails at creation). One nobody paid within
#: ``DEPOSIT_PENDING_TTL_MINUTES`` expires (it stops counting toward deposit limits); the
#: gateway's later word still applies: a late "paid" credits it (the player paid, the money
#: is never lost), a late "failed" records the decline.
DEPOSIT_STATES = StateMachine(
    "deposit",
    {"pending": {"completed", "failed", "expired"}, "expired": {"completed", "failed"}},
)
#: A withdrawal holds its funds from ``pending`` on; staff approve (one or two approvers) or
#: reject it, the player may cancel it while pending; the payout job submits it
#: (``processing``) and the gateway's webhook settles it. A gateway may answer an approved
#: payout before our submission is recorded, hence approved -> completed | failed.
WITHDRAWAL_STATES = StateMachine(
    "withdrawal",
    {
        "pending": {"approved", "rejected", "cancelled"},
        "approved": {"processing", "rejected", "completed", "failed"},
        "processing": {"completed", "failed"},
    },
)


class PaymentGateway(Model):
    """A configured payment method (integration guide's ``payment_gateways``).

    Limits and fixed fees are configuration in major units (``Decimal``, exact), because one
    gateway serves several currencies; every real amount is converted to the currency's minor
    units before it is compared or charged. Secrets are Fernet-encrypted (``*_enc``) and never
    leave the service layer.
    """

    __tablename__ = "payment_gateways"
    __table_args__ = (
        CheckConstraint("direction IN ('deposit', 'withdrawal', 'both')", name="direction"),
        CheckConstraint("min_amount IS NULL OR min_amount >= 0", name="min_not_negative"),
        CheckConstraint(
            "max_amount IS NULL OR min_amount IS NULL OR max_amount >= min_amount",
            name="max_ge_min",
        ),
        CheckConstraint("fees_percentage >= 0 AND fees_percentage < 100", name="fee_pct_range"),
        CheckConstraint("fees_fixed >= 0", name="fee_fixed_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    #: Method kind shown to players: card, bank_transfer, ewallet, crypto, sandbox ...
    type: Mapped[str] = mapped_column(String(50))
    #: Which adapter in ``app.payments.gateways`` talks to it (``sandbox``, ``stripe``).
    adapter: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16), default="both")
    description: Mapped[str | None] = mapped_column(Text)
    logo_url: Mapped[str | None] = mapped_column(String(500))
    website_url: Mapped[str | None] = mapped_column(String(500))
    api_endpoint: Mapped[str | None] = mapped_column(String(500))
    api_key_enc: Mapped[str | None] = mapped_column(Text)
    api_secret_enc: Mapped[str | None] = mapped_column(Text)
    webhook_secret_enc: Mapped[str | None] = mapped_column(Text)
    supported_currencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Empty list = every country.
    supported_countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 8))
    max_amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 8))
    processing_time: Mapped[str | None] = mapped_column(String(50))
    fees_percentage: Mapped[Decimal] = mapped_column(Numeric(6, 3), default=Decimal(0))
    fees_fixed: Mapped[Decimal] = mapped_column(Numeric(20, 8), default=Decimal(0))
    auto_approval: Mapped[bool] = mapped_column(default=False)
    requires_kyc: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PaymentTransaction(Model):
    """A deposit or withdrawal through a gateway. The money itself moves in the wallet ledger;
    this row is the payment's state machine and what the gateway told us."""

    __tablename__ = "payment_transactions"
    __table_args__ = (
        CheckConstraint("type IN ('deposit', 'withdrawal')", name="type"),
        CheckConstraint(
            "status IN ('pending', 'approved', 'processing', 'completed', 'failed', "
            "'rejected', 'cancelled', 'expired')",
            name="status",
        ),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("fee_minor >= 0", name="fee_not_negative"),
        UniqueConstraint("gateway_id", "gateway_reference", name="gateway_reference"),
        Index("ix_payment_transactions_user_type_created", "user_id", "type", "created_at"),
        Index("ix_payment_transactions_type_status", "type", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: What clients and gateways see (``txn_<hex>``); unguessable, used in checkout URLs.
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    gateway_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payment_gateways.id"))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    #: Gateway fee (percentage + fixed) in minor units, borne by the operator.
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    gateway_reference: Mapped[str | None] = mapped_column(String(255))
    payment_url: Mapped[str | None] = mapped_column(String(500))
    #: Payout destination (IBAN / wallet address ...) for withdrawals.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gateway_response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(500))
    return_url: Mapped[str | None] = mapped_column(String(500))
    cancel_url: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str | None] = mapped_column(String(500))
    #: Wallet ledger transaction ids this payment produced (credit, hold, release ...).
    ledger_refs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    #: The gateway's stable reference of the paying card/account (same card = same value),
    #: when the gateway gives one (sandbox: ``account_reference``); welcome-bonus checks.
    instrument_fingerprint: Mapped[str | None] = mapped_column(String(128), index=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    gateway: Mapped[PaymentGateway] = relationship(lazy="joined")
    approvals: Mapped[list[WithdrawalApproval]] = relationship(order_by="WithdrawalApproval.id")


class WithdrawalApproval(Model):
    """One staff approval of a withdrawal; large ones need two distinct approvers."""

    __tablename__ = "withdrawal_approvals"
    __table_args__ = (UniqueConstraint("transaction_id", "approver_id", name="once_per_approver"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("payment_transactions.id"), index=True
    )
    approver_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentWebhook(Model):
    """Every webhook we received, valid or not: raw body, verdict (the gateway's audit trail)."""

    __tablename__ = "payment_webhooks"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    gateway_code: Mapped[str] = mapped_column(String(50), index=True)
    event: Mapped[str | None] = mapped_column(String(64))
    transaction_public_id: Mapped[str | None] = mapped_column(String(64), index=True)
    signature_valid: Mapped[bool] = mapped_column(default=False)
    verdict: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
