"""JxOriginals, the built-in game studio: provably fair games that settle through the casino's
signed seamless-wallet callbacks over HTTP, like any outside provider."""
