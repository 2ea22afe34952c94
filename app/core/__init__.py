"""Shared plumbing every domain stands on; it imports no domain.

Transactions (``db``: ``atomic``, ``on_commit``, row locks), money in minor units (``money``),
domain errors and the one envelope (``errors``), settings from the environment (``config``),
extensions (``extensions``), status machines (``states``), the event bus and its durable
outbox (``bus``, ``events``, ``outbox``), RQ queues and the job decorator (``queues``, ``jobs``,
``schedule``, ``jobs_admin``), the audit trail (``audit``), notifications, mail, operator
settings, encryption at rest, socket presence and request hardening (``security``).
"""
