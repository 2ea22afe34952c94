"""Read-only figures for staff: the dashboard, player/provider reports and the financial
report from the ledger."""
