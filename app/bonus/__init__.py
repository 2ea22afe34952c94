"""Promotions and bonuses: offers, claims, wagering, free spins, one welcome bonus per person,
loyalty points. ``bonuses`` is one player's bonus as every path changes it."""
