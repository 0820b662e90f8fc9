"""`sandbox run`'s closing kubectl tables: printed from the cluster's address, without asking the sandbox's other parts
again (a busy AWS front once turned a finished run into "AWS does not answer")."""

from __future__ import annotations

import io
import socket
from types import SimpleNamespace

import pytest

from fargate_app_cli import sandbox_commands


def _closed_port_url() -> str:
    """A loopback URL nothing listens on (bound, never listening: connections to it are refused)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()
    return f"http://127.0.0.1:{port}"


def test_the_cluster_tables_need_only_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a finished run's sandbox whose AWS front and registry do not answer now, and a kubectl (echo: its args)
    silent = _closed_port_url()
    kubernetes = SimpleNamespace(endpoint="https://127.0.0.1:6443", ca_data="Q0E=")
    sandbox = SimpleNamespace(
        kubernetes=kubernetes, credentials=("AKIDSANDBOX", "secret"), endpoint_url=silent, registry_url=silent
    )
    monkeypatch.setenv("KUBECTL", "/bin/echo")
    out = io.StringIO()

    # When the run prints the cluster
    sandbox_commands._print_cluster(out, SimpleNamespace(sandbox=sandbox), [])  # type: ignore[arg-type]

    # Then both tables come from kubectl, through a kubeconfig of the cluster alone
    assert out.getvalue().split("\n\n")[:2] == [
        "$ kubectl get pods -A -o wide\nget pods -A -o wide",
        "$ kubectl get nodes\nget nodes",
    ]
