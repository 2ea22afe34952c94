"""The event-bus subscriber that turns every committed ``app.core.bus.Event`` into an emit."""

from __future__ import annotations

from app.core import presence
from app.core.bus import Event
from app.realtime.emitter import emitter

#: After these events the user's sockets are closed: logout, ban, suspension, force-logout.
DISCONNECT_AFTER = frozenset({"session.logout"})


def deliver(event: Event) -> None:
    """Emit ``event`` to its room (raises ``redis.RedisError`` if the queue is unreachable).

    For ``session.logout`` the disconnects are published after the emit on the same Redis
    connection, so every server delivers the event before it closes the socket.
    """
    out = emitter()
    out.emit(event.name, event.data, event.room, event.namespace)
    if event.name in DISCONNECT_AFTER and event.room and event.room.startswith("user:"):
        user_id = int(event.room.split(":", 1)[1])
        out.disconnect(presence.sids(user_id), event.namespace)
