"""The bench's load generator: keep-alive HTTP/1.1 connections on gevent, one process.

Run by ``bench/callbacks.py`` as a child process (``python bench/loadgen.py``, a JSON job on
stdin, a JSON result on stdout) so that its CPU is its own and is measured
(``resource.getrusage``): the figures say whether the client could have been the bottleneck.
Each connection sends signed bets (``X-Signature``: HMAC-SHA256 of the exact body) over one
socket, a new transaction and a new round each time, cycling through its own session tokens
(no two connections share a wallet). ``mode="dup"``: every bet is followed by the same bytes
again (a provider retry); both latencies are kept, and an answer that differs is counted.
"""

from gevent import monkey

monkey.patch_all()

import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def post(self, host: str, path: str, body: bytes, signature: str) -> bytes:
        self.sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"X-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        self._line()  # status line: the body says ok or error
        length, chunked = None, False
        while line := self._line():
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return self._take(length or 0)
        parts = []
        while size := int(self._line().split(b";")[0], 16):
            parts.append(self._take(size))
            self._take(2)
        self._line()
        return b"".join(parts)


def run(job: dict) -> dict:
    host, port, path = job["host"], job["port"], job["path"]
    secret = job["secret"].encode()
    tokens: list[str] = job["tokens"]
    n_conn: int = job["connections"]
    dup = job.get("mode") == "dup"
    latencies: list[float] = []
    dup_latencies: list[float] = []
    verdicts: Counter[str] = Counter()
    mismatched = [0]
    stop_at = [0.0]

    def client(i: int) -> None:
        conn = Connection(host, port)
        mine = tokens[i % len(tokens) :: n_conn] or [tokens[i % len(tokens)]]
        n = 0
        while time.monotonic() < stop_at[0]:
            token = mine[n % len(mine)]
            n += 1
            rid = f"{job['prefix']}-c{i}-{n}"
            body = json.dumps(
                {
                    "action": "bet",
                    "transaction_id": f"{rid}-b",
                    "round_id": rid,
                    "amount": job["stake"],
                    "session_token": token,
                    "game_id": job["game"],
                    "currency": job["currency"],
                },
                separators=(",", ":"),
            ).encode()
            sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
            t0 = time.perf_counter()
            raw = conn.post(host, path, body, sig)
            latencies.append(time.perf_counter() - t0)
            answer = json.loads(raw)
            verdicts[answer.get("code") or answer.get("status")] += 1
            if dup:
                t0 = time.perf_counter()
                again = json.loads(conn.post(host, path, body, sig))
                dup_latencies.append(time.perf_counter() - t0)
                verdicts[(again.get("code") or again.get("status")) + "(dup)"] += 1
                if again.get("transaction_id") != answer.get("transaction_id") or again.get(
                    "balance"
                ) != answer.get("balance"):
                    mismatched[0] += 1

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    stop_at[0] = time.monotonic() + job["seconds"]
    started = time.monotonic()
    gevent.joinall([gevent.spawn(client, i) for i in range(n_conn)], raise_error=True)
    elapsed = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    return {
        "elapsed": elapsed,
        "latencies": latencies,
        "dup_latencies": dup_latencies,
        "verdicts": dict(verdicts),
        "mismatched": mismatched[0],
        "client_cpu_s": cpu,
    }


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
