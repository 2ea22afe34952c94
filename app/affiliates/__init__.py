"""Referrals, affiliate applications, agents and their tree, commission plans and the
commission job that pays agents through the ledger."""
