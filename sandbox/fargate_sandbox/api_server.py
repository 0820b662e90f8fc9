"""``sandbox serve``'s HTTP side: plain HTTP on loopback, each request handed to the emulated API Gateway."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from fargate_sandbox.api_gateway import RestProxyGateway

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit; the function enforces its own 64 KiB


class _BurstHTTPServer(ThreadingHTTPServer):
    request_queue_size = socket.SOMAXCONN  # not socketserver's 5: a burst of clients would have SYNs dropped


class ApiServer:
    """``ApiServer(gateway, port).start()`` serves until ``stop()``; ``url`` once started (port 0 → a free one)."""

    def __init__(self, gateway: RestProxyGateway, port: int = 0, log: TextIO | None = None) -> None:
        self.gateway = gateway
        self.log = log or sys.stderr
        self._server = _BurstHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fargate-app-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as http_servers.QuietHandler: no delayed-ACK stall per response
            server_version = "fargate-app-sandbox"

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_error(413, "Request Entity Too Large")
                    return
                body = self.rfile.read(length) if length else b""
                headers = {name: value for name, value in self.headers.items()}
                response = server.gateway.handle(self.command, self.path, body, headers)
                self.send_response(response.status)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _proxy

            def log_message(self, format: str, *args: object) -> None:
                print(f"{self.address_string()} {format % args}", file=server.log, flush=True)

        return Handler
