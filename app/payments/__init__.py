"""Payments: gateways, deposits, gateway webhooks and withdrawals.

Invariants:
* Money moves only through ``app.wallet.ledger`` (row lock + ledger); this domain owns the
  payment state machines around it (``app.payments.models.DEPOSIT_STATES`` and
  ``WITHDRAWAL_STATES``).
* A webhook is applied under the payment row's lock with ledger idempotency keys derived from
  the payment id: delivered twice, it moves money once (``webhooks``).
* A withdrawal request holds the funds in the transaction that creates it (``withdrawals``).
* Other domains' rules (deposit limits, bonus wagering, AML flags) reach payments only
  through ``hooks``, filled by ``app.hooks``.
* Gateway secrets are stored encrypted and never serialized (``gateways_admin``).
"""
