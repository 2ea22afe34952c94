"""Provider callbacks: the seamless wallet a game provider calls to move a player's money.

* ``protocol``: what every callback is (request, result, error codes) and the provider's
  cached configuration.
* ``adapters``: wire formats (native HMAC, Pragmatic-style, Hub88), one module each, turned
  into that protocol.
* ``actions``: what each action (bet, win, refund, rollback, end_round, jackpot_win) does to
  the wallet, inside one transaction under the wallet row lock.
* ``log``: every callback's record (the audit trail of the money path) and its listing.
* ``replay``: re-running a logged callback through the same actions.
"""
