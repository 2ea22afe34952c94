"""Who someone is and what they may do: players and staff, sessions, passwords, TOTP, roles.

``models`` holds ``User`` (every domain refers to it), tokens and login history; ``accounts``
registration, login, refresh and password flows; ``auth`` the JWT checks of the API;
``access`` roles and permissions as data; ``staff_actions`` and ``player_admin`` what staff
may do to accounts.
"""
