"""Balances and the double-entry ledger: the only place a balance changes.

``ledger`` posts every movement under the wallet row lock with an idempotency key (the
ledger sum equals the balance); ``statements`` builds the player's account statement from it.
"""
