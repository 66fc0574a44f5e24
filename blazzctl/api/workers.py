"""blazz-api's worker processes, each listening on a socket of its own.

uvicorn's supervisor (it restarts a dead worker and drains them all on SIGTERM) with one change:
every worker binds its own SO_REUSEPORT socket, so the kernel spreads new connections evenly
over the workers. On uvicorn's one shared socket the worker that woke first accepted a whole
burst (40/0, 31/9 of 40 connections; 68/32 of the benchmark's 100 keep-alive clients), and
its clients waited twice as long as the others'. SO_REUSEPORT would also let a second blazz-api
(or anything of the same user) share the port unnoticed: the supervisor first binds a plain
socket, which fails while anything listens there; its own socket, bound with the workers'
options, never listens.
"""

from __future__ import annotations

import socket

from uvicorn import Config
from uvicorn.supervisors import multiprocess

from blazzctl.errors import OperationFailed


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a previous run's TIME_WAIT does not count
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OperationFailed(f"cannot listen on {host}:{port}: {error.strerror}",
                              hint="Another program (or blazz-api) holds the port: stop it, or set "
                                   "api.port.") from None
    return sock


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (not listening yet)."""
    sock = _bound(host, port, reuse_port=True)
    sock.set_inheritable(True)
    return sock


class OwnSocketProcess(multiprocess.Process):
    """A uvicorn worker serving on a socket of its own instead of the supervisor's."""

    def target(self, sockets=None) -> None:  # runs in the worker process
        super().target([reuse_port_socket(self.config.host, self.config.port)])


def ensure_free(host: str, port: int) -> None:
    """Fail when anything listens on host:port."""
    _bound(host, port, reuse_port=False).close()


def run(config: Config) -> None:
    """Serve with ``config.workers`` processes until SIGTERM or SIGINT (``ensure_free`` first)."""
    supervisor_socket = reuse_port_socket(config.host, config.port)
    multiprocess.Process = OwnSocketProcess  # the supervisor makes (and remakes) its workers with this
    try:
        multiprocess.Multiprocess(config, sockets=[supervisor_socket]).run()
    except KeyboardInterrupt:
        pass
    finally:
        supervisor_socket.close()
