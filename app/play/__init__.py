"""Games and play: the catalog, launches, rounds, and the provider callbacks that move money.

``callbacks`` (protocol, wire adapters, actions, log, replay) is the seamless wallet;
``guard`` (who may stake) and ``events`` (what others learn of each stake and win) are the
extension points other domains fill through ``app.hooks``; ``seams`` the free rounds and
reported jackpots that bonus and prizes provide.
"""
