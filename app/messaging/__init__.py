"""Talking to players: support tickets and CRM segments with broadcasts (marketing consent
is asked of identity through ``app.core.mail``)."""
