"""JxOriginals, the built-in studio: game pages (HTML) and the studio's JSON API.

It lives outside ``/api`` on purpose: it is a game provider that happens to run in the same
process, reached by the player's browser from the launch URL, and it reaches the casino only
through the signed callback endpoint.
"""
