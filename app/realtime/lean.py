"""Leaner held sockets on gevent: one heartbeat task per process, writers only while writing.

python-engineio (4.x, pinned) keeps, for every WebSocket connection, besides the greenlet that
reads it:

* a greenlet per ping cycle that sleeps ``ping_interval`` and sends the PING, and
* a writer greenlet blocked on the socket's outgoing queue for the connection's whole life.

On Python 3.11 each live greenlet holds its saved C stack and its own Python frame chunk
(mmap'd, at least a page resident): the two of them were about 30 KB of the ~70 KB a held
socket cost (docs/realtime.md, "Memory per connection"). Here:

* **Heartbeat**: every socket's next ping goes into one heap, and a single task per process
  sends the pings as they fall due. The protocol is unchanged: the server pings
  ``ping_interval`` after the previous PONG (or the handshake), and engineio's own service task
  still closes a socket whose PONG is more than ``ping_timeout`` late.
* **Writer on demand**: the socket's queue wakes a writer when something is put in it; the
  writer sends what is queued, in order, and ends when the queue is empty. A slow client still
  only blocks its own writer, never the publisher. A ``None`` in the queue (engineio's "close
  the transport" marker) closes the WebSocket exactly as engineio's writer does.

``install()`` patches ``engineio.socket.Socket`` and the gevent driver's queue class once per
process; other async modes (the test profile's threading) keep engineio's own behaviour.
``tests/realtime/test_realtime_lean.py`` pins the engineio internals this relies on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from engineio import exceptions, packet
from engineio import socket as eio_socket
from engineio.async_drivers import gevent as eio_gevent
from gevent import queue as gevent_queue

log = logging.getLogger(__name__)

#: The longest the task sleeps, so a server with a shorter interval added later is not late.
MAX_NAP = 0.25


class Heartbeat:
    def __init__(self) -> None:
        self._due: list[tuple[float, int, eio_socket.Socket]] = []
        self._order = itertools.count()
        self._running = False
        # Under gevent (monkey-patched) this is a greenlet lock; in threading mode a real one.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, sock: eio_socket.Socket) -> None:
        due = time.monotonic() + sock.server.ping_interval
        with self._lock:
            heapq.heappush(self._due, (due, next(self._order), sock))
            start, self._running = not self._running, True
        if start:
            sock.server.start_background_task(self._run, sock.server)

    def _pop_due(self, now: float) -> list[eio_socket.Socket]:
        with self._lock:
            ready = []
            while self._due and self._due[0][0] <= now:
                ready.append(heapq.heappop(self._due)[2])
            return ready

    def send_due(self, now: float | None = None) -> int:
        """Ping every socket whose time has come; return how many were pinged."""
        now = time.monotonic() if now is None else now
        sent = 0
        for sock in self._pop_due(now):
            if sock.closing or sock.closed:
                continue
            try:
                sock.last_ping = time.time()
                sock.send(packet.Packet(packet.PING))
                sent += 1
            except Exception:  # a socket closing under us must not stop everyone's heartbeat
                log.debug("ping to %s failed", sock.sid, exc_info=True)
        return sent

    def _next_nap(self) -> float | None:
        """Seconds until the next ping is due, or None (and the task ends) when none is."""
        with self._lock:
            if not self._due:
                self._running = False
                return None
            return min(MAX_NAP, max(0.0, self._due[0][0] - time.monotonic()))

    def _run(self, server) -> None:
        while True:
            self.send_due()
            nap = self._next_nap()
            if nap is None:
                return
            server.sleep(nap)


heartbeat = Heartbeat()
_installed = False


# --- writer on demand ---------------------------------------------------------------------


class WakingQueue(gevent_queue.JoinableQueue):
    """engineio's outgoing packet queue that calls ``waker`` after each put."""

    __slots__ = ("waker",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.waker: Callable[[], None] | None = None

    def put(self, item, block=True, timeout=None) -> None:
        super().put(item, block, timeout)
        if self.waker is not None:
            self.waker()


def _drain(sock: eio_socket.Socket, ws) -> None:
    """Send what is queued, in order; end when the queue is empty or the transport closes."""
    try:
        while True:
            try:
                pkt = sock.queue.get(block=False)
            except gevent_queue.Empty:
                return
            sock.queue.task_done()
            if pkt is None:  # engineio: close the transport
                ws.close()
                return
            try:
                ws.send(pkt.encode())
            except Exception:  # as engineio's writer: a dead transport ends writing
                ws.close()
                return
    finally:
        sock._lean_writer = None


def _lean_websocket_handler(self: eio_socket.Socket, ws):
    """engineio's WebSocket handler (4.x) with the permanent writer replaced by ``_drain``."""
    if not isinstance(self.queue, WakingQueue):
        return _engineio_websocket_handler(self, ws)

    def websocket_wait():
        data = ws.wait()
        if data and len(data) > self.server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    for attr in ("_sock", "socket"):
        if hasattr(getattr(ws, attr, None), "settimeout"):
            getattr(ws, attr).settimeout(self.server.ping_interval + self.server.ping_timeout)

    if self.connected:
        # An upgrade from polling: same probe exchange as engineio.
        self.upgrading = True
        decoded = packet.Packet(encoded_packet=websocket_wait())
        if decoded.packet_type != packet.PING or decoded.data != "probe":
            self.upgrading = False
            return []
        ws.send(packet.Packet(packet.PONG, data="probe").encode())
        self.queue.put(packet.Packet(packet.NOOP))  # end the pending poll
        decoded = packet.Packet(encoded_packet=websocket_wait())
        if decoded.packet_type != packet.UPGRADE:
            self.upgraded = False
            self.upgrading = False
            return []
        self.upgraded = True
        self.upgrading = False
    else:
        self.connected = True
        self.upgraded = True

    def wake() -> None:
        if self._lean_writer is None:
            self._lean_writer = self.server.start_background_task(_drain, self, ws)

    self._lean_writer = None
    self.queue.waker = wake
    if not self.queue.empty():
        wake()

    while True:
        try:
            p = websocket_wait()
        except Exception:
            break
        if p is None:  # closed by the client
            break
        try:
            self.receive(packet.Packet(encoded_packet=p))
        except exceptions.UnknownPacketError:
            pass
        except exceptions.SocketIsClosedError:
            break
        except Exception:
            self.server.logger.exception("Unknown receive error")
            break

    self.queue.put(None)  # wakes a writer that closes the transport
    writer = self._lean_writer
    if writer is not None:
        writer.join()
    self.queue.waker = None
    self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
    return []


_engineio_websocket_handler = eio_socket.Socket._websocket_handler


def _schedule_ping(self: eio_socket.Socket) -> None:
    # engineio's rule, kept: a new cycle only once the previous PING was answered.
    if self.last_ping:
        self.last_ping = None
        heartbeat.schedule(self)


def install() -> None:
    global _installed
    if not _installed:
        eio_socket.Socket.schedule_ping = _schedule_ping
        eio_socket.Socket._websocket_handler = _lean_websocket_handler
        eio_gevent._async["queue"] = WakingQueue
        _installed = True
