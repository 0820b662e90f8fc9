"""EKS-style authentication that calls STS: the emulator replays the token's presigned URL against moto's server.

moto's all-services dispatcher routes a request by its Authorization header or body; a presigned GET has neither and
lands in S3. So the STS here is moto's server serving the STS backend alone (what ``moto_server sts`` did): the same
ThreadedMotoServer, with ``create_backend_app("sts")`` as its application.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from kube_helpers import apis_for, make_settings, parse, step_event
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

from fargate_app.errors import KubernetesForbidden
from fargate_app.kube.models import ApplyAppEvent
from fargate_app.kube.steps import apply_app
from kube_emulator import EksTokenAuthenticator, StsReplayVerifier


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StsMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = create_backend_app("sts")
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture
def sts_endpoint() -> Iterator[str]:
    server = StsMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: the OS picks a free one
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_a_token_accepted_by_sts_authenticates(start_emulator, sts_endpoint):
    # Given an emulator that verifies tokens by calling STS (moto's server), like EKS does
    emulator = start_emulator(authenticator=EksTokenAuthenticator("blog", StsReplayVerifier(sts_endpoint)))

    # When the step applies the app with a token presigned by the production code
    result = apply_app(make_settings(), parse(ApplyAppEvent, step_event()), apis_for(emulator))

    # Then the API server accepted it
    assert result.applied is True
    assert [d["metadata"]["name"] for d in emulator.objects("Deployment")] == ["demo-app"]


def test_a_token_sts_cannot_verify_is_refused(start_emulator):
    # Given an emulator whose STS endpoint does not answer
    dead = f"http://127.0.0.1:{free_port()}"
    emulator = start_emulator(authenticator=EksTokenAuthenticator("blog", StsReplayVerifier(dead, timeout=2)))

    # When the step runs, Then the 401 is KubernetesForbidden
    with pytest.raises(KubernetesForbidden, match="401"):
        apply_app(make_settings(), parse(ApplyAppEvent, step_event()), apis_for(emulator))
