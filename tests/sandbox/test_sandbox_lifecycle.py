"""A sandbox starts quickly on free ports and leaves no thread, socket or port behind — even after an exception."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import subprocess
import threading

import pytest

from fargate_sandbox.http_servers import QuietHandler, TrackedHTTPServer
from fargate_sandbox.sandbox import Sandbox
from kube_emulator.server import _HttpServer as KubernetesHttpServer

BURST_BACKLOG = 128  # werkzeug's (moto's server); Linux caps any backlog at net.core.somaxconn


class Boom(Exception):
    pass


def _port_is_free(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("raise_inside", [False, True])
def test_stop_leaves_nothing_behind(raise_inside: bool) -> None:
    # Given the threads alive before the sandbox
    before = set(threading.enumerate())
    urls: list[str] = []
    # When a sandbox runs (and the with-block maybe fails after real traffic)
    try:
        with Sandbox() as sandbox:
            urls = [sandbox.endpoint_url, sandbox.registry_url]
            assert sandbox.boto3_client("sts").get_caller_identity()["Account"] == "111122223333"
            if raise_inside:
                raise Boom()
    except Boom:
        pass
    # Then every thread it started has ended and its ports can be bound again
    assert {t for t in threading.enumerate() if t.is_alive()} - before == set()
    assert all(_port_is_free(url) for url in urls)


def _listen_backlog(url: str) -> int:
    """The backlog of the socket listening at ``url``'s port, as ``ss`` shows it (Send-Q of a LISTEN socket)."""
    port = url.rstrip("/").rsplit(":", 1)[1]
    listed = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(listed.split()[2])


def test_every_server_takes_a_burst_of_connections(sandbox: Sandbox) -> None:
    # Given the sandbox's servers: the AWS front, the registry front and the cluster's Kubernetes API
    assert sandbox.kubernetes is not None
    urls = [sandbox.endpoint_url, sandbox.registry_url, sandbox.kubernetes.endpoint]

    # Then each listens with room for a burst (twenty executions' Lambda workers connecting at once), not
    # socketserver's backlog of 5, past which the kernel drops connections that then retry 1, 3, 7 seconds later
    backlogs = {url: _listen_backlog(url) for url in urls}
    assert all(backlog >= BURST_BACKLOG for backlog in backlogs.values()), backlogs


def _server_whose_client_hangs_up(fault: type[Exception] | None) -> tuple[list[BaseException], str]:
    """Serve one GET whose answer is written only after the client reset the connection (or that raises ``fault``);
    return what the handler raised and what the server printed to stderr, once it stopped."""
    answering, client_left = threading.Event(), threading.Event()
    raised: list[BaseException] = []

    class AnswersLate(QuietHandler):
        def do_GET(self) -> None:
            answering.set()
            try:
                if fault is not None:
                    raise fault("a bug in the handler")
                client_left.wait(5)
                self.send_response(200)
                self.send_header("Content-Length", str(2**22))
                self.end_headers()
                for _ in range(64):  # the first writes may fill the socket's buffer before the reset is seen
                    self.wfile.write(b"x" * 2**16)
            except Exception as exc:
                raised.append(exc)
                raise

    server = TrackedHTTPServer(AnswersLate)
    server.start("hang-up-test")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answering.wait(5), "the server never read the request"
            # close with a reset (linger 0), as a process killed mid-call leaves its connections
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client_left.set()
        server.stop()  # joins the handler thread: its error is handled by now
    return raised, stderr.getvalue()


def test_a_client_that_hangs_up_mid_answer_prints_no_traceback() -> None:
    # Given a server whose client (a Lambda worker stopped at its timeout) resets the connection before its answer
    # When the server writes the answer, then it meets the hang-up and says nothing about it: in a long-lived
    # `sandbox serve`, a traceback per stopped worker buried the messages that matter
    raised, printed = _server_whose_client_hangs_up(None)
    assert raised and all(isinstance(exc, ConnectionError) for exc in raised), raised
    assert printed == ""


def test_a_handler_bug_is_still_printed() -> None:
    # Given a handler that fails on its own, then its traceback still reaches stderr
    raised, printed = _server_whose_client_hangs_up(ValueError)
    assert [type(exc) for exc in raised] == [ValueError]
    assert "Traceback" in printed and "ValueError: a bug in the handler" in printed


@pytest.mark.parametrize("error", [BrokenPipeError, ConnectionResetError, ValueError])
def test_the_kubernetes_emulator_prints_only_its_own_errors(error: type[Exception]) -> None:
    # Given the emulator's HTTP server (TLS in the sandbox; the error handling is the same)
    server = KubernetesHttpServer(None)  # type: ignore[arg-type]
    stderr = io.StringIO()
    # When a request's handling ends in ``error``
    try:
        with contextlib.redirect_stderr(stderr):
            try:
                raise error("while answering")
            except error:
                server.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.server_close()
    # Then a client that hung up is not reported, and anything else is
    assert ("Traceback" in stderr.getvalue()) is (not issubclass(error, ConnectionError))
