"""A sandbox starts quickly on free ports and leaves no thread, socket or port behind — even after an exception."""

from __future__ import annotations

import socket
import threading

import pytest

from fargate_sandbox.sandbox import Sandbox


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
