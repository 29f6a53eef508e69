"""Slow clients: fifty connections trickling their headers must not starve everyone else."""

import socket
import threading
import time

import pytest

pytestmark = pytest.mark.e2e

SLOW_CLIENTS = 50
PROBES = 20


def _trickle(port, stop):
    """Send a request's headers one byte at a time, forever (until ``stop``)."""
    request = b"GET /health/live HTTP/1.1\r\nHost: slow\r\nX-Padding: " + b"a" * 100_000
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for byte in request:
                if stop.is_set():
                    return
                sock.sendall(bytes([byte]))
                stop.wait(0.1)
    except OSError:
        pass  # the server may drop a connection that is too slow: that is allowed


def test_slow_clients_do_not_block_others(start_server):
    # Two workers: the fewest a small machine gets by default, so the most exposed setting.
    server = start_server(workers=2)
    stop = threading.Event()
    slow = [
        threading.Thread(target=_trickle, args=(server.port, stop), daemon=True)
        for _ in range(SLOW_CLIENTS)
    ]
    try:
        for thread in slow:
            thread.start()
        time.sleep(1.5)  # every slow client is connected and trickling
        latencies = []
        for _ in range(PROBES):
            started = time.monotonic()
            response = server.get("/health/live", timeout=5)
            latencies.append(time.monotonic() - started)
            assert response.status == 200
            time.sleep(0.1)
        alive = sum(thread.is_alive() for thread in slow)
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=5)
    # The slow clients were still hanging while the probes were answered, each within a second.
    assert alive == SLOW_CLIENTS
    assert max(latencies) < 1.0, latencies
