"""What the player app's lobby shows in one call: a read model across play, bonus, messaging
and wallet, cached in Redis for its public part."""
