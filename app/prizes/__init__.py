"""Prizes players play for: progressive jackpots, tournaments (with their live boards) and
provably fair lottery draws."""
