"""A loopback TCP proxy that can cut a network partition the way a real one behaves.

``partition()`` stops forwarding in both directions on every connection and leaves the sockets
open: neither end sees a FIN or RST, each just stops hearing from the other, exactly like a
dropped route or a firewall that blackholes packets. New connections are accepted and then
ignored (a client times out in its handshake). ``partition_after(pattern)`` cuts it at the moment
a client sends a packet containing ``pattern``, after forwarding that packet: the server runs the
statement (taking its row locks) and the client never hears back. ``heal()`` forwards again.
"""

from __future__ import annotations

import selectors
import socket
import threading


class PartitionProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.partitioned = threading.Event()
        self._trigger: bytes | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="partition-proxy", daemon=True)
        self._thread.start()

    # --- control ---------------------------------------------------------------------------------

    def partition(self) -> None:
        self.partitioned.set()

    def partition_after(self, pattern: bytes) -> None:
        """Cut right after forwarding the next client packet that contains ``pattern``."""
        self._trigger = pattern

    def heal(self) -> None:
        self._trigger = None
        self.partitioned.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for a, b in self._pairs:
                a.close()
                b.close()
        self.listener.close()

    # --- forwarding ------------------------------------------------------------------------------

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        self.listener.setblocking(False)
        sel.register(self.listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, tuple[socket.socket, bool]] = {}  # sock → (other end, from client)
        while not self._stop.is_set():
            for key, _ in sel.select(0.05):
                sock = key.fileobj
                if sock is self.listener:
                    client, _addr = self.listener.accept()
                    if self.partitioned.is_set():
                        with self._lock:
                            self._pairs.append((client, client))  # accepted, never answered
                        continue
                    try:
                        server = socket.create_connection(self.upstream, timeout=5)
                    except OSError:  # the server is down: the client sees its connection closed
                        client.close()
                        continue
                    server.settimeout(None)
                    with self._lock:
                        self._pairs.append((client, server))
                    peers[client], peers[server] = (server, True), (client, False)
                    sel.register(client, selectors.EVENT_READ, None)
                    sel.register(server, selectors.EVENT_READ, None)
                    continue
                if self.partitioned.is_set():
                    continue  # the bytes stay in the kernel's buffers: nothing moves either way
                if sock not in peers:
                    continue  # closed earlier in this round, with its other end
                other, from_client = peers[sock]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for s in (sock, other):
                        sel.unregister(s)
                        peers.pop(s, None)
                        s.close()
                    continue
                try:
                    other.sendall(data)
                except OSError:  # the other end went away meanwhile: close both
                    for s in (sock, other):
                        sel.unregister(s)
                        peers.pop(s, None)
                        s.close()
                    continue
                if from_client and self._trigger is not None and self._trigger in data:
                    self._trigger = None
                    self.partitioned.set()
            if self.partitioned.is_set():
                self._stop.wait(0.05)  # the selector would report the same readable sockets at once
