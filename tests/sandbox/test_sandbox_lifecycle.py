"""A sandbox starts quickly on free ports and leaves no thread, socket or port behind — even after an exception."""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from fargate_sandbox.sandbox import Sandbox

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
