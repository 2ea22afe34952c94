"""The conformance runner: plays a game aggregator against a running JackpotX.

``flask jackpotx providers conformance --protocol P --base-url URL`` sets up its own test
players, providers and game in the deployment's database (through the domain services,
idempotently, everything named ``conformance-<protocol>...``), then sends real signed HTTP
callbacks to ``URL`` and checks every answer: one line per scenario, a summary, exit 1 on
any failure. See docs/providers.md.

* ``base``: what a protocol driver is (``Driver``, ``Reply``) and the outcome vocabulary
  scenarios speak (``ok``, ``duplicate``, ``insufficient`` ...), which each driver maps to its
  protocol's own codes.
* ``native``, ``hub88``: the drivers. Adding a protocol = one driver module + one line in
  ``runner.DRIVERS`` (+ its own scenarios, if it has features the others lack).
* ``fixtures``: the test players, providers, game and sessions.
* ``scenarios``: the protocol-agnostic scenarios; ``runner``: runs them and reports.
"""
