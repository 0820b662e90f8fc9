"""Loopback HTTP servers that stop cleanly: no handler thread and no socket outlives ``stop()``.

``ThreadingHTTPServer`` marks handler threads as daemons and never closes kept-alive client connections, so a stopped
server would leave threads blocked in ``recv`` until the client hangs up. These servers track every accepted
connection, shut it down on stop, and join every handler thread.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JOIN_TIMEOUT_SECONDS = 10.0


class TrackedHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 (free port by default) that can be stopped without leftovers."""

    daemon_threads = False
    block_on_close = True  # server_close() joins handler threads
    # socketserver listens with a backlog of 5: when a burst of clients connects while the accepting thread waits for
    # the GIL, the kernel drops their SYNs and each retries after 1, 3, 7... seconds (TcpExtListenOverflows).
    request_queue_size = socket.SOMAXCONN

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # handlers that wait (hang faults) watch this

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up before its answer was written (a Lambda worker stopped at its timeout, a CLI user's
        # Ctrl-C) is its own business; socketserver would print a traceback for each, and in a long-lived
        # ``sandbox serve`` those bury the messages that matter. Any other error is still printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name=name, kwargs={"poll_interval": 0.1})
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut kept-alive connections, join every handler thread, close the listening socket."""
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(JOIN_TIMEOUT_SECONDS)
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that does not log every request to stderr."""

    protocol_version = "HTTP/1.1"
    # A response goes out as two writes (headers, then body): with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers, about 40 ms on Linux, on every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return
